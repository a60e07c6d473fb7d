r"""Compare plasticity rules on protocol datasets: fits, model selection, uncertainty, transfer.

Any rules (built-in names, rule files or :class:`~neurofwp.plasticity.Rule` objects) and
any protocol datasets (bundled names or CSV paths) are resolved once, here, and every
rule × dataset pair is fitted (:func:`neurofwp.fit.fit`) as one cell of a
:mod:`neurofwp.sweeps` sweep. A cell also holds what judges the fit:

- k, log L, AIC, AICc and BIC (formulas in :func:`neurofwp.fit.information_criteria`),
- the leave-one-protocol-out error :math:`E_\text{CV}` (:func:`neurofwp.analysis.selection.loo_cv`),
- per-parameter at-bound flags and Laplace 95 % intervals,
- the fitted rule's prediction of every other dataset (:math:`E_{AB}`, parameters from A, data B),
- dense curves for datasets that are a timing window or a frequency series
  (:mod:`neurofwp.analysis.structure`).

Beside the cells: every rule's capacity as the write rule of a fast weight programmer
(``capacity`` over ``rule``, :func:`neurofwp.analysis.capacity.capacity` on the
``capacity_pairs`` grid; NaN with its ``capacity_reason`` for a rule that writes no fast
weights), the second axis of the map of all rules, and the retrieval error of the tensor
rules (``retrieval_error``).

A cell exists only where the rule can explain the data: weight-change datasets are fitted by
rules that change the weight (:attr:`~neurofwp.plasticity.Rule.changes_weight`), train-response datasets (short-term
plasticity, :class:`~neurofwp.protocols.TrainProtocol`) by rules with a ``response``
(:func:`explains`). Skipped cells are NaN in every per-cell variable (empty strings in the
text ones) and False in the boolean ``fitted`` over (rule, dataset). A fitted rule's
prediction of another dataset (:math:`E_{AB}`) is computed for the datasets of the same kind
only (weight changes or train responses).

In the result every dataset is a coordinate value, never part of a variable name:
per-protocol variables of weight-change datasets share one ``protocol`` dim whose
``protocol_dataset`` coordinate says which dataset a row belongs to (:func:`protocols_of`
selects them); the measured responses of train datasets share one ``observation`` dim
(coordinates ``observation_dataset``, ``observation_protocol``, ``observation_spike``,
1-based, and ``observation_time_ms``; :func:`observations_of`), and curves share a
``curve_point`` dim in the same way.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence

import numpy as np
import xarray as xr

import neurofwp
from neurofwp import data as datasets
from neurofwp import sweeps
from neurofwp.analysis import structure as structures
from neurofwp.analysis.capacity import capacity as fast_weight_capacity
from neurofwp.analysis.capacity import retrieval_curve
from neurofwp.errors import NeurofwpError
from neurofwp.fit import fit
from neurofwp.observations import observations
from neurofwp.plasticity import predict, resolve_rule, simulate
from neurofwp.plasticity.rules import Rule
from neurofwp.protocols import ProtocolTable, is_train_table

__all__ = [
    "DEFAULT_RULES",
    "compare",
    "explains",
    "fit_cell",
    "observations_of",
    "protocols_of",
]

#: The default comparison: a Hebbian, the delta, two learned-learning-rate and the biological reference rule
#: (weight changes), and Tsodyks-Markram short-term plasticity (train responses).
DEFAULT_RULES = ("stdp", "delta", "stdp-modulated", "stdp-gated", "triplet", "tsodyks-markram")
Z95 = 1.959963984540054


def _rule_digest(rule: Rule) -> str:
    return hashlib.sha256(rule.to_toml().encode()).hexdigest()[:16]


def _table_digest(table: ProtocolTable) -> str:
    return hashlib.sha256(repr(list(table)).encode()).hexdigest()[:16]


def _parameters(result: xr.Dataset, rule: Rule) -> dict[str, float]:
    return {name: float(result.attrs[f"param_{name}"]) for name in rule.parameter_names}


def explains(rule: Rule, table: ProtocolTable) -> bool:
    """Whether ``rule`` can be fitted to ``table``: train responses need a ``response``, weight changes
    a rule that changes w (:attr:`~neurofwp.plasticity.Rule.changes_weight`)."""
    return rule.response is not None if is_train_table(table) else rule.changes_weight


def _model_percent(rule: Rule, protocols, parameters: dict[str, float]) -> np.ndarray:
    return 100.0 * (simulate(rule, list(protocols), parameters)[:, 0] - 1.0)


def fit_cell(
    coords: dict,
    *,
    rules: dict[str, Rule],
    tables: dict[str, ProtocolTable],
    starts: int,
    seed: int,
    cv: bool,
    free: Sequence[str] | None = None,
    fixed: dict[str, float] | None = None,
    bounds: dict[str, tuple[float, float]] | None = None,
) -> dict:
    """Sweep task: fit ``coords["rule"]`` to ``coords["dataset"]`` and judge the fit (see the module docstring).

    The model's values are per observation: ``dw_model`` (percent, per protocol) for weight changes,
    ``amplitude_model`` (per measured response, in the order of :func:`neurofwp.observations.observations`)
    for train responses; the same for the leave-one-out predictions (``dw_cv``, ``amplitude_cv``).
    ``free``, ``fixed`` and ``bounds`` are passed to :func:`neurofwp.fit.fit` (default: the rule's).
    """
    rule, table = rules[coords["rule"]], tables[coords["dataset"]]
    trains = is_train_table(table)
    result = fit(
        rule, table, starts=starts, seed=seed, show_progress=False, free=free, fixed=fixed, bounds=bounds
    )  # fmt: skip
    fitted = _parameters(result, rule)
    free = list(result.parameter.values)
    cell: dict = {
        "E": result.attrs["E"],
        "parameters": fitted,
        "free": free,
        **{key: result.attrs[key] for key in ("k", "log_likelihood", "AIC", "AICc", "BIC")},
        "at_bound": result.at_bound.values.tolist(),
        "ci95_low": result.ci95_low.values.tolist(),
        "ci95_high": result.ci95_high.values.tolist(),
        "laplace_status": [str(s) for s in result.laplace_status.values],
    }
    if trains:
        observed = observations(table)
        cell["amplitude_model"] = result.amplitude_model.values[observed.protocol, observed.spike].tolist()
    else:
        cell["dw_model"] = result.dw_percent_model.values.tolist()
    if cv and len(table) > 2:
        from neurofwp.analysis.selection import loo_cv

        # Warm-started at the full fit, one start per fold: each fold's optimum lies near it. A clock-driven
        # rule's refits of weight changes cost minutes, so its folds take one safeguarded Gauss-Newton step
        # from the optimum; train responses are always refitted (the linearised folds are for weights).
        method = "linearised" if rule.clock_driven and not trains else "refit"
        folds = loo_cv(rule, table, free=free, starts=1, seed=seed, start=fitted, method=method)
        cell["cv_method"] = method
        cell["E_cv"] = folds.attrs["E_cv"]
        if trains:
            cell["amplitude_cv"] = folds.amplitude_cv.values.tolist()
        else:
            cell["dw_cv"] = folds.dw_percent_cv.values.tolist()
    cell["E_on"] = {
        other: predict(rule, tables[other], fitted).attrs["E"]
        for other in tables
        if other != coords["dataset"] and is_train_table(tables[other]) == trains
    }
    x, protocols = structures.curve_protocols(structures.classify(table))
    if protocols:
        cell["curve"] = _model_percent(rule, protocols, fitted).tolist()
    return cell


def _resolve(rules, data_sources) -> tuple[dict[str, Rule], dict[str, ProtocolTable], dict[str, datasets.DatasetInfo]]:
    resolved_rules: dict[str, Rule] = {}
    for item in rules:
        rule = resolve_rule(item)
        if rule.name in resolved_rules and resolved_rules[rule.name] != rule:
            raise NeurofwpError(f"two different rules are called {rule.name!r}; rename one of them")
        resolved_rules[rule.name] = rule
    tables: dict[str, ProtocolTable] = {}
    infos: dict[str, datasets.DatasetInfo] = {}
    for source in data_sources:
        table, infos[str(source)] = datasets.resolve(source), datasets.info(source)
        if table.name in tables:
            raise NeurofwpError(f"dataset {table.name!r} is given twice")
        if is_train_table(table):
            if not any(p.amplitude is not None for p in table):  # type: ignore[attr-defined]
                raise NeurofwpError(f"dataset {table.name!r} has no measured responses (amplitude) to compare with")
        elif not any(p.dw_percent is not None for p in table):
            raise NeurofwpError(f"dataset {table.name!r} has no measured dw_percent to compare with")
        tables[table.name] = table
    if not resolved_rules or not tables:
        raise NeurofwpError("a comparison needs at least one rule and one dataset")
    return (
        resolved_rules,
        tables,
        {table.name: infos[str(source)] for source, table in zip(data_sources, tables.values(), strict=True)},
    )


def compare(
    rules: Sequence[str | os.PathLike[str] | Rule] = DEFAULT_RULES,
    data: Sequence[str | os.PathLike[str]] | None = None,
    *,
    starts: int = 3,
    seed: int = 0,
    cross_validate: bool = True,
    capacity_pairs: Sequence[int] = (8, 16, 32, 48, 64, 96, 128, 192, 256),
    posterior_simulations: int | None = None,
    store: str | None = None,
    workers: int = 1,
    scheduler: str | None = None,
    show_progress: bool = True,
) -> xr.Dataset:
    """Fit every rule to every dataset it can explain (default: :data:`DEFAULT_RULES` × the bundled
    measured data, weight changes and train responses).

    A rule × dataset cell is fitted only where the rule can explain the data (:func:`explains`:
    train responses need a rule with a ``response``, weight changes a rule that changes w);
    the other cells are NaN (empty strings in text variables, False in ``fitted``). A
    selection without any such cell raises :class:`~neurofwp.errors.NeurofwpError`.

    The rule × dataset fits are independent cells of a :mod:`neurofwp.sweeps` sweep: they
    run in this process, on ``workers`` local processes or on a dask ``scheduler``, and
    with ``store`` (a folder) finished fits are kept and skipped on a rerun (a store made
    with other rules, data or settings is refused).

    With ``posterior_simulations`` (N, off by default: it costs about a minute or two of
    training per cell), every fitted cell also gets the posterior of its free parameters by
    simulation-based inference (:func:`neurofwp.analysis.posterior.posterior_cell`, N
    simulations; data without SEMs take the fit's RMS residual as their noise), as a second
    sweep of cells (stored in ``<store>_posterior``): samples, coverage of held-back
    simulations and the posterior predictive over the data and the curves
    (:func:`neurofwp.analysis.posterior.add_to_comparison`).
    """
    rule_objects, tables, infos = _resolve(rules, datasets.measured() if data is None else list(data))
    rule_names, names = list(rule_objects), list(tables)
    options = {"starts": starts, "seed": seed, "cv": bool(cross_validate)}
    config = {
        **options,
        "rules": {n: _rule_digest(r) for n, r in rule_objects.items()},
        "datasets": {n: _table_digest(t) for n, t in tables.items()},
    }
    cells = [
        {"rule": rule, "dataset": name}
        for name in names
        for rule in rule_names
        if explains(rule_objects[rule], tables[name])
    ]
    if not cells:
        kinds = sorted({"train responses" if is_train_table(t) else "weight changes" for t in tables.values()})
        raise NeurofwpError(
            f"no rule of {', '.join(rule_names)} can explain any dataset of {', '.join(names)} "
            f"({' and '.join(kinds)}): train responses need a rule with a response (short-term plasticity, "
            "e.g. tsodyks-markram), weight changes a rule that changes w"
        )
    # Longest first, so that workers do not wait on one long fit at the end: clock-driven rules,
    # then more free parameters, then more protocols (a rough cost; the results do not depend on it).
    cells.sort(
        key=lambda c: (
            -rule_objects[c["rule"]].clock_driven,
            -len(rule_objects[c["rule"]].free),
            -len(tables[c["dataset"]]),
        )
    )
    cell_store = sweeps.CellStore(store, config) if store is not None else None
    results = sweeps.run(
        fit_cell,
        cells,
        store=cell_store,
        workers=workers,
        scheduler=scheduler,
        progress=show_progress,
        desc="compare",
        rules=rule_objects,
        tables=tables,
        **options,
    )
    result = _gather(rule_objects, tables, infos, cells, results)
    if posterior_simulations is not None:
        result = _posteriors(result, rule_objects, tables, cells, results, config, posterior_simulations, seed,
                             store, workers, scheduler, show_progress)  # fmt: skip
    capacity = retrieval_curve(
        capacity_pairs,
        d_key=64,
        d_value=64,
        feature_maps_=["identity"],
        seeds=range(seed, seed + 3),
        show_progress=False,
        fitted_beta=True,
    )
    # every rule as the write rule of a fast weight programmer (its rate reading): the map of all rules
    stored = fast_weight_capacity(
        list(rule_objects.values()), n_pairs=capacity_pairs, seeds=range(seed, seed + 3), unreadable="nan"
    )
    result["capacity"] = ("rule", stored.values, stored.attrs)
    result["capacity_reason"] = (
        "rule",
        stored.reason.values.astype(str),
        {"long_name": "why a rule has no capacity (not an outer-product write); empty where it has one"},
    )
    result["retrieval_error"] = capacity.mean("seed").sel(feature_map="identity", drop=True).rename(rule="fast_rule")
    result["retrieval_error"].attrs.update(
        {"units": "1", "long_name": "relative retrieval error, identity keys, Dk = 64"}
    )
    result.attrs.update(
        {
            "starts": starts,
            "seed": seed,
            "cross_validated": str(bool(cross_validate)),
            "neurofwp_version": neurofwp.__version__,
            "rules": " ".join(rule_names),
            "datasets": " ".join(names),
        }
    )
    return result


def _posteriors(result, rules, tables, cells, results, config, simulations, seed, store, workers, scheduler, progress):
    from neurofwp.analysis import posterior

    fits = {
        f"{c['rule']}/{c['dataset']}": {"parameters": r["parameters"], "free": r["free"], "E": r["E"]}
        for c, r in zip(cells, results, strict=True)
    }
    options = {"simulations": simulations, "seed": seed}
    cell_store = None
    if store is not None:
        cell_store = sweeps.CellStore(f"{store}_posterior", {**config, **options, "fits": fits})
    found = sweeps.run(
        posterior.posterior_cell,
        cells,
        store=cell_store,
        workers=workers,
        scheduler=scheduler,
        progress=progress,
        desc="posteriors",
        rules=rules,
        tables=tables,
        fits=fits,
        **options,
    )
    return posterior.add_to_comparison(result, cells, found, simulations)


def _gather(rules: dict[str, Rule], tables: dict[str, ProtocolTable], infos, cells, results) -> xr.Dataset:
    rule_names, names = list(rules), list(tables)
    R, D = len(rule_names), len(names)
    parameters = list(dict.fromkeys(p for r in rules.values() for p in r.parameter_names))
    N = len(parameters)
    per_fit = {key: np.full((R, D), np.nan) for key in ("E", "E_cv", "k", "log_likelihood", "AIC", "AICc", "BIC")}
    value = np.full((R, D, N), np.nan)
    free = np.zeros((R, D, N), dtype=np.int8)
    bound = np.zeros((R, D, N), dtype=np.int8)
    low, high = np.full((R, D, N), np.nan), np.full((R, D, N), np.nan)
    status = np.full((R, D, N), "", dtype=object)
    transfer = np.full((R, D, D), np.nan)
    cv_method = np.full((R, D), "", dtype=object)
    fitted = np.zeros((R, D), dtype=bool)

    trains = {name: is_train_table(tables[name]) for name in names}
    weights = [name for name in names if not trains[name]]
    rows = [(name, p) for name in weights for p in tables[name]]
    P = len(rows)
    offsets = {name: sum(len(tables[n]) for n in weights[: weights.index(name)]) for name in weights}
    dw_model, dw_cv = np.full((R, P), np.nan), np.full((R, P), np.nan)
    # train responses: one row per measured response (neurofwp.observations), every train dataset in turn
    observed = {name: observations(tables[name]) for name in names if trains[name]}
    observation_rows = [
        (name, int(row), int(spike))
        for name, o in observed.items()
        for row, spike in zip(o.protocol, o.spike, strict=True)
    ]
    first = {name: sum(len(observed[n]) for n in list(observed)[: list(observed).index(name)]) for name in observed}
    amplitude_model = np.full((R, len(observation_rows)), np.nan)
    amplitude_cv = np.full((R, len(observation_rows)), np.nan)
    curve_meta: list[tuple[str, float, float]] = []
    curve_offset: dict[str, int] = {}
    kinds = {}
    for name in names:
        kind = structures.classify(tables[name])
        kinds[name] = kind.kind
        x, protocols = structures.curve_protocols(kind)
        curve_offset[name] = len(curve_meta)
        if kind.kind == "window":
            curve_meta += [(name, float(t), kind.rates_hz[0]) for t in x]
        elif kind.kind == "frequency":
            curve_meta += [(name, float(t), float(r)) for t, r in x]
    curve = np.full((R, len(curve_meta)), np.nan)

    for coords, cell in zip(cells, results, strict=True):
        r, d = rule_names.index(coords["rule"]), names.index(coords["dataset"])
        name = coords["dataset"]
        fitted[r, d] = True
        for key in per_fit:
            per_fit[key][r, d] = cell.get(key, np.nan)
        for i, parameter in enumerate(parameters):
            if parameter in cell["parameters"]:
                value[r, d, i] = cell["parameters"][parameter]
            if parameter in cell["free"]:
                j = cell["free"].index(parameter)
                free[r, d, i] = 1
                bound[r, d, i] = cell["at_bound"][j]
                low[r, d, i], high[r, d, i] = cell["ci95_low"][j], cell["ci95_high"][j]
                status[r, d, i] = cell["laplace_status"][j]
        if trains[name]:
            start, count = first[name], len(observed[name])
            amplitude_model[r, start : start + count] = cell["amplitude_model"]
            if "amplitude_cv" in cell:
                amplitude_cv[r, start : start + count] = cell["amplitude_cv"]
        else:
            start = offsets[name]
            dw_model[r, start : start + len(tables[name])] = cell["dw_model"]
            if "dw_cv" in cell:
                dw_cv[r, start : start + len(tables[name])] = cell["dw_cv"]
        transfer[r, d, d] = cell["E"]
        cv_method[r, d] = cell.get("cv_method", "")
        for other, error in cell["E_on"].items():
            transfer[r, d, names.index(other)] = error
        if "curve" in cell:
            c = curve_offset[name]
            curve[r, c : c + len(cell["curve"])] = cell["curve"]

    def measured(attribute: str) -> np.ndarray:
        return np.array([np.nan if getattr(p, attribute) is None else getattr(p, attribute) for _, p in rows])

    has_sem = {
        name: observed[name].has_sem
        if trains[name]
        else all(p.sem_percent is not None for p in tables[name] if p.dw_percent is not None)
        for name in names
    }
    e_units = ["1" if has_sem[n] else ("amplitude^2" if trains[n] else "percent^2") for n in names]
    normalised = {name: bool(trains[name] and observed[name].normalised) for name in names}
    amplitude_data = np.concatenate([o.data for o in observed.values()]) if observed else np.empty(0)
    amplitude_sem = (
        np.concatenate([o.scale if o.has_sem else np.full(len(o), np.nan) for o in observed.values()])
        if observed
        else np.empty(0)
    )
    # "1" when every train dataset is normalised to its first response, else as each dataset measured them
    amplitude_units = "1" if all(normalised[n] for n in observed) else "as measured (see observation_units)"
    fit_dims, parameter_dims = ("rule", "dataset"), ("rule", "dataset", "parameter")
    criteria = "k, log L and the criteria per neurofwp.fit.information_criteria (docs/fitting.md)"
    variables = {
        "fitted": (
            fit_dims,
            fitted,
            {
                "long_name": "whether the rule was fitted to the dataset",
                "description": "a cell is fitted only where the rule can explain the data (train responses: a rule "
                "with a response; weight changes: a rule that changes w); the other cells are NaN, or empty strings",
            },
        ),
        "E": (fit_dims, per_fit["E"], {"long_name": "fit error E", "units": "see E_units (per dataset)"}),
        "E_cv": (
            fit_dims,
            per_fit["E_cv"],
            {"long_name": "leave-one-protocol-out error (a train is one protocol)", "units": "as E"},
        ),
        "cv_method": (
            fit_dims,
            cv_method.astype(str),
            {
                "meanings": "refit: every fold fitted anew; linearised: one safeguarded Gauss-Newton step from the "
                "full fit (clock-driven rules; see neurofwp.analysis.selection.loo_cv); empty: not cross-validated"
            },
        ),
        "k": (fit_dims, per_fit["k"], {"long_name": "number of estimated parameters", "units": "1"}),
        "log_likelihood": (fit_dims, per_fit["log_likelihood"], {"units": "1", "description": criteria}),
        "AIC": (fit_dims, per_fit["AIC"], {"units": "1", "long_name": "2k - 2 log L"}),
        "AICc": (
            fit_dims,
            per_fit["AICc"],
            {"units": "1", "long_name": "AIC + 2k(k+1)/(N-k-1), N observations (n_observations)"},
        ),
        "BIC": (fit_dims, per_fit["BIC"], {"units": "1", "long_name": "k ln N - 2 log L, N observations"}),
        "parameter_value": (
            parameter_dims,
            value,
            {"long_name": "fitted or fixed value", "units": "see parameter_units"},
        ),
        "parameter_free": (parameter_dims, free, {"units": "1"}),
        "parameter_at_bound": (
            parameter_dims,
            bound,
            {
                "units": "1",
                "flag_values": np.array([-1, 0, 1], np.int8),
                "flag_meanings": "lower_bound inside upper_bound",
            },
        ),
        "parameter_ci95_low": (
            parameter_dims,
            low,
            {"units": "see parameter_units", "long_name": "Laplace 95 % interval, lower end"},
        ),
        "parameter_ci95_high": (
            parameter_dims,
            high,
            {"units": "see parameter_units", "long_name": "Laplace 95 % interval, upper end"},
        ),
        "laplace_status": (parameter_dims, status.astype(str), {"meanings": "ok; at bound; singular; empty: not free"}),
        "E_transfer": (
            ("rule", "dataset", "predicted"),
            transfer,
            {
                "long_name": "E on the predicted dataset with the parameters fitted on dataset",
                "units": "see E_units of the predicted dataset",
            },
        ),
        "dw_data": ("protocol", measured("dw_percent"), {"units": "percent", "long_name": "measured weight change"}),
        "sem": ("protocol", measured("sem_percent"), {"units": "percent", "long_name": "standard error of the mean"}),
        "dw_model": (("rule", "protocol"), dw_model, {"units": "percent", "long_name": "fitted prediction"}),
        "dw_cv": (
            ("rule", "protocol"),
            dw_cv,
            {"units": "percent", "long_name": "prediction of the protocol by the fit without it"},
        ),
        "curve": (("rule", "curve_point"), curve, {"units": "percent", "long_name": "fitted rule on dense protocols"}),
        "amplitude_data": (
            "observation",
            amplitude_data,
            {"units": amplitude_units, "long_name": "measured response"},
        ),
        "amplitude_model": (
            ("rule", "observation"),
            amplitude_model,
            {"units": amplitude_units, "long_name": "fitted prediction of the response"},
        ),
        "amplitude_cv": (
            ("rule", "observation"),
            amplitude_cv,
            {"units": amplitude_units, "long_name": "prediction of the response by the fit without its train"},
        ),
        "rule_definition": ("rule", [rules[n].to_toml() for n in rule_names]),
        "rule_label": ("rule", [rules[n].label for n in rule_names]),
        "rule_family": ("rule", [rules[n].family for n in rule_names]),
        "citation": ("dataset", [tables[n].citation or infos[n].citation for n in names]),
        "preparation": ("dataset", [infos[n].preparation for n in names]),
        "structure": ("dataset", [kinds[n] for n in names]),
    }
    if any(o.has_sem for o in observed.values()):
        variables["amplitude_sem"] = (
            "observation",
            amplitude_sem,
            {"units": amplitude_units, "long_name": "standard error of the mean response"},
        )
    units = []
    for parameter in parameters:
        owner = next(r for r in rules.values() if parameter in r.parameter_names)
        units.append("ms" if owner.parameter(parameter).is_time else "1")
    coords = {
        "rule": rule_names,
        "dataset": names,
        "predicted": names,
        "parameter": parameters,
        "parameter_units": ("parameter", units),
        "E_units": ("dataset", e_units),
        "n_protocols": ("dataset", [len(tables[n]) for n in names]),
        "n_observations": (
            "dataset",
            [len(observed[n]) if trains[n] else len(tables[n]) for n in names],
            {"long_name": "N of the information criteria: protocols, or measured responses of train datasets"},
        ),
        "normalised": (
            "dataset",
            np.array([normalised[n] for n in names], dtype=np.int8),
            {"units": "1", "long_name": "train responses normalised to the first of each train (1), else 0"},
        ),
        "protocol": [f"{name}/{p.name}" for name, p in rows],
        "protocol_dataset": ("protocol", [name for name, _ in rows]),
        "protocol_name": ("protocol", [p.name for _, p in rows]),
        "curve_point": np.arange(len(curve_meta)),
        "curve_dataset": ("curve_point", [m[0] for m in curve_meta]),
        "curve_timing_ms": ("curve_point", [m[1] for m in curve_meta], {"units": "ms", "long_name": "t_post - t_pre"}),
        "curve_rate_hz": ("curve_point", [m[2] for m in curve_meta], {"units": "Hz", "long_name": "repetition rate"}),
        "observation": [f"{name}/{tables[name][row].name}/{spike + 1}" for name, row, spike in observation_rows],
        "observation_dataset": ("observation", [name for name, _, _ in observation_rows]),
        "observation_protocol": ("observation", [tables[name][row].name for name, row, _ in observation_rows]),
        "observation_spike": (
            "observation",
            np.array([spike + 1 for _, _, spike in observation_rows], dtype=np.int64),
            {"units": "1", "long_name": "presynaptic spike of the train (1-based)"},
        ),
        "observation_time_ms": (
            "observation",
            np.array([tables[name][row].pre_times_ms[spike] for name, row, spike in observation_rows], dtype=float),
            {"units": "ms", "long_name": "time of the presynaptic spike within its train"},
        ),
        "observation_units": (
            "observation",
            [observed[name].units for name, _, _ in observation_rows],
        ),
    }
    result = xr.Dataset(variables, coords=coords)
    for name in ("timing_ms", "rate_hz", "n_repeats"):
        result[f"protocol_{name}"] = (
            "protocol",
            [_describe(p, name) for _, p in rows],
            {"units": {"timing_ms": "ms", "rate_hz": "Hz", "n_repeats": "1"}[name]},
        )
    return result


def _describe(protocol, what: str) -> float:
    if what == "rate_hz":
        return float(protocol.repeat_hz)
    if what == "n_repeats":
        return float(protocol.n_repeats)
    timing = structures.timing_ms(protocol)
    return float("nan") if timing is None else timing


def protocols_of(result: xr.Dataset, dataset: str) -> xr.Dataset:
    """The per-protocol rows of one dataset, indexed by the protocol's own name."""
    rows = result.protocol_dataset == dataset
    part = result.drop_dims(["curve_point", "observation"], errors="ignore")
    part = part.isel(protocol=np.flatnonzero(rows.values))
    part = part[[v for v in part.data_vars if "protocol" in part[v].dims]]
    return part.swap_dims(protocol="protocol_name").drop_vars("protocol")


def observations_of(result: xr.Dataset, dataset: str) -> xr.Dataset:
    """The measured responses of one train dataset (dim ``observation``): data, SEM, fitted and
    leave-one-out predictions, with their train (``observation_protocol``) and spike (1-based)."""
    if "observation" not in result.dims:
        return xr.Dataset()
    rows = result.observation_dataset == dataset
    part = result.drop_dims(["curve_point", "protocol"], errors="ignore")
    part = part.isel(observation=np.flatnonzero(rows.values))
    return part[[v for v in part.data_vars if "observation" in part[v].dims]]
