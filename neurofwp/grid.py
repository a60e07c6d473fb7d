"""Parameter-grid sweeps from a TOML file: rules × parameter grids × protocol sets × seeds.

A sweep file::

    kind = "predict"                  # "predict": E of each grid point; "fit": fit at each grid point
    rules = ["stdp", "triplet"]       # built-in names or rule files (paths relative to this file)
    datasets = ["sjostrom2001"]       # bundled dataset names or protocol CSV paths (relative to the file)
    backend = "torch"                 # or "brian2"
    seeds = [0, 1]                    # "fit" only: seeds of the random starts (default [0])
    starts = 2                        # "fit" only: random starts per fit (default 2)

    [grid.stdp]                       # per rule: values to try; the grid is their Cartesian product
    A_plus = [0.005, 0.01]
    tau_plus_ms = [10.0, 16.8]

With ``kind = "predict"`` every grid point is simulated with the other parameters at
their defaults; with ``kind = "fit"`` the grid values are held fixed and the rule's
default free parameters (minus those) are fitted. Each (rule, grid point, dataset, seed)
is one cell of a :mod:`neurofwp.sweeps` sweep.

The result is indexed by the grid itself: dims ``(rule, dataset, seed, <p1>, <p2>, ...)``,
one per swept parameter (in order of first appearance in the file), each coordinate the
sorted values any rule sweeps, so ``result.E.sel(rule="stdp", A_plus=0.01)`` works. A
parameter that some rule does not sweep gets one more label, NaN, last: that rule's cells
sit there ("not swept": its default, its fitted value, or the rule has no such
parameter). Entries that are no rule's grid point are NaN; the boolean coordinate
``in_grid`` (rule, <p1>, ...) says which are. :func:`select` cuts one rule's own grid out,
:func:`best` gives the coordinates of the lowest E.
"""

from __future__ import annotations

import hashlib
import itertools
import math
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
from neurofwp.plasticity.rules import RULES, Rule, check_parameter_value
from neurofwp.protocols import Protocol, ProtocolError, check_sem, read_csv

__all__ = ["SweepConfig", "SweepConfigError", "best", "grid_cell", "load", "parameters", "run", "select"]

