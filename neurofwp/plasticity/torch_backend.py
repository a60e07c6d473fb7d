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
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch

from neurofwp.errors import NonFiniteError, OutOfRangeError, ShapeError
from neurofwp.plasticity.expressions import evaluate
from neurofwp.plasticity.rules import Rule, check_parameter_value, check_time_step, resolve_rule
from neurofwp.protocols import MODULATOR, POST, PRE, Protocol, ProtocolError

NONE = 3
WINDOW = 2048
NEGLIGIBLE = 1e-17


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
            if p.is_time and bool((detached <= 0).any()):
                raise OutOfRangeError(f"time constant {p.name} must be > 0 ms, got {detached.min().item():g}")
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
) -> torch.Tensor:
    """Final weight (initial weight 1) for every protocol × parameter set, ``[P, M]``.

    Args:
        rule: a rule name, a rule file's path or a :class:`~neurofwp.plasticity.definition.Rule`.
        protocols: the protocols (see :mod:`neurofwp.protocols`).
        parameters: name → float, 1-d array or tensor (``M`` values: ``M`` parameter sets);
            missing names take the rule's defaults.
        dt_ms: integration step of clock-driven rules (unused by event-driven ones).
    """
    rule = resolve_rule(rule)
    if not protocols:
        raise ProtocolError("no protocols to simulate")
    values, size = parameter_tensors(rule, parameters, dtype, device)
    clock = rule.clock_driven
    if clock:
        if not dt_ms > 0:
            raise OutOfRangeError(f"dt_ms must be > 0, got {dt_ms}")
        check_time_step(rule, dt_ms, parameters)
    positions, kinds = event_table(protocols, dt_ms if clock else None)
    positions = torch.as_tensor(positions, device=device)
    kinds = torch.as_tensor(kinds, device=device)
    n_protocols = len(protocols)

    weight = torch.ones(n_protocols, size, dtype=dtype, device=device)
    traces = {t.name: torch.zeros(n_protocols, size, dtype=dtype, device=device) for t in rule.traces}
    taus = {t.name: values[t.tau] for t in rule.traces}
    if clock:
        ratios = {name: 1.0 - dt_ms / tau for name, tau in taus.items()}  # Euler decay per step

    previous = torch.zeros_like(positions[:, 0])
    for column in range(positions.shape[1]):
        gap = (positions[:, column] - previous)[:, None]
        previous = positions[:, column]
        if clock:
            weight, traces = _advance_clock(rule, values, weight, traces, ratios, gap, dt_ms)
        else:
            elapsed = gap.to(dtype)
            traces = {name: tr * torch.exp(-elapsed / taus[name]) for name, tr in traces.items()}
        weight, traces = _spike(rule, values, weight, traces, kinds[:, column : column + 1])
    if clock:  # let the drift act until the traces have vanished
        infinite = torch.full((n_protocols, 1), torch.iinfo(torch.int64).max, device=device)
        weight, traces = _advance_clock(rule, values, weight, traces, ratios, infinite, dt_ms)
    return weight


def _spike(rule: Rule, values, weight, traces, kind):
    namespace = with_sums(rule, {**values, **traces, "w": weight})
    for name, expression in rule.helpers:
        namespace[name] = evaluate(expression, namespace)
    is_pre, is_post, is_modulator = kind == PRE, kind == POST, kind == MODULATOR
    change = torch.where(is_pre, torch.as_tensor(evaluate(rule.on_pre, namespace), dtype=weight.dtype), 0.0)
    change = change + torch.where(is_post, torch.as_tensor(evaluate(rule.on_post, namespace), dtype=weight.dtype), 0.0)
    weight = weight + change
    updated = {}
    for trace in rule.traces:
        fired = {"pre": is_pre, "post": is_post, "modulator": is_modulator}[trace.source]
        bumped = torch.ones_like(traces[trace.name]) if trace.reset else traces[trace.name] + 1.0
        updated[trace.name] = torch.where(fired, bumped, traces[trace.name])
    return weight, updated


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
