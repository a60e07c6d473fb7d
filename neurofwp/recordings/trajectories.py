r"""The weight trajectories of a rule along recorded spikes: :math:`m_i(s^-)` just before every event of
each presynaptic unit's spikes merged with the postsynaptic ones, from 1.

Fast evaluation, without a Python step per spike. Event-driven rules whose spike updates do not
read w and whose traces are standard (:func:`parallel_form`): every trace is scanned along its own
source's spikes (the torch backend's prefix scan ``_traces_before``; the postsynaptic train once for
all units) and read at the other side's spikes from the last source spike before them (at equal
times pre before post); each spike's change :math:`\Delta` follows from ``on_pre``/``on_post`` and
:math:`m(s^-) = 1 + \sum_{\text{earlier}} \Delta` is two cumulative sums and a gather. Clock-driven
rules (a drift :math:`dw/dt = w\,g(\text{traces})`, linear in w as every rule's drift is): each
unit's pre and post spikes merged into one stream ``[units, events]`` (:class:`Events`), the
traces before each event by the prefix scan, the gap after each event multiplying w by
:math:`F_e = \exp\int_0^{\Delta_e} g` (method ``"ode"``, the default: the traces' exact decay,
Gauss–Legendre in :math:`u = e^{-s/\tau}`, :func:`drift_integrals`), or by the backend's windowed
Euler product over steps of ``dt_ms`` with spikes on that grid (method ``"scan"``, as the torch
backend and Brian2 integrate), so that :math:`m(e^-) = F_{e-1}(m(e-1^-) + \Delta_{e-1})` is an
affine recurrence, again a prefix scan (:func:`affine_prefix`). Rules whose spike updates read
w, traces with a rest or an ``on_spike`` update, and rules with a ``response`` run the event loop
(method ``"loop"``, vectorised over units, one Python step per event): correct, slower. The plain
reference the fast paths are tested against is :mod:`neurofwp.recordings.naive`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch

from neurofwp.errors import NeurofwpError, UnknownNameError
from neurofwp.plasticity import torch_backend
from neurofwp.plasticity.expressions import evaluate
from neurofwp.plasticity.rules import Rule
from neurofwp.protocols import POST, PRE

METHODS = ("auto", "ode", "scan", "loop")
QUADRATURE_NODES = 8  # Gauss-Legendre nodes per gap of the drift integral (exact for polynomials of degree 15 in u)
SAMPLE = torch_backend.NONE  # an event kind that changes nothing: where a trajectory is sampled
# At equal times pre, then post (as in the protocols), then trajectory samples (the value after both).
assert PRE < POST < SAMPLE


class Events:
    """Each presynaptic unit's spikes merged with the postsynaptic ones: ``positions [N, E]`` (ms, or
    steps of ``grid_ms`` for a clock-driven rule) and ``kinds [N, E]`` (PRE, POST, SAMPLE; padded with
    SAMPLE at the last time). ``pre_rows``/``pre_columns`` locate every presynaptic spike, unit by unit
    in time order; ``sample_columns [N, S]`` the samples at ``samples_ms``."""

    def __init__(
        self,
        post_ms: np.ndarray,
        pre_ms: Sequence[np.ndarray],
        *,
        grid_ms: float | None = None,
        samples_ms: np.ndarray | None = None,
    ):
        samples = np.zeros(0) if samples_ms is None else np.asarray(samples_ms, dtype=float)
        streams = []
        for times in pre_ms:
            t = np.concatenate([times, post_ms, samples])
            k = np.concatenate([np.full(len(times), PRE), np.full(len(post_ms), POST), np.full(len(samples), SAMPLE)])
            position = t if grid_ms is None else np.rint(t / grid_ms)
            order = np.lexsort((k, position))  # PRE < POST < SAMPLE at equal times
            streams.append((position[order], k[order], order))
        count = max(len(s[0]) for s in streams)
        positions = np.zeros((len(streams), count))
        kinds = np.full((len(streams), count), SAMPLE, dtype=np.int64)
        rows, columns, sample_columns = [], [], []
        for row, (position, kind, order) in enumerate(streams):
            positions[row, : len(position)] = position
            positions[row, len(position) :] = position[-1] if len(position) else 0.0
            kinds[row, : len(kind)] = kind
            where = np.empty(len(order), dtype=np.int64)
            where[order] = np.arange(len(order))  # column of each original event
            n_pre = len(pre_ms[row])
            rows.append(np.full(n_pre, row))
            columns.append(where[:n_pre])
            sample_columns.append(where[n_pre + len(post_ms) :])
        self.pre_rows = torch.as_tensor(np.concatenate(rows))
        self.pre_columns = torch.as_tensor(np.concatenate(columns))
        self.sample_columns = np.stack(sample_columns)
        self.positions = torch.as_tensor(positions if grid_ms is None else positions.astype(np.int64))
        self.kinds = torch.as_tensor(kinds)
        self.grid_ms = grid_ms


def parallel_form(rule: Rule) -> bool:
    """Whether :func:`weights_before` can scan ``rule`` (else it loops event by event): the backend's
    parallel form (spike updates do not read w, standard traces) and no ``response``."""
    return torch_backend.has_parallel_form(rule) and rule.response is None


def weights_before(
    rule: Rule, values: Mapping[str, torch.Tensor], events: Events, *, method: str = "auto"
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The rule's weight just before every event, from 1, ``[N, E]``; and the ``response`` there (or None).

    ``values``: the parameter tensors by symbol (:func:`neurofwp.plasticity.torch_backend.parameter_tensors`,
    one parameter set). ``method``: ``"ode"`` (prefix scans; a clock-driven rule's drift integrated exactly
    between events, on events in ms), ``"scan"`` (prefix scans; a clock-driven rule by Euler steps on the
    events' grid), ``"loop"`` (event by event; Euler steps on the grid for a clock-driven rule) or ``"auto"``
    (:func:`resolve_method`). For an event-driven rule ``"ode"`` and ``"scan"`` are the same.
    """
    method = resolve_method(rule, method)
    if rule.clock_driven and (events.grid_ms is None) != (method == "ode"):
        raise NeurofwpError(
            f"method {method!r} of the clock-driven rule {rule.name!r} needs events "
            + ("in ms (grid_ms=None)" if method == "ode" else "on its Euler grid (grid_ms=dt_ms)")
        )
    if method in ("scan", "ode"):
        if not parallel_form(rule):
            raise NeurofwpError(
                f"rule {rule.name!r} cannot be scanned (its spike updates read w, a trace has a rest or an "
                "on_spike update, or it has a response); use method='loop'"
            )
        return _weights_scan(rule, values, events), None
    return _weights_loop(rule, values, events)


