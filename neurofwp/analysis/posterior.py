r"""Posterior distributions over a rule's free parameters by neural posterior estimation (``sbi``).

A best fit and its Laplace interval assume one well-shaped optimum; plasticity rules are
degenerate (amplitudes trade off against time constants). Simulation-based inference
(Tejero-Cantero et al. 2020; Gonçalves et al. 2020) learns the posterior from simulations:

1. the prior is uniform within the free parameters' bounds (the rule's, or ``bounds``);
2. N parameter sets θ are drawn from it and simulated by the torch backend in batches, and
   measurement noise is added as the dataset states it: :math:`x = m(\theta) + s\,\epsilon`,
   :math:`\epsilon \sim \mathcal N(0, I)`, with s the SEM of every observation (or ``noise``
   where the data have none);
3. a conditional density estimator :math:`q(\theta \mid x)` (``sbi``'s NPE, its default
   masked autoregressive flow) is trained on the pairs, and the posterior is sampled at the
   observed data.

The simulations run in batches of :data:`SIMULATION_BATCH` parameter sets, each a cell of a
:mod:`neurofwp.sweeps` sweep: in this process, on local worker processes or on a dask
cluster, and with a ``store`` folder resumable after an interruption. Every batch draws its
parameters and noise from its own generator (seeded by ``seed`` and the batch number), so
the simulations do not depend on where or in which order the batches ran.

The posterior predictive is the model's prediction of every observation under
:data:`PREDICTIVE_SAMPLES` posterior samples, summarised by its median and central 90 %
band (the band of the model, without the measurement noise).

``sbi`` is an optional dependency (``pip install "neurofwp[bayes]"``); nothing else in
neurofwp imports it. The caller's random number generators are left as they were: every draw
happens inside :func:`torch.random.fork_rng`, seeded by ``seed``.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Mapping, Sequence

import numpy as np
import torch
import xarray as xr

import neurofwp
from neurofwp import sweeps
from neurofwp.errors import NeurofwpError, OutOfRangeError
from neurofwp.fit import _positive_int, prepare
from neurofwp.observations import observations
from neurofwp.plasticity import check_rule, source_attrs
from neurofwp.plasticity.rules import Rule
from neurofwp.protocols import Protocol

__all__ = [
    "CalibrationWarning",
    "MIN_SIMULATIONS",
    "QUANTILES",
    "add_to_comparison",
    "best_fit",
    "figure",
    "observation_labels",
    "pair_figure",
    "posterior",
    "posterior_cell",
    "summary",
]

#: Fewer simulations than this cannot train a density estimator worth reporting.
MIN_SIMULATIONS = 500
SIMULATION_BATCH = 2000
#: The nominal level of the credible intervals whose coverage is checked.
LEVEL = 0.9
#: Posterior samples per held-back simulation in the coverage check.
COVERAGE_SAMPLES = 200
#: Posterior samples whose predictions make the posterior predictive.
PREDICTIVE_SAMPLES = 1000
#: The quantiles of the posterior predictive: the central 90 % band and the median.
QUANTILES = (0.05, 0.5, 0.95)


class CalibrationWarning(UserWarning):
    """The posterior's credible intervals do not cover held-back simulations at their nominal rate."""


class _NoTracker:
    """sbi's training tracker that keeps nothing: its default writes TensorBoard logs into ./sbi-logs
    of the caller's working directory."""

    log_dir = None

    def log_metric(self, name, value, step=None) -> None:
        pass

    def log_metrics(self, metrics, step=None) -> None:
        pass

    def log_params(self, params) -> None:
        pass

    def add_figure(self, name, figure, step=None) -> None:
        pass

    def flush(self) -> None:
        pass


def _sbi():
    try:
        import sbi.inference
        import sbi.utils
    except ImportError as error:  # the optional extra
        raise NeurofwpError(f'posteriors need the sbi package: pip install "neurofwp[bayes]" ({error})') from None
    return sbi


