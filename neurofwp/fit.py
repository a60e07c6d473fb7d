r"""Fit plasticity rules to plasticity data.

The objective is Pfister & Gerstner's (2006) error

.. math::

    E = \frac{1}{P} \sum_p \left(\frac{\Delta w^\text{data}_p - \Delta w^\text{model}_p}{\mathrm{SEM}_p}\right)^2

(plain mean squared error in percent² where the data have no SEM; a table where only some
rows have an SEM is rejected, naming them), minimised over the
free parameters within bounds by L-BFGS-B from several random starts. The torch backend
supplies exact gradients (autograd, float64); the brian2 backend can run in the loop
instead, with central-difference gradients whose ``2n + 1`` parameter sets are simulated
side by side in one Brian2 network, to confirm an optimum.
"""

from __future__ import annotations

import numbers
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import scipy.optimize
import torch
import xarray as xr

from neurofwp import sweeps
from neurofwp.errors import DTypeError, NeurofwpError, OutOfRangeError, UnknownNameError
from neurofwp.plasticity import (
    BACKENDS,
    brian2_backend,
    check_dt,
    check_protocols,
    check_rule,
    predict,
    source_attrs,
    torch_backend,
)
from neurofwp.plasticity.rules import Rule, check_parameter_value
from neurofwp.protocols import Protocol, ProtocolError, check_sem

# Which parameters are free by default; the others keep their defaults (time constants
# of the pair traces fixed at Bi & Poo's values, as Pfister & Gerstner 2006 did).
DEFAULT_FREE = {
    "stdp": ("A_plus", "A_minus"),
    "stdp-nearest": ("A_plus", "A_minus"),
    "triplet": ("A2_plus", "A3_plus", "A2_minus", "A3_minus", "tau_x_ms", "tau_y_ms"),
    "triplet-nearest": ("A2_plus", "A3_plus", "A2_minus", "A3_minus", "tau_x_ms", "tau_y_ms"),
    "delta": ("eta", "tau_plus_ms"),
    "stdp-modulated": ("A_plus", "A_minus", "a", "b", "c"),
}


@dataclass
class FitResult:
    parameters: dict[str, float]
    error: float
    evaluations: int


def objective_terms(protocols: Sequence[Protocol]) -> tuple[np.ndarray, np.ndarray, bool]:
    """Data and the per-protocol scale (SEM, or 1 without SEM) of E.

    Raises :class:`~neurofwp.protocols.MissingSEMError` (naming the rows) where only some
    protocols have an SEM.
    """
    if any(p.dw_percent is None for p in protocols):
        missing = next(p.name for p in protocols if p.dw_percent is None)
        raise ProtocolError(f"protocol {missing!r} has no dw_percent: there is nothing to fit")
    data = np.array([p.dw_percent for p in protocols], dtype=float)
    has_sem = check_sem(protocols)
    scale = np.array([p.sem_percent for p in protocols], dtype=float) if has_sem else np.ones(len(protocols))
    return data, scale, has_sem


def _bounds(rule: Rule, free: Sequence[str], bounds: Mapping[str, tuple[float, float]] | None):
    bounds = {} if bounds is None else bounds
    if not isinstance(bounds, Mapping):
        raise DTypeError(f"bounds must be a mapping name -> (low, high), got {type(bounds).__name__}")
    for name in bounds:
        rule.parameter(name)  # an unknown name raises UnknownNameError
        if name not in free:
            raise NeurofwpError(
                f"a bound is given for {name}, which is not a free parameter (free: {', '.join(free)}); "
                f"free it too, or drop the bound"
            )
    result = {}
    for name in free:
        pair = bounds.get(name, rule.parameter(name).bounds)
        try:
            low, high = (float(x) for x in pair)
        except (TypeError, ValueError):
            raise DTypeError(f"bounds of {name} must be a pair of numbers (low, high), got {pair!r}") from None
        if not (np.isfinite(low) and np.isfinite(high) and low < high):
            raise OutOfRangeError(f"bounds of {name} must be finite with low < high, got ({low:g}, {high:g})")
        if rule.parameter(name).is_time and low <= 0:
            raise OutOfRangeError(f"lower bound of time constant {name} must be > 0 ms, got {low:g}")
        result[name] = (low, high)
    return result


