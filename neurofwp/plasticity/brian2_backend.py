"""Brian2 simulation of a rule over plasticity protocols, built from the same rule definition.

All protocols × parameter sets run side by side in one network: one presynaptic and
one postsynaptic ``SpikeGeneratorGroup`` neuron and one synapse per (protocol, parameter
set). The rule's parameters become per-synapse constants with physical units, its traces
``d tr/dt = -tr/tau`` equations (event-driven, or clock-driven with forward Euler when
the rule has a drift), and its ``on_pre``/``on_post`` expressions the pathway code, in
that order: weight change first, then the trace increments. The presynaptic pathway is
scheduled before the postsynaptic one, so simultaneous spikes are processed pre first.

Event-driven traces are exact whatever the time step, so for those rules the step is the
coarsest grid that holds every spike time (a multiple of 0.1 ms): a 600 s protocol at
0.1 Hz then costs 120 000 steps instead of 6 million. Clock-driven rules use ``dt_ms``.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import torch

from neurofwp.errors import OutOfRangeError
from neurofwp.plasticity.language import to_brian2
from neurofwp.plasticity.rules import Rule, check_time_step, resolve_rule
from neurofwp.plasticity.torch_backend import parameter_tensors
from neurofwp.protocols import Protocol, ProtocolError

GRID_MS = 0.1
# Clock-driven runs continue this many slowest time constants past the last spike, so the
# drift has acted to within e^-50 (the torch backend integrates to the same limit).
TAIL_TAUS = 50.0


def model_equations(rule: Rule, summed_on_post: bool = False) -> str:
    """The ``Synapses`` model string of ``rule``.

    Modulator traces are written by a second ``Synapses`` object (from the modulator
    pulses onto these synapses), so they are clock-driven, integrated exactly. The rule's
    postsynaptic sums are synaptic subexpressions (one synapse per neuron, as in a
    protocol), or with ``summed_on_post`` Brian2 ``(summed)`` variables of the target group,
    which must then declare them (``prediction : Hz``).
    """
    kind = "clock-driven" if rule.clock_driven else "event-driven"
    dimensions = rule.dimensions()
    drift = to_brian2(rule.drift, dimensions) if rule.drift is not None else None
    if summed_on_post and drift:
        for name, _expression, _unit in rule.summed:
            drift = re.sub(rf"\b{name}\b", f"{name}_post", drift)
    lines = [f"dw/dt = {drift} : 1 (clock-driven)" if rule.clock_driven else "w : 1"]
    for name, expression, unit in rule.summed:
        lines.append(
            f"{name}_post = {to_brian2(expression, dimensions)} : {unit} (summed)"
            if summed_on_post
            else f"{name} = {to_brian2(expression, dimensions)} : {unit}"
        )
    for p in rule.parameters:
        lines.append(f"{p.symbol} : {'second' if p.is_time else '1'} (constant)")
    for trace in rule.traces:
        trace_kind = "clock-driven" if trace.source == "modulator" else kind
        lines.append(f"d{trace.name}/dt = -{trace.name} / {trace.tau} : 1 ({trace_kind})")
    return "\n".join(lines)


def modulator_code(rule: Rule) -> str:
    """Statements run on a neuromodulator pulse (on the target synapses' modulator traces)."""
    return "\n".join(
        f"{t.name}_post = 1" if t.reset else f"{t.name}_post += 1" for t in rule.traces if t.source == "modulator"
    )


def pathway_code(rule: Rule, side: str, w_max: str | None = None) -> str:
    """Statements run on a ``side`` ("pre"/"post") spike: helpers, the weight change (clipped to
    ``[0, w_max]`` when ``w_max`` names a bound), then the trace updates."""
    dimensions = rule.dimensions()
    lines = [f"{name} = {to_brian2(expression, dimensions)}" for name, expression in rule.helpers]
    change = to_brian2(rule.on_pre if side == "pre" else rule.on_post, dimensions)
    lines.append(f"w = clip(w + {change}, 0, {w_max})" if w_max else f"w += {change}")
    for trace in rule.traces:
        if trace.source == side:
            lines.append(f"{trace.name} = 1" if trace.reset else f"{trace.name} += 1")
    return "\n".join(lines)


def _grid_step_ms(protocols: Sequence[Protocol]) -> float:
    """Largest multiple of 0.1 ms that divides every spike time."""
    divisor = 0
    for protocol in protocols:
        for train in (*protocol.spike_trains(), protocol.modulator_train()):
            ticks = np.rint(train / GRID_MS)
            if np.any(np.abs(ticks * GRID_MS - train) > 1e-6):
                raise ProtocolError(
                    f"protocol {protocol.name!r}: spike times must be multiples of {GRID_MS} ms for Brian2"
                )
            divisor = math.gcd(divisor, *[int(t) for t in ticks]) if len(ticks) else divisor
    return GRID_MS * max(divisor, 1)


def simulate(
    rule: str | Rule,
    protocols: Sequence[Protocol],
    parameters: Mapping[str, object] | None = None,
    *,
    dt_ms: float = 0.1,
    report: Callable | str | None = None,
) -> np.ndarray:
    """Final weight (initial weight 1) for every protocol × parameter set, ``[P, M]`` (see the torch backend)."""
    rule = resolve_rule(rule)
    if not protocols:
        raise ProtocolError("no protocols to simulate")
    tensors, size = parameter_tensors(rule, parameters, dtype=torch.float64)  # checks every value
    if rule.clock_driven:
        if not dt_ms > 0:
            raise OutOfRangeError(f"dt_ms must be > 0, got {dt_ms}")
        check_time_step(rule, dt_ms, parameters)
    values = {symbol: tensor.detach().numpy().ravel() for symbol, tensor in tensors.items()}

    import brian2 as b2

    logging.getLogger("brian2").setLevel(logging.ERROR)
    if rule.clock_driven:
        step_ms = dt_ms
    else:
        step_ms = _grid_step_ms(protocols)

    n_protocols, count = len(protocols), len(protocols) * size
    pre_idx: list[int] = []
    post_idx: list[int] = []
    mod_idx: list[int] = []
    pre_t: list[float] = []
    post_t: list[float] = []
    mod_t: list[float] = []
    last_ms = 0.0
    for row, protocol in enumerate(protocols):
        pre, post = protocol.spike_trains()
        mod = protocol.modulator_train()
        last_ms = max(last_ms, protocol.duration_ms)
        for column in range(size):
            neuron = row * size + column
            pre_idx.extend([neuron] * len(pre))
            pre_t.extend(pre)
            post_idx.extend([neuron] * len(post))
            post_t.extend(post)
            mod_idx.extend([neuron] * len(mod))
            mod_t.extend(mod)
    if rule.clock_driven:
        longest = max(float(values[t.tau].max()) for t in rule.traces)
        duration_ms = last_ms + TAIL_TAUS * longest
    else:
        duration_ms = last_ms + step_ms

    network = b2.Network()
    clock = b2.Clock(dt=step_ms * b2.ms)
    pre_group = b2.SpikeGeneratorGroup(
        count, np.asarray(pre_idx, dtype=int), np.asarray(pre_t) * b2.ms, dt=step_ms * b2.ms
    )
    post_group = b2.SpikeGeneratorGroup(
        count, np.asarray(post_idx, dtype=int), np.asarray(post_t) * b2.ms, dt=step_ms * b2.ms
    )
    modulated = any(t.source == "modulator" for t in rule.traces)
    method = "euler" if rule.clock_driven else ("exact" if modulated else None)
    synapses = b2.Synapses(
        pre_group, post_group, model=model_equations(rule),
        on_pre=pathway_code(rule, "pre"), on_post=pathway_code(rule, "post"), method=method, clock=clock,
    )  # fmt: skip
    synapses.connect(j="i")
    synapses.pre.order = 0  # pre before post at equal times
    synapses.post.order = 1
    synapses.w = 1.0
    for p in rule.parameters:
        per_synapse = np.tile(np.broadcast_to(values[p.symbol], (size,)), n_protocols)
        setattr(synapses, p.symbol, per_synapse * (b2.ms if p.is_time else 1))
    network.add(pre_group, post_group, synapses)
    if modulated:
        modulator = b2.SpikeGeneratorGroup(
            count, np.asarray(mod_idx, dtype=int), np.asarray(mod_t) * b2.ms, dt=step_ms * b2.ms
        )
        delivery = b2.Synapses(modulator, synapses, on_pre=modulator_code(rule), clock=clock)
        delivery.connect(j="i")
        delivery.pre.order = -1  # a pulse reaches the synapse before a simultaneous spike
        network.add(modulator, delivery)
    network.run(duration_ms * b2.ms, report=report, namespace={})
    return np.asarray(synapses.w[:]).reshape(n_protocols, size)
