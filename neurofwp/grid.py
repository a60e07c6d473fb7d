"""Parameter-grid sweeps from a TOML file: rules × parameter grids × protocol sets × seeds.

A sweep file::

    kind = "predict"                  # "predict": E of each grid point; "fit": fit at each grid point
    rules = ["stdp", "triplet"]
    datasets = ["sjostrom2001"]       # bundled dataset names or protocol CSV paths (relative to the file)
    backend = "torch"                 # or "brian2"
    seeds = [0, 1]                    # "fit" only: seeds of the random starts (default [0])
    starts = 2                        # "fit" only: random starts per fit (default 2)

    [grid.stdp]                       # per rule: values to try; the grid is their Cartesian product
    A_plus = [0.005, 0.01]
    tau_plus_ms = [10.0, 16.8]

With ``kind = "predict"`` every grid point is simulated with the other parameters at
their defaults; with ``kind = "fit"`` the grid values are held fixed and the rule's
default free parameters (minus those) are fitted. Each (rule, point, dataset, seed) is
one cell of a :mod:`neurofwp.sweeps` sweep; the result has dims
``(rule, point, dataset, seed)`` with the grid values as ``grid_<name>`` (rule, point).
"""

from __future__ import annotations

import hashlib
import itertools
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

import numpy as np
import xarray as xr

import neurofwp
from neurofwp import data as bundled
from neurofwp import sweeps
from neurofwp.errors import NeurofwpError, OutOfRangeError, UnknownNameError
from neurofwp.plasticity import BACKENDS, get_rule, predict
from neurofwp.plasticity.rules import check_parameter_value
from neurofwp.protocols import Protocol, read_csv

__all__ = ["SweepConfig", "SweepConfigError", "load", "run", "grid_cell"]

KINDS = ("predict", "fit")
_KEYS = {"kind", "rules", "datasets", "backend", "seeds", "starts", "grid", "dt_ms"}


class SweepConfigError(NeurofwpError, ValueError):
    """A sweep file is missing, malformed or names something unknown; the message names the file and key."""


@dataclass
class SweepConfig:
    kind: str
    rules: list[str]
    datasets: dict[str, list[Protocol]]
    sources: dict[str, str]  # dataset name -> "bundled" or a content hash of the CSV
    backend: str = "torch"
    seeds: list[int] = field(default_factory=lambda: [0])
    starts: int = 2
    dt_ms: float = 0.1
    grid: dict[str, list[dict[str, float]]] = field(default_factory=dict)  # rule -> points

    def fingerprint(self) -> dict:
        """What determines the results (for :class:`~neurofwp.sweeps.CellStore`)."""
        return {
            "kind": self.kind, "backend": self.backend, "starts": self.starts, "dt_ms": self.dt_ms,
            "datasets": self.sources, "grid": self.grid,
        }  # fmt: skip


def _fail(path: Path, message: str) -> NoReturn:
    raise SweepConfigError(f"{path}: {message}")


