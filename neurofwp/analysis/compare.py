"""Compare artificial and biological update rules on the bundled plasticity data.

For every rule (the Hebbian ``stdp``, the ``delta`` rule, the learned-learning-rate
``stdp-modulated`` and the biological reference ``triplet``) and every dataset, the rule
is fitted (:func:`neurofwp.fit.fit`) and its error E, parameters and predictions are
collected into one Dataset, with the fitted rules' STDP windows and frequency curves for
the figures, and the fast-weight capacity curve of the tensor rules beside them.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import xarray as xr

import neurofwp
from neurofwp import data as datasets
from neurofwp import sweeps
from neurofwp.analysis.capacity import retrieval_curve
from neurofwp.fit import fit
from neurofwp.plasticity import get_rule, torch_backend
from neurofwp.protocols import make_protocol

RULES = ("stdp", "delta", "stdp-modulated", "triplet")
DATASETS = ("bipoo1998", "sjostrom2001")
LABELS = {
    "stdp": "Hebbian (pair STDP)",
    "delta": "delta rule",
    "stdp-modulated": "learned β (modulated STDP)",
    "triplet": "triplet (biological reference)",
}
WINDOW_DT_MS = np.round(np.arange(-100.0, 100.01, 1.0), 1)
FREQUENCIES_HZ = np.array([0.1, 1, 2, 5, 10, 20, 25, 40, 50])  # periods on the 0.1 ms grid


def _window_protocols():
    return [
        make_protocol(f"{dt:+.1f}", [0.0] if dt >= 0 else [-dt], [dt] if dt >= 0 else [0.0], 1.0, 60)
        for dt in WINDOW_DT_MS
    ]


def _frequency_protocols():
    return [
        make_protocol(f"{sign}{hz}", [0.0] if sign == "+" else [10.0], [10.0] if sign == "+" else [0.0], hz, 60)
        for sign in "+-"
        for hz in FREQUENCIES_HZ
    ]


def fit_cell(coords: dict, *, starts: int, seed: int) -> dict:
    """Sweep task: fit ``coords["rule"]`` to the bundled dataset ``coords["dataset"]``; curves for the figures."""
    rule, name = coords["rule"], coords["dataset"]
    protocols = datasets.protocols(name)
    result = fit(rule, protocols, starts=starts, seed=seed, show_progress=False)
    fitted = {p: result.attrs[f"param_{p}"] for p in get_rule(rule).parameter_names}
    cell = {
        "E": result.attrs["E"],
        "parameters": fitted,
        "free": result.attrs["free"].split(),
        "dw_model": result.dw_percent_model.values.tolist(),
        "dw_data": result.dw_percent.values.tolist(),
        "repeat_hz": result.repeat_hz.values.tolist(),
        "protocol_names": result.protocol.values.astype(str).tolist(),
    }
    for variable in ("sem_percent", "dt_ms"):
        if variable in result:
            cell[variable] = result[variable].values.tolist()
    if name == "bipoo1998":
        cell["window_curve"] = (
            100 * (torch_backend.simulate(rule, _window_protocols(), fitted).numpy()[:, 0] - 1)
        ).tolist()
    if name == "sjostrom2001":
        curve = 100 * (torch_backend.simulate(rule, _frequency_protocols(), fitted).numpy()[:, 0] - 1)
        cell["frequency_curve"] = curve.reshape(2, len(FREQUENCIES_HZ)).tolist()
    return cell


def compare(
    rules: Sequence[str] = RULES,
    dataset_names: Sequence[str] = DATASETS,
    *,
    starts: int = 3,
    seed: int = 0,
    capacity_pairs: Sequence[int] = (8, 16, 32, 48, 64, 96, 128, 192, 256),
    store: str | None = None,
    workers: int = 1,
    scheduler: str | None = None,
    show_progress: bool = True,
) -> xr.Dataset:
    """Fit every rule to every dataset; E, parameters, predictions, curves and the capacity curve.

    The rule × dataset fits are independent cells of a :mod:`neurofwp.sweeps` sweep: they
    run in this process, on ``workers`` local processes or on a dask ``scheduler``, and
    with ``store`` (a folder) finished fits are kept and skipped on a rerun.
    """
    rules, dataset_names = [get_rule(r).name for r in rules], list(dataset_names)
    for name in dataset_names:
        datasets.protocols(name)  # unknown names fail here, before any work
    all_parameters = sorted({p.name for r in rules for p in get_rule(r).parameters})
    errors = np.full((len(rules), len(dataset_names)), np.nan)
    params = np.full((len(rules), len(dataset_names), len(all_parameters)), np.nan)
    free = np.zeros_like(params, dtype=bool)
    variables: dict[str, tuple] = {}
    window_curves = np.full((len(rules), len(WINDOW_DT_MS)), np.nan)
    frequency_curves = np.full((len(rules), 2, len(FREQUENCIES_HZ)), np.nan)

    options = {"starts": starts, "seed": seed}
    cells = [{"rule": rule, "dataset": name} for name in dataset_names for rule in rules]
    cell_store = sweeps.CellStore(store, options) if store is not None else None
    results = sweeps.run(
        fit_cell, cells, store=cell_store, workers=workers, scheduler=scheduler, progress=show_progress,
        desc="compare", **options,
    )  # fmt: skip
    for coords, cell in zip(cells, results, strict=True):
        r, d = rules.index(coords["rule"]), dataset_names.index(coords["dataset"])
        name = coords["dataset"]
        errors[r, d] = cell["E"]
        for i, parameter in enumerate(all_parameters):
            if parameter in cell["parameters"]:
                params[r, d, i] = cell["parameters"][parameter]
                free[r, d, i] = parameter in cell["free"]
        dim = f"protocol_{name}"
        key = f"dw_model_{name}"
        if key not in variables:
            count = len(cell["dw_data"])
            variables[key] = (
                ("rule", dim),
                np.full((len(rules), count), np.nan),
                {"units": "percent", "long_name": f"fitted prediction on {name}"},
            )
            variables[f"dw_data_{name}"] = (dim, np.array(cell["dw_data"]), {"units": "percent"})
            if "sem_percent" in cell:
                variables[f"sem_{name}"] = (dim, np.array(cell["sem_percent"]), {"units": "percent"})
            if "dt_ms" in cell:
                variables[f"dt_ms_{name}"] = (dim, np.array(cell["dt_ms"]), {"units": "ms"})
            variables[f"repeat_hz_{name}"] = (dim, np.array(cell["repeat_hz"]), {"units": "Hz"})
            variables[f"protocol_names_{name}"] = (dim, np.array(cell["protocol_names"]))
        variables[key][1][r] = cell["dw_model"]
        if "window_curve" in cell:
            window_curves[r] = cell["window_curve"]
        if "frequency_curve" in cell:
            frequency_curves[r] = cell["frequency_curve"]

    capacity = retrieval_curve(
        capacity_pairs,
        d_key=64,
        d_value=64,
        feature_maps_=["identity"],
        seeds=range(seed, seed + 3),
        show_progress=False,
        fitted_beta=True,
    )
    result = xr.Dataset(
        {
            "E": (
                ("rule", "dataset"),
                errors,
                {
                    "units": "1",
                    "long_name": "fit error E",
                    "description": "mean squared SEM-normalised error (sjostrom2001); "
                    "mean squared error in percent^2 without SEM (bipoo1998)",
                },
            ),
            "parameter_value": (("rule", "dataset", "parameter"), params, {"long_name": "fitted or fixed value"}),
            "parameter_free": (("rule", "dataset", "parameter"), free.astype(np.int8), {"units": "1"}),
            "window_curve": (
                ("rule", "dt_ms"),
                window_curves,
                {"units": "percent", "long_name": "60 pairings at 1 Hz, rule fitted to bipoo1998"},
            ),
            "frequency_curve": (
                ("rule", "pairing", "frequency_hz"),
                frequency_curves,
                {"units": "percent", "long_name": "60 pairs at ±10 ms, rule fitted to sjostrom2001"},
            ),
            "retrieval_error": capacity.mean("seed").sel(feature_map="identity", drop=True).rename(rule="fast_rule"),
            **{k: v for k, v in variables.items()},
        },
        coords={
            "rule": rules,
            "dataset": dataset_names,
            "parameter": all_parameters,
            "dt_ms": ("dt_ms", WINDOW_DT_MS, {"units": "ms", "long_name": "t_post - t_pre"}),
            "pairing": ["+10 ms", "-10 ms"],
            "frequency_hz": ("frequency_hz", FREQUENCIES_HZ, {"units": "Hz"}),
        },
        attrs={
            "starts": starts,
            "seed": seed,
            "neurofwp_version": neurofwp.__version__,
            "rules": " ".join(rules),
            "datasets": " ".join(dataset_names),
        },
    )
    result["retrieval_error"].attrs.update(
        {"units": "1", "long_name": "relative retrieval error, identity keys, Dk = 64"}
    )
    return result