def _positive_int(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise DTypeError(f"{name} must be an int >= {minimum}, got {value!r}")
    if value < minimum:
        raise OutOfRangeError(f"{name} must be an int >= {minimum}, got {value!r}")
    return int(value)


class _Problem:
    """E as a function of the free parameters mapped to the unit cube (well scaled for L-BFGS-B)."""

    def __init__(self, rule, protocols, free, fixed, bounds, backend, dt_ms):
        self.rule, self.protocols, self.free, self.fixed = rule, protocols, list(free), dict(fixed)
        self.low = np.array([bounds[n][0] for n in free])
        self.span = np.array([bounds[n][1] - bounds[n][0] for n in free])
        self.backend, self.dt_ms = backend, dt_ms
        self.data, self.scale, self.has_sem = objective_terms(protocols)
        self.evaluations = 0

    def values(self, unit: np.ndarray) -> dict[str, float]:
        return {**self.fixed, **dict(zip(self.free, self.low + self.span * unit, strict=True))}

    def _error_of_weights(self, weights):
        model = 100.0 * (weights - 1.0)
        return ((model - self.data[:, None]) / self.scale[:, None]) ** 2

    def value_and_gradient(self, unit: np.ndarray) -> tuple[float, np.ndarray]:
        self.evaluations += 1
        if self.backend == "torch":
            leaves = torch.tensor(unit, dtype=torch.float64, requires_grad=True)
            actual = torch.as_tensor(self.low) + torch.as_tensor(self.span) * leaves
            parameters = {**self.fixed, **{n: actual[i : i + 1] for i, n in enumerate(self.free)}}
            weights = torch_backend.simulate(self.rule, self.protocols, parameters, dt_ms=self.dt_ms)[:, 0]
            model = 100.0 * (weights - 1.0)
            error = (((model - torch.as_tensor(self.data)) / torch.as_tensor(self.scale)) ** 2).mean()
            (gradient,) = torch.autograd.grad(error, leaves)
            return float(error.detach()), gradient.numpy()
        # brian2 in the loop: the point and its 2n central-difference neighbours side by side in one run
        step = 1e-5
        n = len(unit)
        upper = np.minimum(unit + step, 1.0)
        lower = np.maximum(unit - step, 0.0)
        points = np.repeat(unit[None, :], 2 * n + 1, axis=0)
        for i in range(n):
            points[1 + i, i] = upper[i]
            points[1 + n + i, i] = lower[i]
        columns = {name: self.low[i] + self.span[i] * points[:, i] for i, name in enumerate(self.free)}
        sampled = brian2_backend.simulate(self.rule, self.protocols, {**self.fixed, **columns}, dt_ms=self.dt_ms)
        errors = self._error_of_weights(sampled).mean(axis=0)
        return float(errors[0]), (errors[1 : 1 + n] - errors[1 + n :]) / (upper - lower)


def _finite_or_inf(value: float) -> float:
    return value if np.isfinite(value) else np.inf


def _fit_start(coords: dict, *, problem: _Problem, points: list, max_iterations: int) -> dict:
    """Sweep task: one L-BFGS-B run from ``points[coords["start"]]`` on the unit cube."""
    before = problem.evaluations
    outcome = scipy.optimize.minimize(
        problem.value_and_gradient, np.asarray(points[coords["start"]]), jac=True, method="L-BFGS-B",
        bounds=[(0.0, 1.0)] * len(problem.free), options={"maxiter": max_iterations},
    )  # fmt: skip
    return {"x": outcome.x.tolist(), "E": float(outcome.fun), "evaluations": problem.evaluations - before}


def fit(
    rule: str | Rule,
    protocols: Sequence[Protocol],
    *,
    free: Sequence[str] | None = None,
    fixed: Mapping[str, float] | None = None,
    bounds: Mapping[str, tuple[float, float]] | None = None,
    backend: str = "torch",
    starts: int = 4,
    seed: int = 0,
    dt_ms: float = 0.1,
    max_iterations: int = 200,
    workers: int = 1,
    scheduler: str | None = None,
    show_progress: bool = True,
    dataset: str | None = None,
    citation: str | None = None,
) -> xr.Dataset:
    """Fit ``rule`` to ``protocols``; returns data, SEM and prediction per protocol with the fit in attrs.

    Args:
        free: parameters to fit (default: :data:`DEFAULT_FREE` of the rule, minus ``fixed``).
        fixed: parameter values held fixed (others not free keep the rule's defaults).
        bounds: ``name -> (low, high)`` overriding the rule's bounds (time constants 1-200 ms).
        backend: ``"torch"`` (autograd gradients) or ``"brian2"`` (finite differences).
        starts: random starts, uniform within the bounds (the first start is the defaults, clipped).
        seed: seeds the starts; the fit is reproducible from it.
        workers, scheduler: run the starts on local processes or a dask.distributed cluster
            (:func:`neurofwp.sweeps.run`); the result is the same wherever they ran.
        dataset, citation: name the data in the result's attrs (default: those of ``protocols``
            when it is a :class:`~neurofwp.protocols.ProtocolTable`, e.g. from :func:`neurofwp.data.resolve`).
    """
    rule = check_rule(rule)
    source = source_attrs(protocols, dataset, citation)
    if backend not in BACKENDS:
        raise UnknownNameError("backend", backend, BACKENDS)
    starts = _positive_int("starts", starts, 1)
    seed = _positive_int("seed", seed, 0)
    max_iterations = _positive_int("max_iterations", max_iterations, 1)
    dt_ms = check_dt(dt_ms)
    protocols = check_protocols(protocols)
    if fixed is not None and not isinstance(fixed, Mapping):
        raise DTypeError(f"fixed must be a mapping name -> value, got {type(fixed).__name__}")
    fixed = {name: check_parameter_value(rule.parameter(name), value) for name, value in (fixed or {}).items()}
    if free is None:  # the rule's defaults, minus whatever the caller fixes
        free = [name for name in DEFAULT_FREE.get(rule.name, rule.parameter_names) if name not in fixed]
    free = [free] if isinstance(free, str) else list(free)
    for name in free:
        rule.parameter(name)
        if name in fixed:
            raise NeurofwpError(f"parameter {name} cannot be both free and fixed")
    if not free:
        raise NeurofwpError(f"no free parameters left to fit for rule {rule.name!r}")
    if len(set(free)) != len(free):
        raise NeurofwpError(f"free parameters are listed twice: {', '.join(free)}")
    held = {**{k: v for k, v in rule.defaults().items() if k not in free}, **fixed}
    limits = _bounds(rule, free, bounds)
    problem = _Problem(rule, protocols, free, held, limits, backend, dt_ms)
    if rule.clock_driven:  # checked once here, not part-way through the optimisation
        for trace in rule.traces:
            name = next(p.name for p in rule.parameters if p.symbol == trace.tau)
            shortest = limits[name][0] if name in limits else held[name]
            if dt_ms >= shortest:
                raise OutOfRangeError(
                    f"dt_ms = {dt_ms:g} must be smaller than every trace time constant; {name} can be {shortest:g} ms"
                )
        torch_backend.event_table(protocols, dt_ms)  # every event on the dt_ms grid

    rng = np.random.default_rng(seed)
    defaults = np.array([(rule.parameter(n).default - limits[n][0]) / (limits[n][1] - limits[n][0]) for n in free])
    candidates = [np.clip(defaults, 0, 1)] + [rng.uniform(0, 1, len(free)) for _ in range(starts - 1)]
    began = time.perf_counter()
    outcomes = sweeps.run(
        _fit_start, [{"start": i} for i in range(starts)], workers=workers, scheduler=scheduler,
        progress=show_progress, desc=f"fit {rule.name}", problem=problem,
        points=[c.tolist() for c in candidates], max_iterations=max_iterations,
    )  # fmt: skip
    # the lowest E wins; ties go to the earlier start, so the result does not depend on where starts ran
    winner = min(range(starts), key=lambda i: (_finite_or_inf(outcomes[i]["E"]), i))
    best = FitResult(
        problem.values(np.asarray(outcomes[winner]["x"])),
        float(outcomes[winner]["E"]),
        sum(int(o["evaluations"]) for o in outcomes),
    )
    seconds = time.perf_counter() - began

    # the fitted rule's prediction, E and parameters, exactly as `neurofwp predict` reports them
    result = predict(rule, problem.protocols, best.parameters, backend=backend, dt_ms=dt_ms, **source)
    result["dw_percent_model"].attrs["long_name"] = f"weight change predicted by the fitted {rule.name}"
    result.attrs.update(
        {
            "seed": seed,
            "starts": starts,
            "evaluations": best.evaluations,
            "fit_seconds": seconds,
            "free": " ".join(free),
            "fixed": " ".join(sorted(held)),
            **{f"bounds_{name}": np.array(limits[name]) for name in free},
        }
    )
    return result