def resolve_method(rule: Rule, method: str) -> str:
    """``method`` itself, or for ``"auto"``: ``"ode"`` for a clock-driven rule in parallel form, ``"scan"`` for
    an event-driven one, else ``"loop"``."""
    if method not in METHODS:
        raise UnknownNameError("method", method, METHODS)
    if method != "auto":
        return method
    if not parallel_form(rule):
        return "loop"
    return "ode" if rule.clock_driven else "scan"


def _weights_scan(rule: Rule, values, events: Events) -> torch.Tensor:
    positions, dt_ms = events.positions, events.grid_ms
    change, after, rates = torch_backend.event_changes(
        rule, values, positions, events.kinds, dt_ms, traces_before=_traces_before
    )
    if not rule.clock_driven:
        return (1.0 + torch.cumsum(change, dim=1) - change)[..., 0]
    dtype = change.dtype
    gaps = torch.diff(positions, dim=1, append=positions[:, -1:])
    if dt_ms is None:
        logs = drift_integrals(rule, values, after, gaps.to(dtype))
    else:
        logs = torch_backend._gap_log_factors(rule, values, after, rates, gaps, dt_ms)
    factor = torch.exp(logs)
    # m(e^-) = F_{e-1} (m(e-1^-) + Δ_{e-1}), m(0^-) = 1: the maps x -> a_e x + b_e composed in prefix
    scale = torch.cat([torch.ones_like(factor[:, :1]), factor[:, :-1]], dim=1)
    shift = torch.cat([torch.zeros_like(factor[:, :1]), (factor * change)[:, :-1]], dim=1)
    return affine_prefix(scale, shift)[..., 0]


