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
from neurofwp.errors import NeurofwpError, OutOfRangeError
from neurofwp.fit import _positive_int, prepare
from neurofwp.plasticity import check_rule, source_attrs
from neurofwp.plasticity.rules import Rule
from neurofwp.protocols import Protocol

__all__ = ["CalibrationWarning", "MIN_SIMULATIONS", "figure", "posterior"]

#: Fewer simulations than this cannot train a density estimator worth reporting.
MIN_SIMULATIONS = 500
SIMULATION_BATCH = 2000
#: The nominal level of the credible intervals whose coverage is checked.
LEVEL = 0.9
#: Posterior samples per held-back simulation in the coverage check.
COVERAGE_SAMPLES = 200


class CalibrationWarning(UserWarning):
    """The posterior's credible intervals do not cover held-back simulations at their nominal rate."""


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
    held_back: int = 200,
    dt_ms: float = 0.1,
    dataset: str | None = None,
    citation: str | None = None,
    show_progress: bool = False,
) -> xr.Dataset:
    """Posterior samples of ``rule``'s free parameters given ``protocols`` (module docstring).

    Args:
        simulations: N, the simulated parameter sets the estimator learns from (≥ MIN_SIMULATIONS).
        samples: posterior samples drawn at the observed data.
        free, fixed, bounds: as :func:`neurofwp.fit.fit`; ``bounds`` set the uniform prior and
            must lie within the rule's bounds.
        noise: the measurement noise (SD, units of the data) for data without SEMs; ignored
            where the data have SEMs.
        held_back: simulations kept out of training to check calibration: for each, the share of
            free parameters inside the central 90 % credible interval of the posterior at its
            data (expected coverage, per parameter, ``expected_coverage_90``). A coverage further
            than max(3 binomial SE, 0.05) from 0.9 raises a :class:`CalibrationWarning`.

    Returns a Dataset with one variable per free parameter over ``sample`` (named as the
    parameter, with its units), attrs with the prior bounds (``prior_<name>``), the settings,
    the seed and the seconds spent simulating and training.
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
        scale = torch.as_tensor(problem.scale)
        noise_description = "the SEM of every observation"
    elif noise is not None:
        if not (np.isfinite(noise) and noise > 0):
            raise OutOfRangeError(f"noise must be a finite SD > 0 (units of the data), got {noise!r}")
        scale = torch.full((len(problem.data),), float(noise), dtype=torch.float64)
        noise_description = f"SD {noise:g} for every observation (given: the data have no SEM)"
    else:
        name = source.get("dataset", "the data")
        raise NeurofwpError(
            f"{name} states no noise level (no SEM): give noise= (the SD of a measurement, units of the data)"
        )
    sbi = _sbi()
    low = torch.as_tensor(problem.low, dtype=torch.float32)
    high = torch.as_tensor(problem.low + problem.span, dtype=torch.float32)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        prior = sbi.utils.BoxUniform(low, high)
        began = time.perf_counter()
        theta = prior.sample((simulations,)).to(torch.float64)
        parts = []
        with torch.no_grad():
            for chunk in theta.split(SIMULATION_BATCH):
                parts.append(problem._model(chunk).T)  # [sets, observations]
        x = torch.cat(parts)
        x = x + torch.randn_like(x) * scale
        finite = torch.isfinite(x).all(1)
        training = finite.clone()
        training[simulations - held_back :] = False  # the last ones check calibration
        simulated = time.perf_counter() - began
        began = time.perf_counter()
        inference = sbi.inference.NPE(prior=prior, show_progress_bars=show_progress)
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
    variables = {
        name: (
            "sample",
            drawn[:, i],
            {"units": "ms" if rule.parameter(name).is_time else "1", "long_name": f"posterior sample of {name}"},
        )
        for i, name in enumerate(problem.free)
    }
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
    return xr.Dataset(variables, coords={"sample": np.arange(samples), "parameter": problem.free}, attrs=attrs)


def figure(result: xr.Dataset, best: xr.Dataset | None, stem) -> list:
    """Pair plot of the posterior samples (seaborn): marginals on the diagonal with the best fit (line) and its
    Laplace 95 % interval (band) where ``best`` (a :func:`neurofwp.fit.fit` result) is given; saved as PNG and SVG."""
    import seaborn as sns

    from neurofwp import plotting

    names = [str(n) for n in result.parameter.values]
    frame = result[names].to_dataframe()
    with plotting.style():
        grid = sns.PairGrid(frame, vars=names, corner=True, height=1.8)
        grid.map_lower(sns.kdeplot, fill=True, levels=5, thresh=0.05, cmap="mako")
        grid.map_diag(sns.histplot, bins=40, element="step", color="0.4")
        if best is not None:
            for i, name in enumerate(names):
                ax = grid.diag_axes[i]
                ax.axvline(best.attrs[f"param_{name}"], color="tab:red", lw=1.2)
                row = best.sel(parameter=name)
                if str(row.laplace_status.values) == "ok":
                    ax.axvspan(float(row.ci95_low), float(row.ci95_high), color="tab:red", alpha=0.15, lw=0)
        grid.figure.suptitle(
            f"{result.attrs['rule']} on {result.attrs.get('dataset', 'the data')}: posterior "
            f"({result.attrs['simulations']} simulations); red: best fit and Laplace 95 %",
            fontsize=8,
        )
        paths = plotting.save(grid.figure, stem)
    return paths
