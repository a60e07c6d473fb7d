r"""Model selection for fitted plasticity rules: cross-validation and generalisation across datasets.

The in-sample quantities (k, log L, AIC, AICc, BIC, parameters at a bound, Laplace intervals)
come with every :func:`neurofwp.fit.fit`; this module adds what needs refits or other data:

- :func:`loo_cv`: leave-one-protocol-out cross-validated error. Fold j refits the rule on
  every protocol but j and predicts j;
  :math:`E_\text{CV} = \frac1P \sum_j \big((d_j - m_j^{(-j)})/s_j\big)^2` (percent² without
  SEM), in the units of E.
- :func:`generalisation`: E on dataset B with the parameters fitted on dataset A, for every
  pair, as a matrix with dims ``fitted_on`` and ``predicted``.

The folds (and their starts) are independent L-BFGS-B runs, each exactly the run
:func:`neurofwp.fit.fit` makes on its protocols, advanced in lockstep: every run asks for its
next point, and all the points asked for are simulated in one batched torch call
(parameter sets × protocols), each judged on its own fold's protocols.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence

import numpy as np
import scipy.optimize
import torch
import xarray as xr
from torch.autograd import forward_ad

import neurofwp
from neurofwp.errors import DTypeError, NeurofwpError
from neurofwp.fit import (
    _finite_or_inf,
    _positive_int,
    _Problem,
    at_bound,
    information_criteria,
    laplace,
    prepare,
    start_points,
)
from neurofwp.plasticity import check_protocols, check_rule, simulate, source_attrs
from neurofwp.plasticity.rules import Rule
from neurofwp.protocols import Protocol, ProtocolError, check_sem

__all__ = [
    "loo_cv",
    "generalisation",
    "information_criteria",
    "at_bound",
    "laplace",
    "minimise_batched",
    "residual_jacobian",
]

# Parameter sets per torch call: event-driven rules cost about the same for 1 and 64 sets;
# clock-driven rules (the delta rule) cost in proportion and hold every step for autograd,
# so their sets go one at a time.
EVENT_BATCH = 64
CLOCK_BATCH = 1


class _Failed:
    """Handed to a waiting run in place of a value when its batch raised; the run re-raises it."""

    def __init__(self, error: BaseException):
        self.error = error


def minimise_batched(
    problem: _Problem,
    points: Sequence[np.ndarray],
    masks: np.ndarray,
    *,
    max_iterations: int = 200,
    max_batch: int | None = None,
) -> list[dict]:
    """Independent L-BFGS-B runs on the unit cube, one per start ``points[m]`` judged on protocols ``masks[:, m]``.

    Each run is the :func:`scipy.optimize.minimize` call :func:`neurofwp.fit.fit` makes (same
    options), in a thread of its own that waits for its function values; the main thread
    gathers the points every live run waits on and evaluates them together,
    :meth:`_Problem.batch` on up to ``max_batch`` of them per torch call. The runs share no
    line search or stopping test, so each converges as it would alone; only the arithmetic
    is batched. Returns per run ``x`` (unit cube), ``E``, ``evaluations`` and ``message``.
    """
    count = len(points)
    if masks.shape != (len(problem.protocols), count):
        raise NeurofwpError(f"masks must be [protocols, runs] = [{len(problem.protocols)}, {count}]")
    if problem.backend != "torch":
        raise NeurofwpError("batched fits need the torch backend (autograd gradients of many parameter sets)")
    if max_batch is None:
        max_batch = CLOCK_BATCH if problem.rule.clock_driven else EVENT_BATCH
    max_batch = _positive_int("max_batch", max_batch, 1)
    # Runs post their points under `posted` and wait on their own event (waking one thread
    # per answer, not all of them); the main thread waits until every live run has posted.
    posted = threading.Condition()
    ready = [threading.Event() for _ in range(count)]
    waiting: dict[int, np.ndarray] = {}
    answers: dict[int, object] = {}
    finished: set[int] = set()
    outcomes: list[dict] = [{} for _ in range(count)]
    counts = [0] * count
    errors: list[BaseException] = []

    def objective(run: int):
        def value_and_gradient(x):
            with posted:
                waiting[run] = np.array(x, dtype=float)
                posted.notify()
            ready[run].wait()
            ready[run].clear()
            answer = answers.pop(run)
            if isinstance(answer, _Failed):
                raise answer.error
            counts[run] += 1
            return answer

        return value_and_gradient

    def worker(run: int) -> None:
        try:
            outcome = scipy.optimize.minimize(
                objective(run), np.asarray(points[run], dtype=float), jac=True, method="L-BFGS-B",
                bounds=[(0.0, 1.0)] * len(problem.free), options={"maxiter": max_iterations},
            )  # fmt: skip
            outcomes[run] = {"x": outcome.x, "E": float(outcome.fun), "message": str(outcome.message)}
        except BaseException as error:  # handed to the main thread, which re-raises the first
            errors.append(error)
        finally:
            with posted:
                finished.add(run)
                posted.notify()

    threads = [threading.Thread(target=worker, args=(run,), daemon=True) for run in range(count)]
    for thread in threads:
        thread.start()
    while True:
        with posted:
            while len(waiting) + len(finished) < count:
                posted.wait()
            if len(finished) == count:
                break
            batch = dict(waiting)
            waiting.clear()
        runs = sorted(batch)
        replies: dict[int, object] = {}
        try:
            for begin in range(0, len(runs), max_batch):
                chunk = runs[begin : begin + max_batch]
                values, gradients, _ = problem.batch(np.stack([batch[r] for r in chunk]), masks[:, chunk])
                for j, run in enumerate(chunk):
                    replies[run] = (float(values[j]), gradients[j])
        except BaseException as error:  # every waiting run stops with this error
            replies = {run: _Failed(error) for run in runs}
        for run, reply in replies.items():
            answers[run] = reply
            ready[run].set()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    for run in range(count):
        outcomes[run]["evaluations"] = counts[run]
    return outcomes


def loo_cv(
    rule: str | Rule,
    protocols: Sequence[Protocol],
    *,
    free: Sequence[str] | None = None,
    fixed: Mapping[str, float] | None = None,
    bounds: Mapping[str, tuple[float, float]] | None = None,
    starts: int = 4,
    seed: int = 0,
    start: Mapping[str, float] | None = None,
    dt_ms: float = 0.1,
    max_iterations: int = 200,
    max_batch: int | None = None,
    method: str = "refit",
    dataset: str | None = None,
    citation: str | None = None,
) -> xr.Dataset:
    r"""Leave-one-protocol-out cross-validation of ``rule`` on ``protocols``.

    Fold j fits the free parameters to every protocol but j, as
    ``neurofwp.fit.fit(rule, protocols without j, free=, fixed=, bounds=, starts=, seed=, start=)``
    would (same starts, same L-BFGS-B runs, the lowest E winning), and predicts protocol j:

    .. math::

        e_j = \Big(\frac{d_j - m_j(\hat\theta_{-j})}{s_j}\Big)^2, \qquad E_\text{CV} = \frac1P \sum_j e_j

    with :math:`s_j` the SEM, or 1 (E_CV in percent²) where the data have no SEM, the units of E.
    All folds × starts run in lockstep through :func:`minimise_batched` (one batched torch
    call per round). ``start`` warm-starts every fold, e.g. from the full fit's parameters
    (``{n: full.attrs["param_" + n] ...}``) with ``starts=1``: the cheap setting for large
    comparisons, since each fold's optimum lies near the full one.

    ``method="linearised"`` refits nothing: from the full optimum û (fitted here from the
    same starts) each fold takes one Gauss-Newton step on the protocols it keeps,
    :math:`\Delta_j = \arg\min_{0 \le \hat u + \Delta \le 1} \lVert r_{-j} + J_{-j} \Delta \rVert^2`
    (J = ∂r/∂u, a bounded linear least-squares problem), and predicts :math:`r_j + J_j \Delta_j`
    (without active bounds the classic :math:`r_j / (1 - h_{jj})`). The step is safeguarded: the
    model is simulated at û + Δ_j (then ½Δ_j, ¼Δ_j) and the first point where the fold's true E
    is at most its E at û is kept (else û); ``dw_percent_cv`` and ``E_train`` are the model's
    there. Exact for a rule linear in its free parameters (pair STDP's A±), an approximation
    otherwise (a fold that would move far or to another basin is not followed). Its cost is one
    Jacobian (one batched call for event-driven rules, forward-mode over the n parameters for
    clock-driven ones) and one to three simulations of every fold, which is what makes CV of
    the delta rule affordable.

    Returns a Dataset over ``protocol`` (the held-out protocol) and ``parameter`` (the free
    ones): ``dw_percent``/``sem_percent`` (data), ``dw_percent_cv`` (prediction of the
    held-out protocol), ``cv_error`` (:math:`e_j`), ``E_train`` (the fold's own E on its
    P − 1 protocols), ``fold_value`` (the fold's parameters), ``fold_at_bound`` (−1/0/+1); attrs
    ``E_cv`` (:math:`E_\text{CV}`), ``E_cv_definition``, the fit options, ``evaluations`` and
    ``cv_seconds``.
    """
    rule = check_rule(rule)
    source = source_attrs(protocols, dataset, citation)
    starts = _positive_int("starts", starts, 1)
    seed = _positive_int("seed", seed, 0)
    max_iterations = _positive_int("max_iterations", max_iterations, 1)
    problem = prepare(rule, protocols, free=free, fixed=fixed, bounds=bounds, backend="torch", dt_ms=dt_ms)
    count = len(problem.protocols)
    if count < 2:
        raise ProtocolError(f"leave-one-out needs at least 2 protocols, got {count}")
    if method not in ("refit", "linearised"):
        raise NeurofwpError(f"method must be 'refit' or 'linearised', got {method!r}")
    candidates = start_points(problem, starts, seed, start)
    began = time.perf_counter()
    if method == "refit":
        # run (fold j, start s) is number j * starts + s; its mask drops protocol j
        points = [candidates[s] for _ in range(count) for s in range(starts)]
        masks = np.ones((count, count * starts))
        for j in range(count):
            masks[j, j * starts : (j + 1) * starts] = 0.0
        outcomes = minimise_batched(problem, points, masks, max_iterations=max_iterations, max_batch=max_batch)
        winners = [
            min(range(j * starts, (j + 1) * starts), key=lambda r: (_finite_or_inf(outcomes[r]["E"]), r))
            for j in range(count)
        ]
        units = np.stack([outcomes[r]["x"] for r in winners])
        train = np.array([outcomes[r]["E"] for r in winners])
        evaluations = int(sum(o["evaluations"] for o in outcomes))
        # every fold's prediction of the observations it left out, at its optimum (no gradients)
        if problem.rule.clock_driven:  # cost grows with the sets: each fold on its own protocol only
            predicted = np.concatenate([_predict(problem, units[j : j + 1], [j])[:, 0] for j in range(count)])
        else:
            everything = _predict(problem, units, range(count))  # [N, folds]
            predicted = everything[np.arange(len(problem.data)), problem.observed.protocol]
        residual = (problem.data - predicted) / problem.scale
    else:
        if problem.observed.trains:
            raise NeurofwpError("the linearised folds are for weight-change tables; use method='refit' for trains")
        outcomes = minimise_batched(
            problem, candidates, np.ones((count, starts)), max_iterations=max_iterations, max_batch=max_batch
        )
        best = min(range(starts), key=lambda r: (_finite_or_inf(outcomes[r]["E"]), r))
        evaluations = int(sum(o["evaluations"] for o in outcomes))
        if max_batch is None:
            max_batch = CLOCK_BATCH if rule.clock_driven else EVENT_BATCH
        units, train, residual, simulated = _linearised_folds(problem, np.asarray(outcomes[best]["x"]), max_batch)
        evaluations += 1 + simulated
        predicted = problem.data - problem.scale * residual
    seconds = time.perf_counter() - began

    names = [str(p.name) for p in problem.protocols]
    parameter_units = ["ms" if rule.parameter(n).is_time else "1" for n in problem.free]
    e_units = "1" if problem.has_sem else ("amplitude^2" if problem.observed.trains else "percent^2")
    variables: dict[str, tuple] = {
        "dw_percent": ("protocol", problem.data, {"units": "percent", "long_name": "measured weight change"}),
        "dw_percent_cv": (
            "protocol",
            predicted,
            {
                "units": "percent",
                "long_name": f"prediction of the held-out protocol by {rule.name} fitted to the others",
            },
        ),
        "cv_error": (
            "protocol",
            residual**2,
            {"units": e_units, "long_name": "squared (standardised) error on the held-out protocol"},
        ),
        "E_train": (
            "protocol",
            train,
            {"units": e_units, "long_name": "E of the fold's fit on its own P - 1 protocols"},
        ),
        "fold_value": (
            ("protocol", "parameter"),
            problem.low + problem.span * units,
            {"units": "per parameter: see parameter_units", "long_name": "parameters fitted without the protocol"},
        ),
        "fold_at_bound": (
            ("protocol", "parameter"),
            np.stack([at_bound(problem, u) for u in units]),
            {
                "units": "1",
                "flag_values": np.array([-1, 0, 1], dtype=np.int8),
                "flag_meanings": "lower_bound inside upper_bound",
            },
        ),
    }
    if problem.has_sem:
        variables["sem_percent"] = ("protocol", problem.scale, {"units": "percent", "long_name": "SEM"})
    definition = (
        "mean over held-out protocols j of ((dw_percent_j - dw_percent_cv_j) / sem_percent_j)^2"
        if problem.has_sem
        else "mean over held-out protocols j of (dw_percent_j - dw_percent_cv_j)^2, percent^2 (the data have no SEM)"
    )
    coords: dict[str, object] = {
        "protocol": names, "parameter": problem.free, "parameter_units": ("parameter", parameter_units)
    }  # fmt: skip
    observed = problem.observed
    if observed.trains:  # the held-out values are responses: one per measured spike of each train
        for key in ("dw_percent", "dw_percent_cv", "cv_error", "sem_percent"):
            variables.pop(key, None)
        variables |= {
            "amplitude": ("observation", problem.data, {"units": observed.units, "long_name": "measured response"}),
            "amplitude_cv": (
                "observation",
                predicted,
                {"units": observed.units, "long_name": f"prediction by {rule.name} fitted without the train"},
            ),
            "cv_error": (
                "observation",
                residual**2,
                {"units": e_units, "long_name": "squared (standardised) error of the held-out response"},
            ),
        }
        if problem.has_sem:
            variables["sem"] = ("observation", problem.scale, {"units": observed.units, "long_name": "SEM"})
        coords["observation_protocol"] = ("observation", [names[r] for r in observed.protocol])
        coords["observation_spike"] = (
            "observation",
            observed.spike + 1,
            {"long_name": "presynaptic spike (1 = first)"},
        )
        definition = (
            "mean over the responses n of each held-out train of ((amplitude_n - amplitude_cv_n) / sem_n)^2"
            if problem.has_sem
            else "mean over the responses n of each held-out train of (amplitude_n - amplitude_cv_n)^2 (no SEM)"
        )
    return xr.Dataset(
        variables,
        coords=coords,
        attrs={
            "rule": rule.name,
            "neurofwp_version": neurofwp.__version__,
            **source,
            "E_cv": float(np.mean(residual**2)),
            "E_cv_units": e_units,
            "E_cv_definition": definition,
            "free": " ".join(problem.free),
            "fixed": " ".join(sorted(problem.fixed)),
            **{f"param_{name}": value for name, value in problem.fixed.items()},
            "starts": starts,
            "seed": seed,
            "warm_start": int(start is not None),
            "max_iterations": max_iterations,
            "evaluations": evaluations,
            "method": method,
            "cv_seconds": seconds,
            **({"dt_ms": problem.dt_ms} if rule.clock_driven else {}),
        },
    )


def _predict(problem: _Problem, units: np.ndarray, rows: Sequence[int]) -> np.ndarray:
    """The model's observations of protocols ``rows`` ``[N_rows, M]`` for parameter sets ``units [M, n]``,
    without gradients (weight tables: one per protocol, percent)."""
    with torch.no_grad():
        actual = torch.as_tensor(problem.low) + torch.as_tensor(problem.span) * torch.as_tensor(units)
        return problem._model(actual, rows=list(rows)).numpy()


def residual_jacobian(problem: _Problem, unit: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Standardised residuals r = (d − m)/s ``[P]`` at ``unit`` and their Jacobian ∂r/∂u ``[P, n]`` (unit cube).

    Event-driven rules: P identical parameter sets in one batched call, set p's gradient of
    its own protocol p giving row p (one backward pass). Clock-driven rules, whose cost grows
    with the sets: forward-mode autograd, one pass per free parameter.
    """
    count, n = len(problem.protocols), len(problem.free)
    low, span = torch.as_tensor(problem.low), torch.as_tensor(problem.span)
    data, scale = torch.as_tensor(problem.data), torch.as_tensor(problem.scale)
    if not problem.rule.clock_driven:
        leaves = torch.tensor(np.repeat(np.asarray(unit, dtype=float)[None, :], count, axis=0), requires_grad=True)
        model = problem._model(low + span * leaves)  # [P, P]: protocol × (identical) set
        own = torch.diagonal(model)
        (gradient,) = torch.autograd.grad(own.sum(), leaves)
        residual = (data - own.detach()) / scale
        return residual.numpy(), -(gradient / scale[:, None]).numpy()
    point = torch.as_tensor(np.asarray(unit, dtype=float))
    columns = []
    with forward_ad.dual_level():
        for i in range(n):
            tangent = torch.zeros(n, dtype=torch.float64)
            tangent[i] = 1.0
            model = problem._model((low + span * forward_ad.make_dual(point, tangent))[None, :])[:, 0]
            primal, derivative = forward_ad.unpack_dual(model)
            columns.append(derivative)
    residual = (data - primal.detach()) / scale
    return residual.numpy(), -(torch.stack(columns, dim=1) / scale[:, None]).detach().numpy()


# Step fractions tried in turn by the safeguarded Gauss-Newton step (0: stay at the full optimum).
STEP_FRACTIONS = (1.0, 0.5, 0.25, 0.0)


def _linearised_folds(
    problem: _Problem, unit: np.ndarray, max_batch: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """One safeguarded Gauss-Newton step per fold from the full optimum ``unit``.

    Returns the fold points ``[P, n]``, the fold E and the held-out residuals there ``[P]``
    (from the model itself, not its linearisation), and the number of simulated parameter sets.
    """
    count = len(problem.protocols)
    residual, jacobian = residual_jacobian(problem, unit)
    steps = np.zeros((count, len(problem.free)))
    for j in range(count):
        keep = np.arange(count) != j
        # the Gauss-Newton step within the bounds: a parameter at a bound may leave it in a fold
        solution = scipy.optimize.lsq_linear(
            jacobian[keep], -residual[keep], bounds=(-unit, 1.0 - unit), method="trf", lsq_solver="exact", tol=1e-12
        )
        steps[j] = np.clip(unit + solution.x, 0.0, 1.0) - unit
    # Far from linear the step can overshoot (the linearisation promises a fold E it does not
    # reach): keep the first fraction of the step that lowers the fold's true E below its E at
    # the full optimum. All folds still trying are simulated together.
    units = np.repeat(np.asarray(unit, dtype=float)[None, :], count, axis=0)
    keep_masks = 1.0 - np.eye(count)
    baseline = (keep_masks * residual[:, None] ** 2).sum(0) / (count - 1)
    train, held_out = baseline.copy(), residual.copy()
    pending, simulated = list(range(count)), 0
    for fraction in STEP_FRACTIONS[:-1]:
        if not pending:
            break
        trial = unit + fraction * steps[pending]
        model = np.concatenate(
            [_predict(problem, trial[i : i + max_batch], range(count)) for i in range(0, len(pending), max_batch)],
            axis=1,
        )  # [P, pending]
        simulated += len(pending)
        r = (problem.data[:, None] - model) / problem.scale[:, None]
        fold_e = (keep_masks[:, pending] * r**2).sum(0) / (count - 1)
        still = []
        for i, j in enumerate(pending):
            if fold_e[i] <= baseline[j]:
                units[j], train[j], held_out[j] = trial[i], fold_e[i], r[j, i]
            else:
                still.append(j)
        pending = still
    return units, train, held_out, simulated


def _parameters_of(fitted: object, label: str) -> dict[str, float]:
    """A fit result's parameters (its ``param_<name>`` attrs) or a mapping name -> value."""
    if isinstance(fitted, xr.Dataset):
        values = {k[len("param_") :]: float(v) for k, v in fitted.attrs.items() if k.startswith("param_")}
        if not values:
            raise NeurofwpError(f"the result for {label!r} has no param_<name> attrs: is it a fit result?")
        return values
    if isinstance(fitted, Mapping):
        return {str(k): float(v) for k, v in fitted.items()}
    raise DTypeError(
        f"the fit for {label!r} must be a fit result (xarray Dataset) or a mapping name -> value, "
        f"got {type(fitted).__name__}"
    )


def generalisation(
    rule: str | Rule,
    fits: Mapping[str, object],
    datasets: Mapping[str, Sequence[Protocol]] | None = None,
    *,
    dt_ms: float = 0.1,
) -> xr.Dataset:
    r"""E on every dataset B with the parameters fitted on every dataset A.

    .. math::

        E_{AB} = \frac1{P_B} \sum_{p \in B} \Big(\frac{d_p - m_p(\hat\theta_A)}{s_p}\Big)^2

    (s = SEM, or 1 where B has no SEM: then percent²). The diagonal is each fit's own E.

    Args:
        fits: ``A -> fit`` where a fit is a :func:`neurofwp.fit.fit` result (its ``param_*``
            attrs) or a mapping parameter -> value; missing parameters take the rule's defaults.
        datasets: ``B -> protocols`` to predict (default: every ``A`` in ``fits``, resolved by
            :func:`neurofwp.data.resolve`).

    Returns a Dataset with ``E`` (dims ``fitted_on``, ``predicted``; its units per column in
    the ``E_units`` coordinate over ``predicted``) and ``E_ratio`` = E_AB / E_BB, where B was
    fitted too (NaN otherwise): how much worse A's parameters are on B than B's own.
    All fits are simulated on a dataset in one batched call.
    """
    rule = check_rule(rule)
    if not isinstance(fits, Mapping) or not fits:
        raise DTypeError("fits must be a non-empty mapping dataset name -> fit result or parameters")
    parameters = {str(name): rule.resolve(_parameters_of(f, str(name))) for name, f in fits.items()}
    if datasets is None:
        from neurofwp import data

        datasets = {name: data.resolve(name) for name in parameters}
    if not isinstance(datasets, Mapping) or not datasets:
        raise DTypeError("datasets must be a non-empty mapping name -> protocols")
    fitted_on, predicted = list(parameters), [str(b) for b in datasets]
    columns = {name: np.array([parameters[a][name] for a in fitted_on]) for name in rule.parameter_names}
    errors = np.full((len(fitted_on), len(predicted)), np.nan)
    units = []
    for b, (label, protocols) in enumerate(datasets.items()):
        protocols = check_protocols(protocols)
        measured = [p for p in protocols if p.dw_percent is not None]
        if not measured:
            raise ProtocolError(f"dataset {label!r} has no measured dw_percent to predict")
        has_sem = check_sem(measured)
        data_ = np.array([p.dw_percent for p in measured], dtype=float)
        scale = np.array([p.sem_percent for p in measured], dtype=float) if has_sem else np.ones(len(measured))
        weights = simulate(rule, measured, columns, dt_ms=dt_ms)  # [P_B, fits]
        model = 100.0 * (weights - 1.0)
        errors[:, b] = (((model - data_[:, None]) / scale[:, None]) ** 2).mean(axis=0)
        units.append("1" if has_sem else "percent^2")
    own = np.array([errors[fitted_on.index(b), j] if b in fitted_on else np.nan for j, b in enumerate(predicted)])
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = errors / own[None, :]
    return xr.Dataset(
        {
            "E": (
                ("fitted_on", "predicted"),
                errors,
                {
                    "units": "per predicted dataset: see E_units",
                    "long_name": "E on the predicted dataset with the parameters fitted on another",
                },
            ),
            "E_ratio": (
                ("fitted_on", "predicted"),
                ratio,
                {"units": "1", "long_name": "E relative to the predicted dataset's own fit"},
            ),
        },
        coords={"fitted_on": fitted_on, "predicted": predicted, "E_units": ("predicted", units)},
        attrs={"rule": rule.name, "neurofwp_version": neurofwp.__version__},
    )
