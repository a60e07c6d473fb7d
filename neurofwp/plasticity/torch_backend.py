r"""Batched, differentiable torch simulation of a rule over plasticity protocols.

Event-driven: the cost is per spike, not per time step. Between spikes the traces decay
exactly, :math:`tr \leftarrow tr\,e^{-\Delta t/\tau}`; at a spike the rule's ``on_pre`` or
``on_post`` expression is evaluated on the traces (before the spike's own increment),
added to ``w``, and the spiking side's traces are incremented (or reset to 1 for the
nearest-spike variants); a neuromodulator pulse only bumps the modulator traces.
Simultaneous events: modulator, then pre, then post.

Clock-driven rules (a ``drift`` :math:`dw/dt`, the ``delta`` rule) are integrated with the
scheme Brian2 uses for them, forward Euler on a grid of ``dt_ms``: per step
:math:`tr \leftarrow tr (1 - dt/\tau)` and :math:`w \leftarrow w + dt \cdot \text{drift}`. The drift
is linear in ``w`` (checked when the rule is built), so the steps between two spikes collapse into
:math:`w \leftarrow w \prod_j (1 + dt\, g(tr_0 c^j))` with :math:`g = \text{drift}/w`; the product is
evaluated in windows of steps, vectorised, until the traces have decayed below 1e-17.

All protocols and all parameter sets run in one call: the result is ``w_end`` of shape
``[protocols, parameter sets]``; parameters may be tensors that require gradients.

Two evaluations of the same model. The sequential one (``method="sequential"``, the
reference) steps from event to event as described above. The parallel one (the default
where it applies) evaluates every event at once, as causal linear attention evaluates a fast
weight program without stepping through it. The traces do not depend on ``w``, so their value
before event e is a sum over the earlier events of the trace's source,

.. math:: tr_e = \sum_{s < e,\ s \in \text{source}} c^{\,t_e - t_s}, \qquad c = e^{-1/\tau}
    \ (\text{per ms}) \text{ or } 1 - dt/\tau \ (\text{per Euler step}),

(nearest-spike traces: :math:`c^{\,t_e - t_\text{last}}`), computed in blocks of events with
the state carried between blocks. When ``on_pre``/``on_post`` do not read ``w`` (directly or
through helpers and sums), each event's change :math:`\Delta_e` follows from the traces alone and

.. math:: w_\text{end} = 1 + \sum_e \Delta_e \quad\text{(event-driven)}, \qquad
    w_\text{end} = e^{\sum_e L_e} + \sum_e \Delta_e\, e^{\sum_{e' \ge e} L_{e'}}
    \quad\text{(clock-driven)},

with :math:`L_e = \sum_j \log(1 + dt\, g(tr^+_e c^j))` the Euler product of the gap after
event e (traces :math:`tr^+_e` just after it), summed over all gaps of all protocols together.
Rules whose spike updates read ``w`` (soft bounds) run sequentially.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence

import numpy as np
import torch

from neurofwp.errors import NeurofwpError, NonFiniteError, OutOfRangeError, ShapeError, UnknownNameError
from neurofwp.plasticity import language
from neurofwp.plasticity.expressions import evaluate
from neurofwp.plasticity.rules import Rule, check_parameter_value, check_time_step, resolve_rule
from neurofwp.protocols import MODULATOR, POST, PRE, Protocol, ProtocolError

NONE = 3
WINDOW = 2048
NEGLIGIBLE = 1e-17
# Elements of one [gaps, parameter sets, steps] block of the parallel Euler products: bounds memory.
BLOCK_ELEMENTS = 2**21
METHODS = ("auto", "parallel", "sequential")


def parameter_tensors(
    rule: Rule, parameters: Mapping[str, object] | None, dtype: torch.dtype, device=None
) -> tuple[dict[str, torch.Tensor], int]:
    """Every parameter as a ``[1, M]`` tensor (defaults filled in), keyed by its expression symbol."""
    parameters = dict(parameters or {})
    for name in parameters:
        rule.parameter(name)  # unknown names raise
    tensors, size = {}, 1
    for p in rule.parameters:
        value = parameters.get(p.name, p.default)
        if isinstance(value, torch.Tensor):
            if value.ndim > 1:
                raise ShapeError(f"parameter {p.name} must be a scalar or 1-d (one value per parameter set)")
            detached = value.detach()
            if not bool(torch.isfinite(detached).all()):
                raise NonFiniteError(f"parameter {p.name} holds non-finite values")
            if p.is_time and bool(((detached < 0) | ((detached == 0) & (not p.may_be_zero))).any()):
                relation = ">= 0" if p.may_be_zero else "> 0"
                raise OutOfRangeError(f"time constant {p.name} must be {relation} ms, got {detached.min().item():g}")
            tensor = value.to(dtype=dtype, device=device).reshape(1, -1)
        else:
            array = np.atleast_1d(np.asarray(value, dtype=float))
            if array.ndim > 1:
                raise ShapeError(f"parameter {p.name} must be a scalar or 1-d (one value per parameter set)")
            for item in array:
                check_parameter_value(p, float(item))
            tensor = torch.as_tensor(array, dtype=dtype, device=device).reshape(1, -1)
        if tensor.shape[1] != 1:
            if size not in (1, tensor.shape[1]):
                raise ShapeError(f"parameter {p.name} has {tensor.shape[1]} values, others have {size}")
            size = tensor.shape[1]
        tensors[p.symbol] = tensor
    return tensors, size


def event_table(protocols: Sequence[Protocol], dt_ms: float | None = None):
    """Padded ``[P, E]`` arrays of event times (ms) and kinds; on a ``dt_ms`` grid when given (step indices)."""
    per_protocol = [p.events() for p in protocols]
    count = max(len(t) for t, _ in per_protocol)
    times = np.zeros((len(protocols), count))
    kinds = np.full((len(protocols), count), NONE, dtype=np.int64)
    for row, (t, k) in enumerate(per_protocol):
        times[row, : len(t)] = t
        times[row, len(t) :] = t[-1] if len(t) else 0.0
        kinds[row, : len(k)] = k
    if dt_ms is not None:
        steps = np.rint(times / dt_ms)
        off_grid = np.abs(steps * dt_ms - times) > 1e-6 * max(dt_ms, 1.0)
        if off_grid.any():
            row, col = np.argwhere(off_grid)[0]
            raise ProtocolError(
                f"protocol {protocols[row].name!r}: spike at {times[row, col]:g} ms "
                f"is not on the {dt_ms:g} ms time grid"
            )
        return steps.astype(np.int64), kinds
    return times, kinds


def with_sums(rule: Rule, namespace: dict) -> dict:
    """Add the rule's postsynaptic sums; a protocol has one synapse per neuron, so each is its own term."""
    for name, expression, _unit in rule.summed:
        namespace[name] = evaluate(expression, namespace)
    return namespace


