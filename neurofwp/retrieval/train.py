r"""Training one retrieval model, and sweeping models × S into one Dataset.

Protocol of Schlag, Irie & Schmidhuber (2021): loss
:math:`\tfrac12 \lVert y - \hat y \rVert^2` summed over the value dims and averaged over
queries; Adam (learning rate :math:`10^{-3}`), batch 32; every 100 steps the model is
evaluated on 20 fresh sequences, each queried at every distinct key; training stops when
the evaluation loss reaches 0.001, when it has not improved for more than 10
evaluations, or at ``max_steps``. A cell's result is the best evaluation loss.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
import xarray as xr
from tqdm.auto import tqdm

import neurofwp
from neurofwp import sweeps
from neurofwp.errors import OutOfRangeError
from neurofwp.plasticity.rules import resolve_rule
from neurofwp.retrieval.model import RetrievalModel, parse_model
from neurofwp.retrieval.task import RetrievalTask

__all__ = ["DEFAULT_S", "TrainConfig", "train", "run_cell", "sweep", "SETTING_MODELS", "QUICK"]

#: The models of the paper's figures, per setting.
SETTING_MODELS = {
    1: ("linear-sum", "dpfp1-sum", "dpfp2-sum", "dpfp3-sum", "favor64-sum", "favor128-sum", "favor512-sum", "softmax"),
    2: ("linear-sum", "dpfp1-sum", "dpfp2-sum", "linear-delta", "dpfp1-delta", "dpfp2-delta"),
}

#: The paper's ranges of S (setting 2 sequences are 2S long).
DEFAULT_S = {1: tuple(range(20, 601, 20)), 2: tuple(range(20, 201, 20))}


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings; the defaults are the paper's."""

    max_steps: int = 100_000
    batch_size: int = 32
    learning_rate: float = 1e-3
    eval_every: int = 100
    eval_sequences: int = 20
    stop_loss: float = 1e-3
    patience: int = 10
    d_key: int = 64

    def __post_init__(self):
        for name in ("max_steps", "batch_size", "eval_every", "eval_sequences", "d_key"):
            if getattr(self, name) < 1:
                raise OutOfRangeError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not self.learning_rate > 0:
            raise OutOfRangeError(f"learning_rate must be > 0, got {self.learning_rate}")
        if self.patience < 0:
            raise OutOfRangeError(f"patience must be >= 0, got {self.patience}")


#: A configuration that shows the qualitative results on a 2-core CPU in minutes.
QUICK = {
    1: {"models": ("linear-sum", "dpfp2-sum"), "S": (20, 100), "config": TrainConfig(max_steps=2000)},
    2: {"models": ("dpfp2-sum", "dpfp2-delta"), "S": (20,), "config": TrainConfig(max_steps=2000)},
}


def _loss(prediction: torch.Tensor, targets: torch.Tensor, num_values: int) -> torch.Tensor:
    one_hot = torch.nn.functional.one_hot(targets, num_values).to(prediction.dtype)
    return 0.5 * (one_hot - prediction).pow(2).sum(dim=-1).mean()


def train(
    setting: int,
    model_name: str,
    num_keys: int,
    *,
    seed: int = 0,
    config: TrainConfig = TrainConfig(),
    device: str = "cpu",
    progress: bool = False,
) -> dict:
    """Train one model on one task: ``best_eval_loss``, ``steps``, ``eval_loss`` (each evaluation), ``seconds``."""
    task = RetrievalTask(setting, num_keys)
    spec = parse_model(model_name)
    train_rng = np.random.default_rng([seed, 0])
    eval_rng = np.random.default_rng([seed, 1])
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = RetrievalModel(task, spec, d_key=config.d_key, favor_seed=seed).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
    history: list[float] = []
    best, strike, step = float("inf"), 0, 0
    start = time.perf_counter()
    bar = tqdm(
        total=config.max_steps, desc=f"{model_name} S={num_keys}", unit="step", disable=not progress, leave=False
    )
    try:
        for step in range(1, config.max_steps + 1):
            model.train()
            batch = task.sample(config.batch_size, train_rng).to(device)
            loss = _loss(model(batch), batch.targets, task.num_values)
            if not torch.isfinite(loss):
                break  # diverged: the best evaluation so far stands
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            bar.update()
            if step % config.eval_every:
                continue
            model.eval()
            with torch.no_grad():
                losses = []
                for _ in range(config.eval_sequences):
                    batch = task.sample_all_queries(eval_rng).to(device)
                    losses.append(float(_loss(model(batch), batch.targets, task.num_values)))
            current = float(np.mean(losses))
            history.append(current)
            bar.set_postfix(eval_loss=f"{current:.4f}", refresh=False)
            if current < best:
                best, strike = current, 0
            else:
                strike += 1
            if current <= config.stop_loss or strike > config.patience:
                break
    finally:
        bar.close()
    return {
        "best_eval_loss": best if history else float("nan"),
        "steps": step,
        "eval_loss": history,
        "seconds": time.perf_counter() - start,
    }