def drift_integrals(
    rule: Rule, values: Mapping[str, torch.Tensor], after: Mapping[str, torch.Tensor], gaps_ms: torch.Tensor
) -> torch.Tensor:
    r"""``[N, E, M]``: :math:`\int_0^{\Delta_e} g(\text{traces}(s))\,ds` over the gap :math:`\Delta_e` (ms) after
    each event, for the drift :math:`dw/dt = w\,g(\text{traces})`; ``after``: the traces just after each event.

    Between events the traces decay exactly, :math:`x_k(s) = x_k^+ e^{-s/\tau_k}`, and w does not act on
    them, so :math:`w(\Delta) = w(0)\,e^{\int_0^\Delta g}`. With :math:`u = e^{-s/\tau_r}`
    (:math:`\tau_r` the longest trace time constant, :math:`\rho_k = \tau_r/\tau_k \ge 1`),

    .. math::

        \int_0^\Delta g\,ds = \tau_r \int_{e^{-\Delta/\tau_r}}^1 \frac{g(x^+ u^{\rho})}{u}\,du
            \approx \tau_r \frac{1 - U}{2} \sum_j \omega_j \frac{g(x^+ u_j^{\rho})}{u_j},

    Gauss–Legendre (``QUADRATURE_NODES``) on :math:`[U, 1]`, :math:`U = e^{-\Delta/\tau_r}`. A rule's g
    vanishes with its traces (checked when the rule is built), so :math:`g/u` stays bounded as
    :math:`u \to 0` and an unbounded gap needs no cut; where g is a polynomial in the traces with integer
    :math:`\rho` the integrand is a polynomial in u and the quadrature is exact (the delta rule:
    :math:`g = -\eta x^2/\tau_+`, :math:`\int_0^\Delta g = -\eta (x^+)^2 (1 - e^{-2\Delta/\tau_+})/2`).
    """
    assert rule.drift is not None, "only called for clock-driven rules"
    symbols = sorted({t.tau for t in rule.traces})
    longest = values[symbols[0]]
    for symbol in symbols[1:]:
        longest = torch.maximum(longest, values[symbol])
    reference = longest[:, None, :]  # [1, 1, M]
    low = torch.exp(-gaps_ms[..., None] / reference)  # [N, E, M]
    nodes, weights = np.polynomial.legendre.leggauss(QUADRATURE_NODES)
    parameters = {name: value[:, None, :] for name, value in values.items()}
    # one time constant: every rho is 1 and u itself is the decay (no powers, the cheap common case)
    powers = {t.name: None if len(symbols) == 1 else reference / values[t.tau][:, None, :] for t in rule.traces}
    total = torch.zeros_like(low)
    for node, weight in zip(nodes, weights, strict=True):
        u = low + (1.0 - low) * (0.5 * (node + 1.0))
        log_u = torch.log(u) if len(symbols) > 1 else None
        namespace: dict = dict(parameters)
        for name, tr in after.items():
            power = powers[name]
            namespace[name] = tr * (u if power is None or log_u is None else torch.exp(power * log_u))
        namespace["w"] = 1.0  # the drift is w times g (a rule's drift is linear in w)
        rate = torch.as_tensor(evaluate(rule.drift, torch_backend.with_sums(rule, namespace)), dtype=low.dtype)
        total = total + float(weight) * rate / u
    return reference * (1.0 - low) * 0.5 * total