def simulate(
    rule: str | Rule,
    protocols: Sequence[Protocol],
    parameters: Mapping[str, object] | None = None,
    *,
    dt_ms: float = 0.1,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str | None = None,
    method: str = "auto",
) -> torch.Tensor:
    """Final weight (initial weight 1) for every protocol × parameter set, ``[P, M]``.

    Args:
        rule: a rule name, a rule file's path or a :class:`~neurofwp.plasticity.definition.Rule`.
        protocols: the protocols (see :mod:`neurofwp.protocols`).
        parameters: name → float, 1-d array or tensor (``M`` values: ``M`` parameter sets);
            missing names take the rule's defaults.
        dt_ms: integration step of clock-driven rules (unused by event-driven ones).
        method: ``"parallel"`` (every event at once), ``"sequential"`` (event by event, the
            reference) or ``"auto"``: parallel where the rule has that form (:func:`has_parallel_form`).
    """
    rule = resolve_rule(rule)
    if method not in METHODS:
        raise UnknownNameError("method", method, METHODS)
    if method == "auto":
        method = "parallel" if has_parallel_form(rule) else "sequential"
    elif method == "parallel" and not has_parallel_form(rule):
        raise NeurofwpError(
            f"rule {rule.name!r} has no parallel form: its spike updates read w, or a trace has a rest, "
            "an on_spike update or a time constant that may be 0"
        )
    run = _Run(rule, protocols, parameters, dt_ms, dtype, device)
    if method == "parallel":
        return _simulate_parallel(rule, run.values, run.positions, run.kinds, run.size, dt_ms if run.clock else None)
    weight, _responses = run.sequential(record=False)
    return weight


