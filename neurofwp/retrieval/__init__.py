"""Synthetic associative retrieval (Schlag, Irie & Schmidhuber 2021): tasks, models, training, sweeps, figures.

The untrained counterpart (store random pairs, measure recall) is
:func:`neurofwp.analysis.capacity.retrieval_curve`.
"""

from neurofwp.retrieval.model import MODEL_PATTERN, ModelSpec, RetrievalModel, parse_model
from neurofwp.retrieval.task import Batch, RetrievalTask
from neurofwp.retrieval.train import QUICK, SETTING_MODELS, TrainConfig, run_cell, sweep, train

__all__ = [
    "MODEL_PATTERN", "QUICK", "SETTING_MODELS", "Batch", "ModelSpec", "RetrievalModel", "RetrievalTask",
    "TrainConfig", "parse_model", "run_cell", "sweep", "train",
]