def run_cell(
    coords: dict, *, setting: int, seed: int, config: dict, device: str = "cpu", rules: dict | None = None
) -> dict:
    """Sweep task: train ``coords["model"]`` at ``coords["S"]`` (seed offset by S so cells differ).

    ``rules`` (model → hash of its spiking rule's text) only marks the sweep's store: a rule file
    edited between two runs makes the stored cells another sweep's."""
    return train(
        setting,
        coords["model"],
        int(coords["S"]),
        seed=seed + int(coords["S"]),
        config=TrainConfig(**config),
        device=device,
    )


def sweep(
    setting: int,
    models: tuple[str, ...] | list[str],
    num_keys: tuple[int, ...] | list[int],
    *,
    seed: int = 0,
    config: TrainConfig = TrainConfig(),
    store: str | None = None,
    workers: int = 1,
    scheduler: str | None = None,
    device: str = "cpu",
    progress: bool = True,
) -> xr.Dataset:
    """Train every model at every S; return a Dataset with dims ``(model, S)`` (and ``evaluation``).

    With ``store`` (a folder) each finished cell is kept there and skipped on a rerun.
    """
    if setting not in SETTING_MODELS:
        raise OutOfRangeError(f"setting must be 1 or 2, got {setting!r}")
    for name in models:
        parse_model(name)
    for s in num_keys:
        RetrievalTask(setting, s)
    if not models or not num_keys:
        raise OutOfRangeError("a sweep needs at least one model and one S")
    options: dict[str, Any] = {"setting": setting, "seed": seed, "config": asdict(config)}
    hashes = {
        name: hashlib.sha256(resolve_rule(spec.rule).to_toml().encode()).hexdigest()[:16]
        for name, spec in ((name, parse_model(name)) for name in models)
        if spec.update == "rule"
    }
    if hashes:  # only then, so that the stores of sweeps without spiking rules keep their fingerprint
        options["rules"] = hashes
    cells = [{"model": m, "S": int(s)} for m in models for s in num_keys]
    cell_store = sweeps.CellStore(store, options) if store is not None else None
    results = sweeps.run(
        run_cell,
        cells,
        store=cell_store,
        workers=workers,
        scheduler=scheduler,
        progress=progress,
        desc=f"retrieval setting {setting}",
        device=device,
        **options,
    )
    dataset = sweeps.gather(
        cells,
        results,
        series_dims={"eval_loss": "evaluation"},
        variable_attrs={
            "best_eval_loss": {"units": "1", "long_name": "best evaluation loss (0.5 squared error)"},
            "steps": {"units": "1", "long_name": "training steps taken"},
            "eval_loss": {"units": "1", "long_name": "evaluation loss every eval_every steps"},
            "seconds": {"units": "s", "long_name": "wall-clock training time"},
        },
        attrs={
            "title": f"associative retrieval, setting {setting} ({'capacity' if setting == 1 else 'update rules'})",
            "reference": "Schlag, Irie & Schmidhuber (2021) Linear Transformers Are Secretly Fast Weight Programmers",
            "setting": setting,
            "seed": seed,
            **{f"config_{k}": v for k, v in asdict(config).items()},
            "neurofwp_version": neurofwp.__version__,
        },
    )
    dataset["S"].attrs.update(units="1", long_name="number of unique keys S")
    specs = [parse_model(m) for m in dataset.model.values]
    dataset["d_dot"] = ("model", [spec.d_dot(config.d_key) for spec in specs], {"units": "1"})
    # what writes the fast weights, and how its parameters are set; a spiking rule's full text
    dataset["write_rule"] = ("model", [spec.describe() for spec in specs], {"long_name": "write rule"})
    texts = [resolve_rule(spec.rule).to_toml() if spec.update == "rule" else "" for spec in specs]
    dataset["rule_toml"] = ("model", texts, {"long_name": "rule file text of a spiking write rule"})
    dataset = dataset.set_coords(["d_dot", "write_rule", "rule_toml"])
    if "evaluation" in dataset.dims:
        dataset = dataset.assign_coords(
            evaluation=("evaluation", config.eval_every * (1 + np.arange(dataset.sizes["evaluation"])), {"units": "1"})
        )
    return dataset