KINDS = ("predict", "fit")
_KEYS = {"kind", "rules", "datasets", "backend", "seeds", "starts", "grid", "dt_ms"}
#: Most entries one result variable may have (rules x datasets x seeds x the swept parameters' labels):
#: rules sweeping different parameters multiply the result's dims, which a sweep file should not do unawares.
MAX_RESULT_ENTRIES = 2_000_000


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
    # The rules themselves, by name: built-ins and rule files alike, resolved once when the file loads.
    rule_objects: dict[str, Rule] = field(default_factory=dict)

    def fingerprint(self) -> dict:
        """What determines the results (for :class:`~neurofwp.sweeps.CellStore`): a changed rule file counts."""
        definitions = {
            name: hashlib.sha256(rule.to_toml().encode()).hexdigest()[:16] for name, rule in self.rule_objects.items()
        }
        return {
            "kind": self.kind, "backend": self.backend, "starts": self.starts, "dt_ms": self.dt_ms,
            "datasets": self.sources, "grid": self.grid, "rules": definitions,
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
        _fail(path, "rules must be a non-empty list of rule names or rule files")
    rule_objects: dict[str, Rule] = {}
    for item in rules:
        # A rule file is read relative to the sweep file, as a dataset CSV is.
        is_file = item not in RULES and (item.endswith(".toml") or "/" in item)
        try:
            rule = get_rule(path.parent / item if is_file else item)
        except NeurofwpError as error:
            _fail(path, f"rules: {error}")
        if rule.name in rule_objects:
            _fail(path, f"rules: two rules are called {rule.name!r}")
        rule_objects[rule.name] = rule
    rules = list(rule_objects)
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
        try:  # a table with an SEM on some rows only fails here, not in every cell once the sweep runs
            check_sem(datasets[name])
        except ProtocolError as error:
            _fail(path, f"dataset {name!r}: {error}")
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
        rule = rule_objects[rule_name]
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
            repeated = sorted({v for v in values[parameter] if values[parameter].count(v) > 1})
            if repeated:
                _fail(path, f"[grid.{rule_name}] {parameter} lists {', '.join(f'{v:g}' for v in repeated)} twice")
        names_ = list(values)
        points[rule_name] = [dict(zip(names_, combo, strict=True)) for combo in itertools.product(*values.values())]
    for rule_name in set(grids) - set(rules):
        _fail(path, f"[grid.{rule_name}] is not one of the sweep's rules ({', '.join(rules)})")
    seeds = seeds if kind == "fit" else [0]
    config = SweepConfig(kind, rules, datasets, sources, backend, seeds, starts, dt_ms, points, rule_objects)
    entries = len(rules) * len(datasets) * len(config.seeds) * math.prod(len(v) for v in _axes(config).values())
    if entries > MAX_RESULT_ENTRIES:
        _fail(path, f"the result would have {entries:,} entries per variable for {describe(config)['cells']:,} cells "
              f"(more than {MAX_RESULT_ENTRIES:,}): each swept parameter is a dim of the result, shared by all rules; "
              "put rules that sweep different parameters into separate sweep files")  # fmt: skip
    return config


def _axes(config: SweepConfig) -> dict[str, list[float]]:
    """The result's parameter dims: for each swept name (first appearance), the sorted values; NaN last if a rule
    does not sweep it."""
    axes: dict[str, list[float]] = {}
    for rule in config.rules:
        for point in config.grid[rule]:
            for name, value in point.items():
                axes.setdefault(name, []).append(value)
    for name, values in axes.items():
        unswept = any(name not in config.grid[rule][0] for rule in config.rules)
        axes[name] = sorted(set(values)) + ([math.nan] if unswept else [])
    return axes


def grid_cell(coords: dict, *, config: SweepConfig) -> dict:
    """Sweep task: one rule at one grid point on one dataset (and one seed when fitting)."""
    rule, point = config.rule_objects[coords["rule"]], config.grid[coords["rule"]][coords["point"]]
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
    """Run every cell of ``config``; one Dataset with dims ``(rule, dataset, seed, <swept parameters>...)``."""
    if workers < 1:
        raise OutOfRangeError(f"workers must be >= 1, got {workers}")
    # Cells name grid points by their number in the rule's grid, as stores written before the result was
    # indexed by the grid do: such a store resumes.
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
    flat = sweeps.gather(
        cells,
        results,
        series_dims={"dw_percent_model": "protocol_index"},
        variable_attrs={
            "E": {"units": "1", "long_name": "fit error E (SEM-normalised where the data have SEM)"},
            "dw_percent_model": {"units": "percent", "long_name": "predicted weight change per protocol"},
        },
        attrs={"kind": config.kind, "backend": config.backend, "neurofwp_version": neurofwp.__version__},
    )
    return _on_grid(flat, config)


def _on_grid(flat: xr.Dataset, config: SweepConfig) -> xr.Dataset:
    """Move the cells of ``flat`` (dims rule, point, dataset, seed, ...) onto the grid's own coordinates."""
    axes = _axes(config)
    shape = tuple(len(values) for values in axes.values())
    # position of every (rule, point) along the parameter dims; a parameter the rule does not sweep: the NaN label
    at: dict[tuple[int, int], tuple[int, ...]] = {
        (r, p): tuple(values.index(point[name]) if name in point else len(values) - 1 for name, values in axes.items())
        for r, rule in enumerate(config.rules)
        for p, point in enumerate(config.grid[rule])
    }
    in_grid = np.zeros((len(config.rules), *shape), dtype=bool)
    for (r, _), position in at.items():
        in_grid[(r, *position)] = True
    data = {}
    for name, variable in flat.data_vars.items():
        cell_dims = ("rule", "point", "dataset", "seed")
        rest = [dim for dim in variable.dims if dim not in cell_dims]  # protocol_index of dw_percent_model
        old = variable.transpose(*cell_dims, *rest).values
        new = np.full((len(config.rules), *old.shape[2:4], *shape, *old.shape[4:]), np.nan)
        for (r, p), position in at.items():
            where: tuple[int | slice, ...] = (r, slice(None), slice(None), *position)  # all datasets and seeds
            new[where] = old[r, p]
        data[name] = (("rule", "dataset", "seed", *axes, *rest), new, variable.attrs)
    coords: dict[str, object] = {name: flat[name].values for name in ("rule", "dataset", "seed")}
    for name, values in axes.items():
        note = "; NaN: not swept by that rule" if math.isnan(values[-1]) else ""
        unit = "ms" if name.endswith("_ms") else "1"
        coords[name] = (name, np.array(values), {"units": unit, "long_name": f"grid value of {name}{note}"})
    coords["in_grid"] = (
        ("rule", *axes),
        in_grid,
        {"long_name": "whether the rule's grid has this point (entries that are not are NaN)"},
    )
    return xr.Dataset(data, coords=coords, attrs=flat.attrs)


def parameters(result: xr.Dataset) -> list[str]:
    """The swept parameters of a :func:`run` result: its dims beside rule, dataset and seed."""
    return [str(dim) for dim in result["in_grid"].dims if dim != "rule"]


def select(result: xr.Dataset, rule: str) -> xr.Dataset:
    """One rule's part of a :func:`run` result, on its own grid: dims dataset, seed and the parameters it sweeps.

    Labels that are not the rule's grid values are dropped, and so are the parameters it does not sweep.
    """
    rules = [str(name) for name in result["rule"].values]
    if rule not in rules:
        raise UnknownNameError("rule of this sweep", rule, rules)
    part = result.sel(rule=rule)
    mask = part["in_grid"]
    keep = {dim: mask.any([d for d in mask.dims if d != dim]).values for dim in mask.dims}
    part = part.isel(keep)
    for dim in mask.dims:
        if part.sizes[dim] == 1 and np.isnan(part[dim].values[0]):
            part = part.squeeze(dim, drop=True)
    return part.drop_vars("in_grid")


def best(result: xr.Dataset) -> dict[str, str | int | float]:
    """Coordinates of the lowest E of a :func:`run` result (NaN skipped; ties: the first in the result's order).

    Only what describes that cell: rule, dataset, seed (fit sweeps only; predictions have no seed) and the
    parameters that rule sweeps. An empty dict when no E is a number.
    """
    energy = result["E"]
    values = np.asarray(energy.values, dtype=float)
    if np.isnan(values).all():
        return {}
    index = np.unravel_index(int(np.nanargmin(values)), values.shape)
    at: dict[str, str | int | float] = {}
    for dim, i in zip(map(str, energy.dims), index, strict=True):
        label = result[dim].values[i]
        if dim in ("rule", "dataset"):
            at[dim] = str(label)
        elif dim == "seed":
            if result.attrs.get("kind") == "fit":
                at[dim] = int(label)
        elif not np.isnan(label):  # NaN: a parameter this rule does not sweep
            at[dim] = float(label)
    return at


def describe(config: SweepConfig) -> Mapping[str, int]:
    """Cell counts: rules, grid points, datasets, seeds and the total."""
    points = sum(len(config.grid[r]) for r in config.rules)
    return {
        "rules": len(config.rules), "grid points": points, "datasets": len(config.datasets),
        "seeds": len(config.seeds), "cells": points * len(config.datasets) * len(config.seeds),
    }  # fmt: skip