def load(path: str | Path) -> SweepConfig:
    """Read and check a sweep file; every name and value is validated before any work starts."""
    path = Path(path)
    if not path.is_file():
        raise SweepConfigError(f"sweep file {path} does not exist")
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        _fail(path, f"not a valid TOML file ({error})")
    unknown = sorted(set(raw) - _KEYS)
    if unknown:
        _fail(path, f"unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(_KEYS))}")
    kind = raw.get("kind", "predict")
    if kind not in KINDS:
        _fail(path, f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
    backend = raw.get("backend", "torch")
    if backend not in BACKENDS:
        _fail(path, f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    rules = raw.get("rules")
    if not isinstance(rules, list) or not rules or not all(isinstance(r, str) for r in rules):
        _fail(path, "rules must be a non-empty list of rule names")
    try:
        rules = [get_rule(r).name for r in rules]
    except UnknownNameError as error:
        _fail(path, str(error))
    names = raw.get("datasets")
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        _fail(path, "datasets must be a non-empty list of bundled dataset names or CSV paths")
    datasets, sources = {}, {}
    for name in names:
        if name in bundled.list():
            datasets[name], sources[name] = bundled.protocols(name), "bundled"
            continue
        csv = (path.parent / name).resolve()
        if not csv.is_file():
            _fail(path, f"dataset {name!r} is neither a bundled dataset ({', '.join(bundled.list())}) nor a file")
        datasets[name] = read_csv(csv)
        sources[name] = hashlib.sha256(csv.read_bytes()).hexdigest()[:16]
    seeds = raw.get("seeds", [0])
    if not isinstance(seeds, list) or not seeds or not all(isinstance(s, int) and s >= 0 for s in seeds):
        _fail(path, "seeds must be a non-empty list of integers >= 0")
    starts = raw.get("starts", 2)
    if isinstance(starts, bool) or not isinstance(starts, int) or starts < 1:
        _fail(path, f"starts must be an integer >= 1, got {starts!r}")
    dt_ms = raw.get("dt_ms", 0.1)
    if isinstance(dt_ms, bool) or not isinstance(dt_ms, (int, float)) or not dt_ms > 0:
        _fail(path, f"dt_ms must be a number > 0, got {dt_ms!r}")
    grids = raw.get("grid", {})
    if not isinstance(grids, dict):
        _fail(path, "grid must be a table of [grid.<rule>] tables")
    points: dict[str, list[dict[str, float]]] = {}
    for rule_name in rules:
        table = grids.get(rule_name, {})
        rule = get_rule(rule_name)
        values = {}
        for parameter, options in table.items():
            if parameter not in rule.parameter_names:
                _fail(path, f"[grid.{rule_name}]: unknown parameter {parameter!r}; {rule_name} has: "
                      f"{', '.join(rule.parameter_names)}")  # fmt: skip
            if not isinstance(options, list) or not options:
                _fail(path, f"[grid.{rule_name}] {parameter} must be a non-empty list of numbers")
            try:
                values[parameter] = [float(check_parameter_value(rule.parameter(parameter), v)) for v in options]
            except (NeurofwpError, TypeError, ValueError) as error:
                _fail(path, f"[grid.{rule_name}] {parameter}: {error}")
        names_ = list(values)
        points[rule_name] = [dict(zip(names_, combo, strict=True)) for combo in itertools.product(*values.values())]
    for rule_name in set(grids) - set(rules):
        _fail(path, f"[grid.{rule_name}] is not one of the sweep's rules ({', '.join(rules)})")
    return SweepConfig(kind, rules, datasets, sources, backend, seeds if kind == "fit" else [0], starts, dt_ms, points)


def grid_cell(coords: dict, *, config: SweepConfig) -> dict:
    """Sweep task: one rule at one grid point on one dataset (and one seed when fitting)."""
    rule, point = coords["rule"], config.grid[coords["rule"]][coords["point"]]
    protocols = config.datasets[coords["dataset"]]
    if config.kind == "predict":
        result = predict(rule, protocols, point, backend=config.backend, dt_ms=config.dt_ms)
        return {"E": result.attrs.get("E", float("nan")), "dw_percent_model": result.dw_percent_model.values.tolist()}
    from neurofwp.fit import fit

    result = fit(
        rule, protocols, fixed=point, backend=config.backend, starts=config.starts, seed=int(coords["seed"]),
        dt_ms=config.dt_ms, show_progress=False,
    )  # fmt: skip
    return {"E": result.attrs["E"], **{k: v for k, v in result.attrs.items() if k.startswith("param_")}}


def run(
    config: SweepConfig,
    *,
    store: str | None = None,
    workers: int = 1,
    scheduler: str | None = None,
    progress: bool = True,
) -> xr.Dataset:
    """Run every cell of ``config``; one Dataset with dims ``(rule, point, dataset, seed)``."""
    if workers < 1:
        raise OutOfRangeError(f"workers must be >= 1, got {workers}")
    cells = [
        {"rule": r, "point": p, "dataset": d, "seed": s}
        for r in config.rules
        for p in range(len(config.grid[r]))
        for d in config.datasets
        for s in config.seeds
    ]
    cell_store = sweeps.CellStore(store, config.fingerprint()) if store is not None else None
    results = sweeps.run(
        grid_cell, cells, store=cell_store, workers=workers, scheduler=scheduler, progress=progress,
        desc=f"sweep ({config.kind})", config=config,
    )  # fmt: skip
    result = sweeps.gather(
        cells,
        results,
        series_dims={"dw_percent_model": "protocol_index"},
        variable_attrs={
            "E": {"units": "1", "long_name": "fit error E (SEM-normalised where the data have SEM)"},
            "dw_percent_model": {"units": "percent", "long_name": "predicted weight change per protocol"},
        },
        attrs={"kind": config.kind, "backend": config.backend, "neurofwp_version": neurofwp.__version__},
    )
    grid_names = sorted({name for points in config.grid.values() for point in points for name in point})
    longest = max(len(points) for points in config.grid.values())
    for name in grid_names:
        table = np.full((len(config.rules), longest), np.nan)
        for r, rule in enumerate(config.rules):
            for p, point in enumerate(config.grid[rule]):
                table[r, p] = point.get(name, np.nan)
        unit = "ms" if name.endswith("_ms") else "1"
        result[f"grid_{name}"] = (("rule", "point"), table, {"units": unit, "long_name": f"grid value of {name}"})
    return result


def describe(config: SweepConfig) -> Mapping[str, int]:
    """Cell counts: rules, grid points, datasets, seeds and the total."""
    points = sum(len(config.grid[r]) for r in config.rules)
    return {
        "rules": len(config.rules), "grid points": points, "datasets": len(config.datasets),
        "seeds": len(config.seeds), "cells": points * len(config.datasets) * len(config.seeds),
    }  # fmt: skip