def _check_prior(rule: Rule, free: Sequence[str], bounds: Mapping[str, tuple[float, float]]) -> None:
    """A prior range must lie within the rule's own bounds (where the rule is defined and checked)."""
    for name in free:
        low, high = bounds[name]
        rule_low, rule_high = rule.parameter(name).bounds
        if low < rule_low or high > rule_high:
            raise OutOfRangeError(
                f"prior of {name}: [{low:g}, {high:g}] reaches outside the rule's bounds [{rule_low:g}, {rule_high:g}]"
            )


def simulation_batch(
    coords: dict,
    *,
    rule: Rule,
    protocols: Sequence[Protocol],
    free: Sequence[str],
    fixed: Mapping[str, float],
    bounds: Mapping[str, tuple[float, float]],
    scale: Sequence[float],
    seed: int,
    simulations: int,
    dt_ms: float,
) -> dict:
    """Sweep task: batch ``coords["batch"]`` of the training simulations.

    Draws its parameter sets from the uniform prior and its noise from a generator seeded by
    ``(seed, batch)``, simulates them with the torch backend and returns ``theta`` and ``x``
    flattened row by row (``[sets, free]`` and ``[sets, observations]``).
    """
    batch = int(coords["batch"])
    count = min(SIMULATION_BATCH, simulations - batch * SIMULATION_BATCH)
    problem = prepare(rule, protocols, free=free, fixed=fixed, bounds=bounds, dt_ms=dt_ms)
    generator = np.random.default_rng([seed, batch])
    theta = problem.low + problem.span * generator.random((count, len(problem.free)))
    with torch.no_grad():
        x = problem._model(torch.as_tensor(theta)).T.numpy()  # [sets, observations]
    x = x + generator.standard_normal(x.shape) * np.asarray(scale)
    return {"theta": theta.ravel().tolist(), "x": x.ravel().tolist()}