def simulate_responses(
    rule: str | Rule,
    protocols: Sequence[Protocol],
    parameters: Mapping[str, object] | None = None,
    *,
    dt_ms: float = 0.1,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """The efficacy (the rule's ``response``) delivered by every presynaptic spike, ``[P, S, M]``.

    ``S`` is the largest number of presynaptic spikes of a protocol; shorter protocols are
    padded with NaN. Each response is read before the spike's own updates (of the traces and
    of ``w``). Arguments as for :func:`simulate`; the run is event by event.
    """
    rule = resolve_rule(rule)
    if rule.response is None:
        raise NeurofwpError(f"rule {rule.name!r} has no response (a per-spike efficacy); its result is w")
    _weight, responses = _Run(rule, protocols, parameters, dt_ms, dtype, device).sequential(record=True)
    assert responses is not None
    return responses


@functools.cache
def has_parallel_form(rule: Rule) -> bool:
    """Whether every event can be evaluated at once: the spike updates do not read ``w`` and every
    trace is standard (rest 0, += 1 or reset) with a time constant that cannot be 0."""
    zero = {p.symbol for p in rule.parameters if p.may_be_zero}
    return not spike_updates_read_weight(rule) and all(t.standard and t.tau not in zero for t in rule.traces)


class _Run:
    """One simulation's resolved inputs: parameter tensors, the event table, and the event-by-event loop."""

    def __init__(self, rule: Rule, protocols, parameters, dt_ms: float, dtype, device):
        if not protocols:
            raise ProtocolError("no protocols to simulate")
        self.rule, self.dt_ms, self.dtype, self.device = rule, dt_ms, dtype, device
        self.values, self.size = parameter_tensors(rule, parameters, dtype, device)
        self.clock = rule.clock_driven
        if self.clock:
            if not dt_ms > 0:
                raise OutOfRangeError(f"dt_ms must be > 0, got {dt_ms}")
            check_time_step(rule, dt_ms, parameters)
        positions, kinds = event_table(protocols, dt_ms if self.clock else None)
        self.positions = torch.as_tensor(positions, device=device)
        self.kinds = torch.as_tensor(kinds, device=device)

    def sequential(self, record: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The reference: event by event. Returns ``w_end [P, M]`` and, with ``record``, the responses."""
        rule, values, dtype, device = self.rule, self.values, self.dtype, self.device
        count = self.positions.shape[0]
        weight = torch.ones(count, self.size, dtype=dtype, device=device)
        rests = {t.name: _rest(t, values, count, self.size, dtype, device) for t in rule.traces}
        traces = dict(rests)  # every trace starts at its rest
        taus = {t.name: values[t.tau] for t in rule.traces}
        if self.clock:
            ratios = {name: 1.0 - self.dt_ms / tau for name, tau in taus.items()}  # Euler decay per step
        responses = []
        previous = torch.zeros_like(self.positions[:, 0])
        for column in range(self.positions.shape[1]):
            gap = (self.positions[:, column] - previous)[:, None]
            previous = self.positions[:, column]
            if self.clock:
                weight, traces = _advance_clock(rule, values, weight, traces, ratios, gap, self.dt_ms)
            else:
                elapsed = gap.to(dtype)
                traces = {
                    name: rests[name] + (tr - rests[name]) * _relaxation(elapsed, taus[name])
                    for name, tr in traces.items()
                }
            kind = self.kinds[:, column : column + 1]
            weight, traces, response = _spike(rule, values, weight, traces, kind, record)
            if record:
                responses.append(response)
        if self.clock:  # let the drift act until the traces have vanished
            infinite = torch.full((count, 1), torch.iinfo(torch.int64).max, device=device)
            weight, traces = _advance_clock(rule, values, weight, traces, ratios, infinite, self.dt_ms)
        if not record:
            return weight, None
        # the responses of pre spikes, in order, padded with NaN: [P, S, M]
        stacked = torch.stack(responses, dim=1)  # [P, E, M]
        is_pre = self.kinds == PRE
        spikes = int(is_pre.sum(1).max()) if is_pre.numel() else 0
        out = torch.full((count, spikes, stacked.shape[-1]), torch.nan, dtype=dtype, device=device)
        rows, columns = torch.nonzero(is_pre, as_tuple=True)
        order = torch.cumsum(is_pre.to(torch.int64), dim=1)[rows, columns] - 1
        out = out.index_put((rows, order), stacked[rows, columns])
        return weight, out


def _rest(trace, values, count: int, size: int, dtype, device) -> torch.Tensor:
    """A trace's rest value, ``[P, M]``."""
    rest = torch.as_tensor(evaluate(trace.rest, dict(values)), dtype=dtype, device=device)
    return rest.expand(count, size) if rest.ndim else torch.full((count, size), float(rest), dtype=dtype, device=device)


def _relaxation(elapsed: torch.Tensor, tau: torch.Tensor) -> torch.Tensor:
    """``exp(-elapsed / tau)``; a time constant of 0 relaxes at once (factor 0 after any time, 1 at none)."""
    positive = tau > 0
    safe = torch.where(positive, tau, torch.ones_like(tau))
    # capped where the factor is below 1e-304 anyway: for a tiny tau the gradient Δ/τ² e^{-Δ/τ} is
    # inf · 0 unless the exponent stops growing
    ratio = torch.clamp(elapsed / safe, max=700.0)
    return torch.where(positive, torch.exp(-ratio), (elapsed <= 0).to(tau.dtype))


def _spike(rule: Rule, values, weight, traces, kind, record: bool = False):
    namespace = with_sums(rule, {**values, **traces, "w": weight})
    for name, expression in rule.helpers:
        namespace[name] = evaluate(expression, namespace)
    is_pre, is_post, is_modulator = kind == PRE, kind == POST, kind == MODULATOR
    response = None
    if record and rule.response is not None:
        response = torch.as_tensor(evaluate(rule.response, namespace), dtype=weight.dtype).expand_as(weight)
    change = torch.where(is_pre, torch.as_tensor(evaluate(rule.on_pre, namespace), dtype=weight.dtype), 0.0)
    change = change + torch.where(is_post, torch.as_tensor(evaluate(rule.on_post, namespace), dtype=weight.dtype), 0.0)
    weight = weight + change
    updated = {}
    for trace in rule.traces:
        fired = {"pre": is_pre, "post": is_post, "modulator": is_modulator}[trace.source]
        if trace.on_spike:  # from the values before this spike, like every update of the spike
            bumped = torch.as_tensor(evaluate(trace.on_spike, namespace), dtype=weight.dtype)
        elif trace.reset:
            bumped = torch.ones_like(traces[trace.name])
        else:
            bumped = traces[trace.name] + 1.0
        updated[trace.name] = torch.where(fired, bumped, traces[trace.name])
    return weight, updated, response


def _advance_clock(rule: Rule, values, weight, traces, ratios, steps, dt_ms):
    """``steps [P, 1]`` Euler steps of the traces and of ``dw/dt = w · g(traces)``, vectorised in windows."""
    assert rule.drift is not None, "only called for clock-driven rules"
    log_factor = torch.zeros_like(weight)
    start = 0
    longest = int(steps.max())
    while start < longest:
        j = torch.arange(start, start + WINDOW, device=weight.device, dtype=weight.dtype)
        active = (j[None, :] < steps.to(weight.dtype))[:, None, :]  # [P, 1, W]
        namespace = {k: v[..., None] for k, v in values.items()}
        powers = {}
        for name, tr in traces.items():
            powers[name] = ratios[name][..., None] ** j  # [1, M, W]
            namespace[name] = tr[..., None] * powers[name]
        namespace["w"] = 1.0
        rate = torch.as_tensor(evaluate(rule.drift, with_sums(rule, namespace)), dtype=weight.dtype)
        log_factor = log_factor + torch.where(active, torch.log1p(dt_ms * rate), 0.0).sum(-1)
        start += WINDOW
        remaining = max(float((tr.detach().abs() * ratios[n].detach() ** start).max()) for n, tr in traces.items())
        if remaining < NEGLIGIBLE:
            break
    capped = torch.clamp(steps, max=10**12).to(weight.dtype)
    traces = {name: tr * ratios[name] ** capped for name, tr in traces.items()}
    return weight * torch.exp(log_factor), traces


@functools.cache
def spike_reads(rule: Rule) -> frozenset[str]:
    """The names ``on_pre`` and ``on_post`` read, directly or through helpers and postsynaptic sums."""
    definitions = {name: text for name, text, _unit in rule.summed} | dict(rule.helpers)
    pending, seen = [rule.on_pre, rule.on_post], set()
    while pending:
        for name in language.names(pending.pop()):
            if name not in seen:
                seen.add(name)
                if name in definitions:
                    pending.append(definitions[name])
    return frozenset(seen)


def spike_updates_read_weight(rule: Rule) -> bool:
    """Whether the spike updates read ``w`` (then the rule runs sequentially)."""
    return "w" in spike_reads(rule)


def event_changes(rule: Rule, values, positions, kinds, dt_ms: float | None, traces_before=None):
    """For a rule in parallel form, every event at once: its weight change ``[P, E, M]`` (``on_pre`` at a
    presynaptic spike, ``on_post`` at a postsynaptic one, 0 otherwise), and for a clock-driven rule the traces
    just after each event and their decay rates per unit of ``positions`` (else None, None).

    The traces before each event come from ``traces_before(elapsed, fired, rate, reset)`` (default
    :func:`_traces_before`); ``dt_ms`` is None for events in ms, else the Euler step of ``positions``.
    """
    traces_before = traces_before or _traces_before
    dtype = next(iter(values.values())).dtype
    # time since the previous event (ms, or Euler steps), taken before any cast to float32
    elapsed = torch.diff(positions, dim=1, prepend=positions[:, :1]).to(dtype)
    fired = {"pre": kinds == PRE, "post": kinds == POST, "modulator": kinds == MODULATOR}
    # decay per unit of `positions`: c^t = exp(-rate * t)
    rates = {
        t.name: (1.0 / values[t.tau] if dt_ms is None else -torch.log1p(-dt_ms / values[t.tau])) for t in rule.traces
    }
    before = {t.name: traces_before(elapsed, fired[t.source], rates[t.name], t.reset) for t in rule.traces}
    namespace = {name: value[:, None, :] for name, value in values.items()} | before  # [P, E, M]
    read = spike_reads(rule)
    for name, expression, _unit in rule.summed:
        if name in read:
            namespace[name] = evaluate(expression, namespace)
    for name, expression in rule.helpers:
        namespace[name] = evaluate(expression, namespace)
    on_pre = torch.as_tensor(evaluate(rule.on_pre, namespace), dtype=dtype)
    on_post = torch.as_tensor(evaluate(rule.on_post, namespace), dtype=dtype)
    change = torch.where(fired["pre"][..., None], on_pre, 0.0) + torch.where(fired["post"][..., None], on_post, 0.0)
    if not rule.clock_driven:
        return change, None, None
    after = {
        t.name: torch.where(fired[t.source][..., None], 1.0 if t.reset else before[t.name] + 1.0, before[t.name])
        for t in rule.traces
    }
    return change, after, rates


def _simulate_parallel(rule: Rule, values, positions, kinds, size: int, dt_ms: float | None) -> torch.Tensor:
    """Every event of every protocol at once (module docstring); ``dt_ms`` is None for event-driven rules."""
    change, after, rates = event_changes(rule, values, positions, kinds, dt_ms)
    if dt_ms is None:
        weight = 1.0 + change.sum(1)
    else:
        gaps = torch.diff(positions, dim=1, append=positions[:, -1:])
        gaps[:, -1] = torch.iinfo(torch.int64).max  # after the last event the drift acts until the traces vanish
        logs = _gap_log_factors(rule, values, after, rates, gaps, dt_ms)  # [P, E, M]
        # w_end = prod_e F_e + sum_e change_e * prod_{e' >= e} F_e'  (F_e: the gap after event e)
        tail = torch.flip(torch.cumsum(torch.flip(logs, [1]), 1), [1])
        weight = torch.exp(tail[:, 0]) + (change * torch.exp(tail)).sum(1)
    return weight.expand(positions.shape[0], size).contiguous()


def trace_maps(
    elapsed: torch.Tensor, fired: torch.Tensor, rate: torch.Tensor, reset: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """The affine map ``tr <- a tr + b`` of a standard trace over each gap before an event, ``[P, E, M]`` each:
    ``a`` the decay (0 after a spike of a reset trace, which forgets what came before), ``b`` the decay where the
    source fired at the event before."""
    decay = torch.exp(-elapsed[..., None] * rate.reshape(1, 1, -1))
    spiked = torch.cat([torch.zeros_like(fired[:, :1]), fired[:, :-1]], dim=1)[..., None]  # source fired at e - 1
    scale = torch.where(spiked, 0.0, decay) if reset else decay
    return scale, torch.where(spiked, decay, 0.0)


def _traces_before(elapsed: torch.Tensor, fired: torch.Tensor, rate: torch.Tensor, reset: bool) -> torch.Tensor:
    """A trace's value just before each event, ``[P, E, M]``, from the events of its source (``fired [P, E]``)
    and the time since the previous event (``elapsed [P, E]``).

    Between events the trace follows the affine map ``tr <- a_e (tr + f_{e-1})`` (``a_e`` the decay
    over the gap, ``f`` 1 where the source fired; nearest-spike traces: ``tr <- a_e tr`` or
    ``a_e`` after a spike); the maps are composed by a parallel prefix scan, log2(E) rounds.
    """
    scale, shift = trace_maps(elapsed, fired, rate, reset)
    span = 1  # differentiable round by round: the fits' exact Hessians take a double backward through it
    while span < elapsed.shape[1]:  # compose each map with the one `span` events earlier (Hillis-Steele)
        shift = torch.cat([shift[:, :span], scale[:, span:] * shift[:, :-span] + shift[:, span:]], dim=1)
        scale = torch.cat([scale[:, :span], scale[:, span:] * scale[:, :-span]], dim=1)
        span *= 2
    return shift


def _gap_log_factors(rule: Rule, values, after, rates, gaps: torch.Tensor, dt_ms: float) -> torch.Tensor:
    """``L [P, E, M]``: log of the Euler product of ``dw/dt = w g(traces)`` over the gap after each event.

    All gaps of all protocols are summed together, window by window; a gap leaves the sum at its
    end or once its traces have decayed below NEGLIGIBLE (where g vanishes, checked when the rule
    was built). A gap shorter than a window is summed over the power of two that covers it.
    """
    assert rule.drift is not None, "only called for clock-driven rules"
    count, events = gaps.shape
    flat = {name: tr.reshape(count * events, -1) for name, tr in after.items()}  # [G, M]
    sets = max([tr.shape[-1] for tr in flat.values()] + [v.shape[-1] for v in values.values()])
    steps = gaps.reshape(-1)
    logs = torch.zeros(count * events, sets, dtype=next(iter(flat.values())).dtype, device=gaps.device)
    parameters = {k: v[..., None] for k, v in values.items()}  # [1, M, 1]
    ratios = {name: torch.exp(-rates[name])[..., None] for name in flat}  # [1, M, 1]
    scale = {name: tr.detach().abs().amax(-1) for name, tr in flat.items()}  # [G]
    active = torch.nonzero((steps > 0) & (sum(scale.values()) > 0)).reshape(-1)
    start = 0
    while active.numel():
        # each gap is summed over a power-of-two width that covers what is left of it, at most a window
        left = torch.clamp(steps[active] - start, max=WINDOW)
        widths = torch.pow(2, torch.ceil(torch.log2(left.to(torch.float64)))).to(torch.int64)
        for width in torch.unique(widths).tolist():
            group = active[widths == width]
            chunk = max(1, BLOCK_ELEMENTS // (sets * width))
            j = torch.arange(start, start + width, device=gaps.device, dtype=logs.dtype)
            for first in range(0, group.numel(), chunk):
                rows = group[first : first + chunk]
                namespace = dict(parameters)
                for name, tr in flat.items():
                    namespace[name] = tr[rows][..., None] * ratios[name] ** j  # [A, M, W]
                namespace["w"] = 1.0
                rate = torch.as_tensor(evaluate(rule.drift, with_sums(rule, namespace)), dtype=logs.dtype)
                inside = j < steps[rows].to(logs.dtype)[:, None, None]
                step_logs = torch.where(inside, torch.log1p(dt_ms * rate), 0.0).sum(-1)
                logs = logs.index_add(0, rows, step_logs.expand(rows.numel(), sets))
        start += WINDOW
        decayed = torch.stack([scale[name][active] * float(ratios[name].detach().max()) ** start for name in flat])
        active = active[(steps[active] > start) & (decayed.amax(0) >= NEGLIGIBLE)]
    return logs.reshape(count, events, sets)
