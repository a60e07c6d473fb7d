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

Beside E the result carries the model-selection quantities (see ``docs/fitting.md``): the
number of free parameters k, the Gaussian log-likelihood implied by E

.. math::

    \log L = -\tfrac12 \Big(P E + \sum_p \log 2\pi\,\mathrm{SEM}_p^2\Big)

(without SEM: :math:`\hat\sigma^2 = E`, :math:`\log L = -\tfrac P2 (\log 2\pi\hat\sigma^2 + 1)`,
k counts σ), AIC = 2k − 2 log L, AICc = AIC + 2k(k+1)/(P − k − 1), BIC = k ln P − 2 log L;
which free parameters end at a bound; and Laplace 95 % intervals
:math:`\hat\theta_i \pm 1.96 \sqrt{(H^{-1})_{ii}}` from the Hessian H of the negative
log-likelihood in the physical parameters at the optimum.
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
from neurofwp.observations import model as model_observations
from neurofwp.observations import model_numpy as model_observations_numpy
from neurofwp.observations import observations
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
from neurofwp.plasticity.definition import check_time_step
from neurofwp.plasticity.rules import Rule, check_parameter_value
from neurofwp.protocols import Protocol

# A free parameter within this fraction of its bound width from a bound is reported at that bound.
AT_BOUND_TOLERANCE = 1e-6
# Eigenvalues of the (unit-cube scaled) Hessian below this fraction of the largest count as flat.
FLAT_TOLERANCE = 1e-9
# A parameter whose squared loading on flat or negative directions exceeds this has no Laplace interval.
FLAT_LOADING = 1e-3
Z95 = 1.959963984540054  # the 97.5 % quantile of the standard normal


def default_free(rule: Rule) -> tuple[str, ...]:
    """The parameters a fit frees by default: the rule's own ``free`` metadata (every parameter unless it says)."""
    return tuple(rule.free)


@dataclass
class FitResult:
    parameters: dict[str, float]
    error: float
    evaluations: int