def _simulate(problem, rule, protocols, scale, seed, simulations, dt_ms, workers, scheduler, store, progress):
    """All training simulations as sweep cells; returns theta ``[N, free]`` and x ``[N, observations]``."""
    options = {
        "rule": rule,
        "protocols": list(protocols),
        "free": problem.free,
        "fixed": problem.fixed,
        "bounds": problem.bounds,
        "scale": [float(v) for v in scale],
        "seed": seed,
        "simulations": simulations,
        "dt_ms": dt_ms,
    }
    cells = [{"batch": b} for b in range(-(-simulations // SIMULATION_BATCH))]
    cell_store = None
    if store is not None:
        config = {
            **{k: v for k, v in options.items() if k not in ("rule", "protocols")},
            "rule": rule.to_toml(),
            "protocols": repr(list(protocols)),
            "batch_size": SIMULATION_BATCH,
        }
        cell_store = sweeps.CellStore(store, config)
    results = sweeps.run(
        simulation_batch,
        cells,
        store=cell_store,
        workers=workers,
        scheduler=scheduler,
        progress=progress,
        desc="simulations",
        **options,
    )
    theta = np.concatenate([np.asarray(r["theta"], dtype=float) for r in results]).reshape(simulations, -1)
    x = np.concatenate([np.asarray(r["x"], dtype=float) for r in results]).reshape(simulations, -1)
    return torch.as_tensor(theta), torch.as_tensor(x)


def _predictive_check(predicted: np.ndarray, data: np.ndarray, scale: np.ndarray) -> tuple[float, float]:
    r"""Whether the posterior sits on the data: E of its median prediction and of its best sample.

    :math:`E = \overline{((m - x_o)/s)^2}` in noise SDs. A posterior centred on the data has a
    median prediction nearly as good as its best sample; :func:`posterior` warns where
    :math:`E_\text{median} > 2 E_\text{best} + 1` (an estimator that has not learned the posterior
    near the observed data, which the coverage of held-back simulations from the whole prior can miss).
    """
    standardised = (predicted - data[:, None]) / np.asarray(scale)[:, None]
    errors = (standardised**2).mean(0)
    median = ((np.median(predicted, axis=1) - data) / np.asarray(scale)) ** 2
    return float(median.mean()), float(errors.min())


def observation_labels(protocols: Sequence[Protocol]) -> list[str]:
    """A name per observation: the protocol's (weight changes) or ``protocol/spike`` (train responses, 1-based)."""
    observed = observations(protocols)
    if not observed.trains:
        return [protocols[row].name for row in observed.protocol]
    return [f"{protocols[row].name}/{spike + 1}" for row, spike in zip(observed.protocol, observed.spike, strict=True)]


def posterior(
    rule: str | Rule,
    protocols: Sequence[Protocol],
    *,
    simulations: int = 10_000,
    samples: int = 5000,
    seed: int = 0,
    free: Sequence[str] | None = None,
    fixed: Mapping[str, float] | None = None,
    bounds: Mapping[str, tuple[float, float]] | None = None,
    noise: float | None = None,
    noise_source: str = "given",
    held_back: int = 200,
    dt_ms: float = 0.1,
    dataset: str | None = None,
    citation: str | None = None,
    workers: int = 1,
    scheduler: str | None = None,
    store: str | None = None,
    show_progress: bool = False,
) -> xr.Dataset:
    """Posterior samples of ``rule``'s free parameters given ``protocols`` (module docstring).

    Args:
        simulations: N, the simulated parameter sets the estimator learns from (≥ MIN_SIMULATIONS).
        samples: posterior samples drawn at the observed data.
        free, fixed, bounds: as :func:`neurofwp.fit.fit`; ``bounds`` set the uniform prior and
            must lie within the rule's bounds.
        noise: the measurement noise (SD, units of the data) for data without SEMs; ignored
            where the data have SEMs. ``noise_source`` says where it came from (stated in the
            ``noise`` attr, e.g. "the best fit's RMS residual").
        held_back: simulations kept out of training to check calibration: for each, the share of
            free parameters inside the central 90 % credible interval of the posterior at its
            data (expected coverage, per parameter, ``expected_coverage_90``). A coverage further
            than max(3 binomial SE, 0.05) from 0.9 raises a :class:`CalibrationWarning`, and so
            does a posterior predictive that misses the data (:func:`_predictive_check`).
        workers, scheduler, store: where the simulation batches run and where finished batches
            are kept for a rerun (:func:`neurofwp.sweeps.run`).

    Returns a Dataset with one variable per free parameter over ``sample`` (named as the
    parameter, with its units), the data and the posterior predictive (``data``,
    ``predictive`` over ``quantile`` × ``observation``), ``expected_coverage_90`` over
    ``parameter``, and attrs with the prior bounds (``prior_<name>``), the settings, the seed
    and the seconds spent simulating and training.
    """
    rule = check_rule(rule)
    source = source_attrs(protocols, dataset, citation)
    simulations = _positive_int("simulations", simulations, 1)
    samples = _positive_int("samples", samples, 1)
    seed = _positive_int("seed", seed, 0)
    held_back = _positive_int("held_back", held_back, 0)
    if simulations - held_back < MIN_SIMULATIONS:
        raise OutOfRangeError(
            f"simulations = {simulations} is too few to train a density estimator: {simulations - held_back} after "
            f"the {held_back} held back for the calibration check; give at least {MIN_SIMULATIONS + held_back}"
        )
    problem = prepare(rule, protocols, free=free, fixed=fixed, bounds=bounds, dt_ms=dt_ms)
    _check_prior(rule, problem.free, problem.bounds)
    if problem.has_sem:
        scale = np.asarray(problem.scale, dtype=float)
        noise_description = "the SEM of every observation"
    elif noise is not None:
        if not (np.isfinite(noise) and noise > 0):
            raise OutOfRangeError(f"noise must be a finite SD > 0 (units of the data), got {noise!r}")
        scale = np.full(len(problem.data), float(noise))
        noise_description = f"SD {noise:g} for every observation ({noise_source}: the data have no SEM)"
    else:
        name = source.get("dataset", "the data")
        raise NeurofwpError(
            f"{name} states no noise level (no SEM): give noise= (the SD of a measurement, units of the data)"
        )
    sbi = _sbi()
    began = time.perf_counter()
    theta, x = _simulate(
        problem, rule, protocols, scale, seed, simulations, dt_ms, workers, scheduler, store, show_progress
    )
    simulated = time.perf_counter() - began
    finite = torch.isfinite(x).all(1)
    training = finite.clone()
    training[simulations - held_back :] = False  # the last ones check calibration
    low = torch.as_tensor(problem.low, dtype=torch.float32)
    high = torch.as_tensor(problem.low + problem.span, dtype=torch.float32)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        prior = sbi.utils.BoxUniform(low, high)
        began = time.perf_counter()
        inference = sbi.inference.NPE(prior=prior, show_progress_bars=show_progress, tracker=_NoTracker())
        inference.append_simulations(theta[training].float(), x[training].float())
        estimator = inference.train(show_train_summary=False)
        trained = time.perf_counter() - began
        density = inference.build_posterior(estimator)
        observed = torch.as_tensor(problem.data, dtype=torch.float32)
        drawn = density.sample((samples,), x=observed, show_progress_bars=show_progress).to(torch.float64).numpy()
        checked = [k for k in range(simulations - held_back, simulations) if bool(finite[k])]
        inside = np.zeros((len(checked), len(problem.free)))
        for row, k in enumerate(checked):
            draws = density.sample((COVERAGE_SAMPLES,), x=x[k].float(), show_progress_bars=False).numpy()
            low_q, high_q = np.quantile(draws, [(1 - LEVEL) / 2, (1 + LEVEL) / 2], axis=0)
            inside[row] = (low_q <= theta[k].numpy()) & (theta[k].numpy() <= high_q)
    with torch.no_grad():
        predicted = problem._model(torch.as_tensor(drawn[:PREDICTIVE_SAMPLES])).numpy()  # [observations, samples]
    median_error, best_error = _predictive_check(predicted, problem.data, scale)
    centred = median_error <= 2 * best_error + 1
    if not centred:
        warnings.warn(
            f"the posterior is not centred on the data: its median prediction fits them with E = {median_error:.3g}, "
            f"its best sample with E = {best_error:.3g} (E in noise SDs squared); train on more simulations",
            CalibrationWarning,
            stacklevel=2,
        )
    coverage = inside.mean(0) if checked else np.full(len(problem.free), np.nan)
    tolerance = max(3 * np.sqrt(LEVEL * (1 - LEVEL) / max(len(checked), 1)), 0.05)
    off = [f"{n} {c:.2f}" for n, c in zip(problem.free, coverage, strict=True) if abs(c - LEVEL) > tolerance]
    if checked and off:
        warnings.warn(
            f"the posterior is not calibrated: the 90 % credible intervals cover {', '.join(off)} of "
            f"{len(checked)} held-back simulations (tolerance ±{tolerance:.2f}); train on more simulations",
            CalibrationWarning,
            stacklevel=2,
        )
    variables: dict = {
        name: (
            "sample",
            drawn[:, i],
            {"units": "ms" if rule.parameter(name).is_time else "1", "long_name": f"posterior sample of {name}"},
        )
        for i, name in enumerate(problem.free)
    }
    data_units = problem.observed.units
    variables["data"] = ("observation", problem.data, {"units": data_units, "long_name": "measured value"})
    variables["predictive"] = (
        ("quantile", "observation"),
        np.quantile(predicted, QUANTILES, axis=1),
        {
            "units": data_units,
            "long_name": f"posterior predictive of the model (quantiles of its prediction under "
            f"{predicted.shape[1]} posterior samples, without measurement noise)",
        },
    )
    attrs = {
        "rule": rule.name,
        "rule_definition": rule.to_toml(),
        **source,
        "free": " ".join(problem.free),
        "fixed": " ".join(sorted(problem.fixed)),
        **{f"param_{name}": value for name, value in problem.fixed.items()},
        **{f"prior_{name}": np.array(problem.bounds[name]) for name in problem.free},
        "prior": "uniform within prior_<name> = [low, high]",
        "simulations": simulations,
        "simulations_used": int(finite.sum()),
        "noise": noise_description,
        "estimator": "sbi NPE (default density estimator)",
        "sbi_version": sbi.__version__,
        "seed": seed,
        "seconds_simulating": simulated,
        "seconds_training": trained,
        "neurofwp_version": neurofwp.__version__,
    }
    variables["expected_coverage_90"] = (
        "parameter",
        coverage,
        {
            "units": "1",
            "long_name": f"share of {len(checked)} held-back simulations inside the central 90 % credible interval",
            "tolerance": tolerance,
        },
    )
    attrs["held_back"] = len(checked)
    attrs["calibrated"] = int(not off)
    attrs["predictive_E_median"] = median_error
    attrs["predictive_E_best_sample"] = best_error
    attrs["predictive_check"] = "passed" if centred else "failed"
    coords = {
        "sample": np.arange(samples),
        "parameter": problem.free,
        "quantile": list(QUANTILES),
        "observation": observation_labels(protocols),
    }
    return xr.Dataset(variables, coords=coords, attrs=attrs)


def figure(result: xr.Dataset, best: Mapping[str, tuple[float, float, float]] | None, stem) -> list:
    """Pair plot of the posterior samples (seaborn): marginals on the diagonal with the best fit (line) and its
    Laplace 95 % interval (band, where finite) from ``best`` (name → (value, low, high)); saved as PNG and SVG."""
    import seaborn as sns

    from neurofwp import plotting

    names = [str(n) for n in result.parameter.values]
    frame = result[names].to_dataframe()
    with plotting.style():
        grid = sns.PairGrid(frame, vars=names, corner=True, height=1.8)
        if len(names) > 1:
            grid.map_lower(sns.kdeplot, fill=True, levels=5, thresh=0.05, cmap="mako")
        grid.map_diag(sns.histplot, bins=40, element="step", color="0.4")
        for i, name in enumerate(names if best is not None else []):
            value, low, high = best[name]  # type: ignore[index]
            ax = grid.diag_axes[i]
            ax.axvline(value, color="tab:red", lw=1.2)
            if np.isfinite(low) and np.isfinite(high):
                ax.axvspan(low, high, color="tab:red", alpha=0.15, lw=0)
        grid.figure.suptitle(
            f"{result.attrs['rule']} on {result.attrs.get('dataset', 'the data')}: posterior "
            f"({result.attrs['simulations']} simulations); red: best fit and Laplace 95 %",
            fontsize=8,
        )
        paths = plotting.save(grid.figure, stem)
    return paths


def best_fit(fit_result: xr.Dataset) -> dict[str, tuple[float, float, float]]:
    """A :func:`neurofwp.fit.fit` result as :func:`figure`'s ``best``: value and Laplace 95 % interval (NaN
    where the interval is not ``ok``)."""
    best = {}
    for name in fit_result.parameter.values:
        row = fit_result.sel(parameter=name)
        ok = str(row.laplace_status.values) == "ok"
        best[str(name)] = (
            float(fit_result.attrs[f"param_{name}"]),
            float(row.ci95_low) if ok else np.nan,
            float(row.ci95_high) if ok else np.nan,
        )
    return best


# ---------------------------------------------------------------------------------------------
# Posteriors inside a comparison: one cell per fitted rule × dataset, gathered onto its coordinates.

#: Posterior samples kept per comparison cell (and used for its predictive and pair plot).
COMPARISON_SAMPLES = 1000


def default_noise(table, error: float) -> tuple[float | None, str]:
    """The noise of data without SEMs: the best fit's RMS residual :math:`\\sqrt{E}` (E is then the mean
    squared error), and where it came from; ``(None, ...)`` for data with SEMs."""
    if observations(table).has_sem:
        return None, "the SEM of every observation"
    if not (np.isfinite(error) and error > 0):
        name = getattr(table, "name", "the data")
        raise NeurofwpError(
            f"{name} states no noise level (no SEM) and its best fit leaves no residual (E = {error:g}) to take one "
            "from: give a noise level"
        )
    return float(np.sqrt(error)), "the best fit's RMS residual"


def summary(result: xr.Dataset, rule: Rule, table, fitted: Mapping[str, float]) -> dict:
    """A posterior (:func:`posterior`) as a comparison cell: quantiles, coverage, kept samples and the
    posterior predictive of the data and of the dense curves of the dataset's structure."""
    from neurofwp.analysis import structure as structures
    from neurofwp.plasticity import simulate

    free = [str(n) for n in result.parameter.values]
    kept = {name: result[name].values[:COMPARISON_SAMPLES] for name in free}
    cell: dict = {
        "posterior_free": free,
        "posterior_sample": np.concatenate([kept[n] for n in free]).tolist(),
        "posterior_coverage_90": result.expected_coverage_90.values.tolist(),
        "posterior_calibrated": int(result.attrs["calibrated"]),
        "posterior_centred": int(result.attrs["predictive_check"] == "passed"),
        "posterior_noise": result.attrs["noise"],
        "posterior_seconds": result.attrs["seconds_simulating"] + result.attrs["seconds_training"],
        "predictive": result.predictive.values.ravel().tolist(),  # [quantile, observation]
    }
    _, protocols = structures.curve_protocols(structures.classify(table))
    if protocols:
        parameters = {**{k: v for k, v in fitted.items() if k not in free}, **kept}
        curves = 100.0 * (simulate(rule, list(protocols), parameters) - 1.0)  # [points, samples]
        cell["curve_predictive"] = np.quantile(curves, QUANTILES, axis=1).ravel().tolist()
    return cell


def posterior_cell(
    coords: dict,
    *,
    rules: Mapping[str, Rule],
    tables: Mapping,
    fits: Mapping[str, dict],
    simulations: int,
    seed: int,
) -> dict:
    """Sweep task: the posterior of ``coords["rule"]``'s fitted parameters on ``coords["dataset"]``.

    ``fits`` holds each cell's fit (``"rule/dataset"`` → its ``parameters``, ``free`` and ``E``): the
    free parameters are the fit's, the others stay at their values there, and data without SEMs
    take the fit's RMS residual as their noise (:func:`default_noise`).
    """
    rule, table = rules[coords["rule"]], tables[coords["dataset"]]
    fit = fits[f"{coords['rule']}/{coords['dataset']}"]
    noise, source = default_noise(table, fit["E"])
    fixed = {k: v for k, v in fit["parameters"].items() if k not in fit["free"]}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CalibrationWarning)  # recorded in the cell, reported by the comparison
        result = posterior(
            rule, table, simulations=simulations, samples=COMPARISON_SAMPLES, seed=seed, free=fit["free"],
            fixed=fixed, noise=noise, noise_source=source,
        )  # fmt: skip
    return summary(result, rule, table, fit["parameters"])


def add_to_comparison(result: xr.Dataset, cells: Sequence[dict], cell_results: Sequence[dict], simulations: int):
    """Gather posterior cells onto a comparison's coordinates (rule, dataset, parameter, protocol,
    observation, curve_point): quantiles, samples, coverage and the posterior predictive."""
    R, D, N = result.sizes["rule"], result.sizes["dataset"], result.sizes["parameter"]
    rules, names, parameters = list(result.rule.values), list(result.dataset.values), list(result.parameter.values)
    Q = len(QUANTILES)
    samples = np.full((R, D, N, COMPARISON_SAMPLES), np.nan)
    coverage = np.full((R, D, N), np.nan)
    calibrated = np.full((R, D), np.nan)
    centred = np.full((R, D), np.nan)
    noise = np.full((R, D), "", dtype=object)
    seconds = np.full((R, D), np.nan)
    dw = np.full((R, result.sizes.get("protocol", 0), Q), np.nan)
    amplitude = np.full((R, result.sizes.get("observation", 0), Q), np.nan)
    curve = np.full((R, result.sizes.get("curve_point", 0), Q), np.nan)
    for coords, cell in zip(cells, cell_results, strict=True):
        r, d = rules.index(coords["rule"]), names.index(coords["dataset"])
        free = cell["posterior_free"]
        drawn = np.asarray(cell["posterior_sample"]).reshape(len(free), -1)
        for j, name in enumerate(free):
            i = parameters.index(name)
            samples[r, d, i, : drawn.shape[1]] = drawn[j]
            coverage[r, d, i] = cell["posterior_coverage_90"][j]
        centred[r, d] = cell["posterior_centred"]
        calibrated[r, d], noise[r, d], seconds[r, d] = (
            cell["posterior_calibrated"],
            cell["posterior_noise"],
            cell["posterior_seconds"],
        )
        predictive = np.asarray(cell["predictive"]).reshape(Q, -1).T
        if str(result.structure.sel(dataset=coords["dataset"]).values) == "trains":
            rows = np.flatnonzero(result.observation_dataset.values == coords["dataset"])
            amplitude[r, rows] = predictive
        else:
            rows = np.flatnonzero(result.protocol_dataset.values == coords["dataset"])
            dw[r, rows] = predictive
        if "curve_predictive" in cell:
            rows = np.flatnonzero(result.curve_dataset.values == coords["dataset"])
            curve[r, rows] = np.asarray(cell["curve_predictive"]).reshape(Q, -1).T
    band = f"central 90 % band and median of the model under {COMPARISON_SAMPLES} posterior samples"
    cell_dims, parameter_dims = ("rule", "dataset"), ("rule", "dataset", "parameter")
    result = result.assign_coords(quantile=list(QUANTILES), sample=np.arange(COMPARISON_SAMPLES))
    result["posterior_sample"] = (
        (*parameter_dims, "sample"),
        samples,
        {"units": "see parameter_units", "long_name": "posterior sample (sbi NPE); NaN: not free or not computed"},
    )
    result["posterior_coverage_90"] = (
        parameter_dims,
        coverage,
        {"units": "1", "long_name": "share of held-back simulations inside the central 90 % credible interval"},
    )
    result["posterior_calibrated"] = (
        cell_dims,
        calibrated,
        {"units": "1", "long_name": "1: coverage within max(3 SE, 0.05) of 0.9 for every parameter; 0: not"},
    )
    result["posterior_centred"] = (
        cell_dims,
        centred,
        {
            "units": "1",
            "long_name": "1: the posterior predictive sits on the data (posterior predictive check); 0: not",
        },
    )
    result["posterior_noise"] = (cell_dims, noise.astype(str), {"long_name": "measurement noise of the simulations"})
    result["posterior_seconds"] = (cell_dims, seconds, {"units": "s", "long_name": "simulating and training"})
    if dw.shape[1]:
        result["dw_posterior"] = (("rule", "protocol", "quantile"), dw, {"units": "percent", "long_name": band})
    if amplitude.shape[1]:
        units = result.amplitude_data.attrs.get("units", "")
        result["amplitude_posterior"] = (
            ("rule", "observation", "quantile"),
            amplitude,
            {"units": units, "long_name": band},
        )
    if curve.shape[1]:
        result["curve_posterior"] = (
            ("rule", "curve_point", "quantile"),
            curve,
            {"units": "percent", "long_name": band},
        )
    result.attrs["posterior_simulations"] = simulations
    return result


def pair_figure(result: xr.Dataset, rule: str, dataset: str, stem, samples: xr.Dataset | None = None) -> list:
    """The pair plot of one comparison cell's posterior (:func:`figure`), with its fit and Laplace interval;
    ``samples`` (a :func:`posterior` result) instead of the samples the comparison kept."""
    cell = result.sel(rule=rule, dataset=dataset)
    free = [str(p) for p in result.parameter.values if np.isfinite(cell.posterior_sample.sel(parameter=p)).any()]
    samples = (
        samples
        if samples is not None
        else xr.Dataset(
            {name: ("sample", cell.posterior_sample.sel(parameter=name).values) for name in free},
            coords={"parameter": free},
            attrs={"rule": rule, "dataset": dataset, "simulations": result.attrs["posterior_simulations"]},
        )
    )
    best = {
        name: (
            float(cell.parameter_value.sel(parameter=name)),
            float(cell.parameter_ci95_low.sel(parameter=name)),
            float(cell.parameter_ci95_high.sel(parameter=name)),
        )
        for name in free
    }
    return figure(samples, best, stem)
