"""Synthetic associative retrieval (Schlag, Irie & Schmidhuber 2021): tasks, models, training, sweeps, figures.

The untrained counterpart (store random pairs, measure recall) is
:func:`neurofwp.analysis.capacity.retrieval_curve`.
"""

from neurofwp.retrieval.model import DT_MS, MODEL_PATTERN, ModelSpec, RetrievalModel, default_dt_ms, parse_model
from neurofwp.retrieval.reference import paper_reference
from neurofwp.retrieval.task import Batch, RetrievalTask
from neurofwp.retrieval.train import DEFAULT_S, QUICK, SETTING_MODELS, TrainConfig, run_cell, sweep, train

__all__ = [
    "DEFAULT_S",
    "DT_MS",
    "MODEL_PATTERN",
    "QUICK",
    "SETTING_MODELS",
    "Batch",
    "ModelSpec",
    "RetrievalModel",
    "RetrievalTask",
    "TrainConfig",
    "default_dt_ms",
    "paper_reference",
    "parse_model",
    "run_cell",
    "sweep",
    "train",
]