def objective_terms(protocols: Sequence[Protocol]) -> tuple[np.ndarray, np.ndarray, bool]:
    """Data and the per-observation scale (SEM, or 1 without SEM) of E (:func:`neurofwp.observations.observations`).

    Raises :class:`~neurofwp.protocols.MissingSEMError` (naming the rows) where only some
    observations have an SEM.
    """
    observed = observations(protocols)
    return observed.data, observed.scale, observed.has_sem


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
        parameter = rule.parameter(name)
        if parameter.is_time and (low < 0 or (low == 0 and not parameter.may_be_zero)):
            relation = ">= 0" if parameter.may_be_zero else "> 0"
            raise OutOfRangeError(f"lower bound of time constant {name} must be {relation} ms, got {low:g}")
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
        self.bounds = dict(bounds)
        self.low = np.array([bounds[n][0] for n in free])
        self.span = np.array([bounds[n][1] - bounds[n][0] for n in free])
        self.backend, self.dt_ms = backend, dt_ms
        self.observed = observations(protocols)
        self.data, self.scale, self.has_sem = self.observed.data, self.observed.scale, self.observed.has_sem
        self.evaluations = 0

    def values(self, unit: np.ndarray) -> dict[str, float]:
        return {**self.fixed, **dict(zip(self.free, self.low + self.span * unit, strict=True))}

    def unit(self, values: Mapping[str, float]) -> np.ndarray:
        """The unit-cube coordinates of the free parameters in ``values`` (others ignored), clipped to the cube."""
        point = np.array([(float(values[n]) - self.low[i]) / self.span[i] for i, n in enumerate(self.free)])
        return np.clip(point, 0.0, 1.0)

    def _model(self, actual: torch.Tensor, rows: Sequence[int] | None = None) -> torch.Tensor:
        """The model's observations ``[N, M]`` (dw in percent, or responses) for free values ``actual [M, n]``."""
        parameters = {**self.fixed, **{n: actual[:, i] for i, n in enumerate(self.free)}}
        return model_observations(self.rule, self.protocols, self.observed, parameters, dt_ms=self.dt_ms, rows=rows)

    def value_and_gradient(self, unit: np.ndarray) -> tuple[float, np.ndarray]:
        self.evaluations += 1
        if self.backend == "torch":
            leaves = torch.tensor(unit, dtype=torch.float64, requires_grad=True)
            actual = torch.as_tensor(self.low) + torch.as_tensor(self.span) * leaves
            model = self._model(actual[None, :])[:, 0]
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
        run = brian2_backend.simulate_responses if self.observed.trains else brian2_backend.simulate
        sampled = run(self.rule, self.protocols, {**self.fixed, **columns}, dt_ms=self.dt_ms)
        sampled_model = model_observations_numpy(self.rule, self.protocols, self.observed, sampled)
        errors = (((sampled_model - self.data[:, None]) / self.scale[:, None]) ** 2).mean(axis=0)
        return float(errors[0]), (errors[1 : 1 + n] - errors[1 + n :]) / (upper - lower)

    def batch(self, units: np.ndarray, masks: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        r"""E of ``M`` parameter sets in one torch call, each over its own protocols.

        ``units [M, n]`` are points in the unit cube, ``masks [P, M]`` (0/1) say which protocols
        each set is judged on: :math:`E_m = \sum_n c_{nm} r_{nm}^2 / \sum_n c_{nm}` over the
        observations n (:math:`c_{nm}` the mask of n's protocol) with the standardised residuals
        r. Returns E ``[M]``, its gradient in unit coordinates ``[M, n]`` (the sets are
        independent, so the gradient of :math:`\sum_m E_m` holds each one's own) and the
        predictions ``[N, M]``.
        """
        self.evaluations += units.shape[0]
        leaves = torch.tensor(units, dtype=torch.float64, requires_grad=True)
        actual = torch.as_tensor(self.low) + torch.as_tensor(self.span) * leaves
        model = self._model(actual)
        squared = ((model - torch.as_tensor(self.data)[:, None]) / torch.as_tensor(self.scale)[:, None]) ** 2
        weight = torch.as_tensor(np.asarray(masks)[self.observed.protocol], dtype=torch.float64)
        errors = (squared * weight).sum(0) / weight.sum(0)
        (gradient,) = torch.autograd.grad(errors.sum(), leaves)
        return errors.detach().numpy(), gradient.numpy(), model.detach().numpy()

    def negative_log_likelihood(self, actual: torch.Tensor) -> torch.Tensor:
        r"""−log L of the free parameters ``actual [n]`` (physical units), up to a constant.

        With SEMs: :math:`\tfrac12 \sum_p r_p^2`; without: the σ-profiled
        :math:`\tfrac P2 \log \overline{r^2}` (σ̂² = MSE), whose Hessian in θ at the optimum equals
        the θ-block of the full Hessian in (θ, σ) (the cross terms vanish where ∂MSE/∂θ = 0).
        """
        model = self._model(actual[None, :])[:, 0]
        squared = ((model - torch.as_tensor(self.data)) / torch.as_tensor(self.scale)) ** 2
        if self.has_sem:
            return 0.5 * squared.sum()
        return 0.5 * len(self.data) * torch.log(squared.mean())


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


def prepare(
    rule: str | Rule,
    protocols: Sequence[Protocol],
    *,
    free: Sequence[str] | None = None,
    fixed: Mapping[str, float] | None = None,
    bounds: Mapping[str, tuple[float, float]] | None = None,
    backend: str = "torch",
    dt_ms: float = 0.1,
) -> _Problem:
    """Check a fit request and return its objective (shared by :func:`fit` and the model-selection functions)."""
    rule = check_rule(rule)
    if backend not in BACKENDS:
        raise UnknownNameError("backend", backend, BACKENDS)
    dt_ms = check_dt(dt_ms)
    protocols = check_protocols(protocols)
    if fixed is not None and not isinstance(fixed, Mapping):
        raise DTypeError(f"fixed must be a mapping name -> value, got {type(fixed).__name__}")
    fixed = {name: check_parameter_value(rule.parameter(name), value) for name, value in (fixed or {}).items()}
    if free is None:  # the rule's defaults, minus whatever the caller fixes
        free = [name for name in default_free(rule) if name not in fixed]
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
    if rule.clock_driven:  # checked once here, at the smallest time constants the bounds allow
        check_time_step(rule, dt_ms, {**held, **{name: limits[name][0] for name in free}})
        torch_backend.event_table(protocols, dt_ms)  # every event on the dt_ms grid
    return problem


def start_points(problem: _Problem, starts: int, seed: int, start: Mapping[str, float] | None = None) -> list:
    """The starts of a fit in the unit cube: ``start`` (default: the rule's defaults), clipped to the bounds,
    then ``starts - 1`` points uniform in the bounds drawn from ``seed`` (log-uniform for a time
    constant that may be 0)."""
    if start is not None and not isinstance(start, Mapping):
        raise DTypeError(f"start must be a mapping name -> value, got {type(start).__name__}")
    first = {name: problem.rule.parameter(name).default for name in problem.free}
    for name, value in (start or {}).items():
        if name in problem.free:  # values of parameters held fixed (e.g. a whole fitted set) are ignored
            first[name] = check_parameter_value(problem.rule.parameter(name), value)
        else:
            problem.rule.parameter(name)  # an unknown name raises UnknownNameError
    rng = np.random.default_rng(seed)
    points = [problem.unit(first)] + [rng.uniform(0, 1, len(problem.free)) for _ in range(starts - 1)]
    # A time constant that may be 0 is flat near 0 (e^{-Δ/τ} and its derivatives vanish) and spans
    # decades: its random starts are log-uniform from 1 ms (or its lower bound) to its upper bound.
    for index, name in enumerate(problem.free):
        parameter = problem.rule.parameter(name)
        if parameter.may_be_zero:
            low, high = max(problem.bounds[name][0], 1.0), problem.bounds[name][1]
            if low < high:
                for point in points[1:]:
                    value = np.exp(np.log(low) + point[index] * (np.log(high) - np.log(low)))
                    point[index] = (value - problem.low[index]) / problem.span[index]
    return points


def information_criteria(error: float, n_protocols: int, n_free: int, sem: Sequence[float] | None) -> dict:
    r"""k, log L, AIC, AICc and BIC of a fit with error ``error`` (E) on ``n_protocols`` protocols.

    With SEMs (Gaussian measurement noise of the stated SEM, densities per percent):
    :math:`\log L = -\tfrac12 (P E + \sum_p \log 2\pi s_p^2)`, k = ``n_free``.
    Without (E is the MSE in percent², σ estimated): :math:`\hat\sigma^2 = E`,
    :math:`\log L = -\tfrac P2 (\log 2\pi\hat\sigma^2 + 1)`, k = ``n_free + 1``.
    AIC = 2k − 2 log L; AICc = AIC + 2k(k+1)/(P − k − 1) (NaN when P ≤ k + 1, where it is
    undefined); BIC = k ln P − 2 log L.
    """
    P = int(n_protocols)
    if sem is not None:
        s = np.asarray(sem, dtype=float)
        if s.shape != (P,):
            raise NeurofwpError(f"sem has {s.size} values for {P} protocols")
        k = int(n_free)
        log_l = -0.5 * (P * error + float(np.sum(np.log(2 * np.pi * s**2))))
        definition = "-(P*E + sum(log(2*pi*sem^2)))/2, Gaussian noise with the stated SEMs"
    else:
        k = int(n_free) + 1
        log_l = -0.5 * P * (np.log(2 * np.pi * error) + 1.0) if error > 0 else np.inf
        definition = "-P/2*(log(2*pi*sigma^2) + 1), sigma^2 = E (the MSE) estimated: one more parameter"
    aic = 2 * k - 2 * log_l
    aicc = aic + 2 * k * (k + 1) / (P - k - 1) if P > k + 1 else float("nan")
    return {
        "k": k,
        "n_protocols": P,
        "log_likelihood": float(log_l),
        "AIC": float(aic),
        "AICc": float(aicc),
        "BIC": float(k * np.log(P) - 2 * log_l),
        "log_likelihood_definition": definition,
    }


def at_bound(problem: _Problem, unit: np.ndarray) -> np.ndarray:
    """Per free parameter: −1 at the lower bound, +1 at the upper, 0 inside (within AT_BOUND_TOLERANCE of the width)."""
    unit = np.asarray(unit, dtype=float)
    return np.where(unit <= AT_BOUND_TOLERANCE, -1, np.where(unit >= 1 - AT_BOUND_TOLERANCE, 1, 0)).astype(np.int8)


# Step (unit-cube coordinates) of the central differences of autograd gradients for clock-driven rules.
HESSIAN_STEP = 1e-4


def nll_hessian(problem: _Problem, unit: np.ndarray) -> np.ndarray:
    """Hessian of −log L in unit-cube coordinates at ``unit``, ``[n, n]``.

    Event-driven rules: exact, by double backward (torch autograd). Clock-driven rules, whose
    double backward through every Euler step costs tens of seconds: central differences of
    exact autograd gradients, step HESSIAN_STEP (one-sided within a step of a bound),
    symmetrised; its error is O(step²) relative.
    """
    low, span = torch.as_tensor(problem.low), torch.as_tensor(problem.span)

    def nll(u):
        return problem.negative_log_likelihood(low + span * u)

    point = torch.tensor(unit, dtype=torch.float64)
    if not problem.rule.clock_driven:
        return torch.autograd.functional.hessian(nll, point).numpy()

    def gradient(u: np.ndarray) -> np.ndarray:
        leaves = torch.tensor(u, dtype=torch.float64, requires_grad=True)
        (g,) = torch.autograd.grad(nll(leaves), leaves)
        return g.numpy()

    n = len(unit)
    hessian = np.empty((n, n))
    for i in range(n):
        ahead, behind = np.array(unit, dtype=float), np.array(unit, dtype=float)
        ahead[i] = min(unit[i] + HESSIAN_STEP, 1.0)
        behind[i] = max(unit[i] - HESSIAN_STEP, 0.0)
        hessian[:, i] = (gradient(ahead) - gradient(behind)) / (ahead[i] - behind[i])
    return 0.5 * (hessian + hessian.T)


def laplace(problem: _Problem, unit: np.ndarray, flags: np.ndarray | None = None) -> dict:
    r"""Laplace approximation at the optimum ``unit``: standard deviations and a status per free parameter.

    H is the Hessian of −log L (:meth:`_Problem.negative_log_likelihood`) by torch autograd in
    float64 (:func:`nll_hessian`), taken in the unit-cube coordinates u (θ = low + span·u, so H_θ = D⁻¹ H_u D⁻¹ with
    D = diag(span)) for conditioning. Parameters at a bound are held there (their rows and
    columns are dropped, status ``"at bound"``); for the others the covariance is H⁻¹. Where H
    has flat (eigenvalue ≤ FLAT_TOLERANCE × largest) or negative directions, parameters loading
    on them by more than FLAT_LOADING get status ``"singular"`` and no interval; the rest use the
    inverse on the well-determined directions. ``sd`` is NaN exactly where status is not ``"ok"``.
    """
    flags = at_bound(problem, unit) if flags is None else flags
    n = len(problem.free)
    sd = np.full(n, np.nan)
    status = np.array(["at bound" if f else "ok" for f in flags], dtype=object)
    inside = np.flatnonzero(flags == 0)
    if inside.size == 0:
        return {"sd": sd, "status": status.astype(str)}
    hessian = nll_hessian(problem, unit)
    block = hessian[np.ix_(inside, inside)]
    block = 0.5 * (block + block.T)
    if not np.all(np.isfinite(block)):
        status[inside] = "singular"
        return {"sd": sd, "status": status.astype(str)}
    values, vectors = np.linalg.eigh(block)
    largest = max(float(np.max(np.abs(values))), np.finfo(float).tiny)
    good = values > FLAT_TOLERANCE * largest
    loading = (vectors[:, ~good] ** 2).sum(axis=1)
    covariance = (vectors[:, good] / values[good]) @ vectors[:, good].T
    for j, i in enumerate(inside):
        if loading[j] > FLAT_LOADING:
            status[i] = "singular"
        else:
            sd[i] = problem.span[i] * np.sqrt(covariance[j, j])
    return {"sd": sd, "status": status.astype(str)}


def selection_variables(problem: _Problem, unit: np.ndarray, error: float, *, uncertainty: bool = True) -> tuple:
    """The model-selection attrs (k, log L, AIC, AICc, BIC) and the per-parameter variables of a fit at ``unit``."""
    criteria = information_criteria(
        error, len(problem.data), len(problem.free), problem.scale if problem.has_sem else None
    )
    flags = at_bound(problem, unit)
    values = problem.low + problem.span * np.asarray(unit)
    units = ["ms" if problem.rule.parameter(n).is_time else "1" for n in problem.free]
    per = "per parameter: see parameter_units"
    variables: dict[str, tuple] = {
        "fitted_value": ("parameter", values, {"units": per, "long_name": "fitted value of the free parameter"}),
        "at_bound": (
            "parameter",
            flags,
            {
                "units": "1",
                "long_name": "free parameter at a bound",
                "flag_values": np.array([-1, 0, 1], dtype=np.int8),
                "flag_meanings": "lower_bound inside upper_bound",
                "tolerance": f"within {AT_BOUND_TOLERANCE:g} of the bound width",
            },
        ),
    }
    if uncertainty:
        result = laplace(problem, unit, flags)
        half = Z95 * result["sd"]
        laplace_attrs = {"method": "Laplace: Hessian of -log L at the optimum, torch autograd, float64"}
        variables.update(
            {
                "laplace_sd": (
                    "parameter",
                    result["sd"],
                    {"units": per, "long_name": "Laplace standard deviation", **laplace_attrs},
                ),
                "ci95_low": (
                    "parameter",
                    values - half,
                    {"units": per, "long_name": "lower end of the Laplace 95 % interval (estimate - 1.96 sd)"},
                ),
                "ci95_high": (
                    "parameter",
                    values + half,
                    {"units": per, "long_name": "upper end of the Laplace 95 % interval (estimate + 1.96 sd)"},
                ),
                "laplace_status": (
                    "parameter",
                    result["status"],
                    {
                        "long_name": "whether the Laplace interval exists",
                        "meanings": "ok; at bound (held at its bound, no interval); "
                        "singular (flat or negative curvature, no interval)",
                    },
                ),
            }
        )
    coords = {"parameter": problem.free, "parameter_units": ("parameter", units)}
    return criteria, variables, coords


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
    start: Mapping[str, float] | None = None,
    uncertainty: bool = True,
) -> xr.Dataset:
    """Fit ``rule`` to ``protocols``; returns data, SEM and prediction per protocol with the fit in attrs.

    Args:
        free: parameters to fit (default: the rule's ``free`` metadata, minus ``fixed``).
        fixed: parameter values held fixed (others not free keep the rule's defaults).
        bounds: ``name -> (low, high)`` overriding the rule's bounds (time constants 1-200 ms).
        backend: ``"torch"`` (autograd gradients) or ``"brian2"`` (finite differences).
        starts: random starts, uniform within the bounds (the first start is ``start``, clipped).
        seed: seeds the starts; the fit is reproducible from it.
        workers, scheduler: run the starts on local processes or a dask.distributed cluster
            (:func:`neurofwp.sweeps.run`); the result is the same wherever they ran.
        dataset, citation: name the data in the result's attrs (default: those of ``protocols``
            when it is a :class:`~neurofwp.protocols.ProtocolTable`, e.g. from :func:`neurofwp.data.resolve`).
        start: the first start (default: the rule's defaults); names not free are ignored, so a
            previous fit's full parameter set warm-starts a refit.
        uncertainty: compute the Laplace intervals (one Hessian by torch autograd).

    Besides E and the parameters (``param_<name>`` attrs), the attrs hold ``k``,
    ``log_likelihood``, ``AIC``, ``AICc`` and ``BIC`` (:func:`information_criteria`), and
    variables over the free parameters (dim ``parameter``, units per parameter in the
    ``parameter_units`` coordinate) hold ``fitted_value``, ``at_bound`` (−1/0/+1, :func:`at_bound`)
    and, with ``uncertainty``, ``laplace_sd``, ``ci95_low``, ``ci95_high`` and ``laplace_status``
    (:func:`laplace`).
    """
    rule = check_rule(rule)
    source = source_attrs(protocols, dataset, citation)
    if backend not in BACKENDS:
        raise UnknownNameError("backend", backend, BACKENDS)
    starts = _positive_int("starts", starts, 1)
    seed = _positive_int("seed", seed, 0)
    max_iterations = _positive_int("max_iterations", max_iterations, 1)
    problem = prepare(rule, protocols, free=free, fixed=fixed, bounds=bounds, backend=backend, dt_ms=dt_ms)
    candidates = start_points(problem, starts, seed, start)
    began = time.perf_counter()
    outcomes = sweeps.run(
        _fit_start, [{"start": i} for i in range(starts)], workers=workers, scheduler=scheduler,
        progress=show_progress, desc=f"fit {rule.name}", problem=problem,
        points=[c.tolist() for c in candidates], max_iterations=max_iterations,
    )  # fmt: skip
    # the lowest E wins; ties go to the earlier start, so the result does not depend on where starts ran
    winner = min(range(starts), key=lambda i: (_finite_or_inf(outcomes[i]["E"]), i))
    best_unit = np.asarray(outcomes[winner]["x"])
    best = FitResult(
        problem.values(best_unit),
        float(outcomes[winner]["E"]),
        sum(int(o["evaluations"]) for o in outcomes),
    )
    seconds = time.perf_counter() - began

    # the fitted rule's prediction, E and parameters, exactly as `neurofwp predict` reports them
    result = predict(rule, problem.protocols, best.parameters, backend=backend, dt_ms=problem.dt_ms, **source)
    if problem.observed.trains:
        result["amplitude_model"].attrs["long_name"] = f"response predicted by the fitted {rule.name}"
    else:
        result["dw_percent_model"].attrs["long_name"] = f"weight change predicted by the fitted {rule.name}"
    began = time.perf_counter()
    criteria, variables, coords = selection_variables(problem, best_unit, result.attrs["E"], uncertainty=uncertainty)
    result = result.assign_coords(coords).assign(variables)
    result.attrs.update(
        {
            "seed": seed,
            "starts": starts,
            "evaluations": best.evaluations,
            "fit_seconds": seconds,
            "free": " ".join(problem.free),
            "fixed": " ".join(sorted(problem.fixed)),
            **{f"bounds_{name}": np.array(problem.bounds[name]) for name in problem.free},
            **criteria,
            "laplace_seconds": time.perf_counter() - began if uncertainty else 0.0,
        }
    )
    return result