def affine_prefix(scale: torch.Tensor, shift: torch.Tensor, initial: float = 1.0) -> torch.Tensor:
    r"""``x_e`` of :math:`x_e = a_e x_{e-1} + b_e` from :math:`x_{-1}` = ``initial`` along dim 1, for
    ``scale`` a and ``shift`` b; the maps composed by a parallel prefix scan (Hillis–Steele, log2(E) rounds).

    The gradient is the adjoint recurrence, itself a reversed scan: :math:`\lambda_e = \bar x_e +
    a_{e+1}\lambda_{e+1}`, :math:`\bar b_e = \lambda_e`, :math:`\bar a_e = \lambda_e x_{e-1}` (cheaper than
    differentiating every round of the scan)."""
    return _AffineScan.apply(scale, shift, float(initial))


def _compose(scale: torch.Tensor, shift: torch.Tensor, initial: float) -> torch.Tensor:
    """The scan of :func:`affine_prefix` without autograd, updating copies in place."""
    scale, shift = scale.clone(), shift.clone()
    length, span = scale.shape[1], 1
    while span < length:  # compose each map with the one `span` events earlier
        shift[:, span:] = torch.addcmul(shift[:, span:], scale[:, span:], shift[:, : length - span])
        scale[:, span:] = scale[:, span:] * scale[:, : length - span]
        span *= 2
    return scale * initial + shift


class _AffineScan(torch.autograd.Function):
    @staticmethod
    def forward(ctx, scale, shift, initial):
        scale, shift = torch.broadcast_tensors(scale, shift)
        with torch.no_grad():
            x = _compose(scale, shift, initial)
        ctx.save_for_backward(scale, x)
        ctx.initial = initial
        return x

    @staticmethod
    def backward(ctx, grad):
        scale, x = ctx.saved_tensors
        with torch.no_grad():
            following = torch.cat([scale[:, 1:], torch.zeros_like(scale[:, :1])], dim=1)  # a_{e+1}
            adjoint = torch.flip(_compose(torch.flip(following, [1]), torch.flip(grad, [1]), 0.0), [1])
            previous = torch.cat([torch.full_like(x[:, :1], ctx.initial), x[:, :-1]], dim=1)  # x_{e-1}
        return adjoint * previous, adjoint, None


def _traces_before(elapsed: torch.Tensor, fired: torch.Tensor, rate: torch.Tensor, reset: bool) -> torch.Tensor:
    """A standard trace just before each event, ``[N, E, M]``: the torch backend's maps
    (:func:`~neurofwp.plasticity.torch_backend.trace_maps`) composed by :func:`affine_prefix`, whose adjoint
    gradient is cheaper than the backend's round-by-round one (the likelihood needs no double backward)."""
    scale, shift = torch_backend.trace_maps(elapsed, fired, rate, reset)
    return affine_prefix(scale, shift, initial=0.0)


def _weights_loop(rule: Rule, values, events: Events) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Event by event (vectorised over units), with the backend's own spike and drift steps."""
    positions, kinds, dt_ms = events.positions, events.kinds, events.grid_ms
    dtype = next(iter(values.values())).dtype
    count = positions.shape[0]
    weight = torch.ones(count, 1, dtype=dtype)
    rests = {t.name: torch_backend._rest(t, values, count, 1, dtype, None) for t in rule.traces}
    traces = dict(rests)
    taus = {t.name: values[t.tau] for t in rule.traces}
    ratios = {name: 1.0 - dt_ms / tau for name, tau in taus.items()} if dt_ms is not None else {}
    record = rule.response is not None
    weights, responses = [], []
    previous = positions[:, 0]
    for column in range(positions.shape[1]):
        gap = (positions[:, column] - previous)[:, None]
        previous = positions[:, column]
        if dt_ms is not None:
            weight, traces = torch_backend._advance_clock(rule, values, weight, traces, ratios, gap, dt_ms)
        else:
            elapsed = gap.to(dtype)
            traces = {
                name: rests[name] + (tr - rests[name]) * torch_backend._relaxation(elapsed, taus[name])
                for name, tr in traces.items()
            }
        weights.append(weight)
        weight, traces, response = torch_backend._spike(
            rule, values, weight, traces, kinds[:, column : column + 1], record
        )
        if record:
            responses.append(response)
    stacked = torch.stack(weights, dim=1)[..., 0]
    return stacked, (torch.stack(responses, dim=1)[..., 0] if record else None)
