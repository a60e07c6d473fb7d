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

from neurofwp.errors import NeurofwpError, OutOfRangeError
from neurofwp.plasticity.definition import is_zero
from neurofwp.plasticity.language import to_brian2
from neurofwp.plasticity.rules import Rule, check_time_step, resolve_rule
from neurofwp.plasticity.torch_backend import parameter_tensors
from neurofwp.protocols import Protocol, ProtocolError

GRID_MS = 0.1
# Clock-driven runs continue this many slowest time constants past the last spike, so the
# drift has acted to within e^-50 (the torch backend integrates to the same limit).
TAIL_TAUS = 50.0
# A time constant of 0 (may_be_zero: instant relaxation) runs as this many ms
ZERO_TAU_MS = 1e-9


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
    if rule.response is not None:
        lines.append("response : 1  # the efficacy of the latest presynaptic spike")
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
        relaxing = f"-{trace.name}" if trace.rest == "0" else f"({to_brian2(trace.rest, dimensions)} - {trace.name})"
        lines.append(f"d{trace.name}/dt = {relaxing} / {trace.tau} : 1 ({trace_kind})")
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
    if side == "pre" and rule.response is not None:
        lines.append(f"response = {to_brian2(rule.response, dimensions)}")  # before the spike's updates
    text = rule.on_pre if side == "pre" else rule.on_post
    if not is_zero(text):  # a rule that leaves w alone here (short-term plasticity) skips it
        change = to_brian2(text, dimensions)
        lines.append(f"w = clip(w + {change}, 0, {w_max})" if w_max else f"w += {change}")
    # on_spike updates read the values before the spike: all are computed, then assigned
    updated = [t for t in rule.traces if t.source == side and t.on_spike]
    lines += [f"{t.name}_next = {to_brian2(t.on_spike, dimensions)}" for t in updated]
    lines += [f"{t.name} = {t.name}_next" for t in updated]
    for trace in rule.traces:
        if trace.source == side and not trace.on_spike:
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
    weights, _responses = _run(resolve_rule(rule), protocols, parameters, dt_ms, report, record=False)
    return weights


def simulate_responses(
    rule: str | Rule,
    protocols: Sequence[Protocol],
    parameters: Mapping[str, object] | None = None,
    *,
    dt_ms: float = 0.1,
    report: Callable | str | None = None,
) -> np.ndarray:
    """The efficacy (``response``) of every presynaptic spike, ``[P, S, M]``, NaN-padded (see the torch backend).

    The synapse stores each spike's response in its variable ``response``; a ``StateMonitor``
    reads it after the synapses have run in the time step of every presynaptic spike.
    """
    rule = resolve_rule(rule)
    if rule.response is None:
        raise NeurofwpError(f"rule {rule.name!r} has no response (a per-spike efficacy); its result is w")
    _weights, responses = _run(rule, protocols, parameters, dt_ms, report, record=True)
    assert responses is not None
    return responses


def _run(rule: Rule, protocols, parameters, dt_ms: float, report, record: bool):
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
    # a side with nothing to do (short-term plasticity has no postsynaptic code) gets no pathway
    codes = {side: pathway_code(rule, side) for side in ("pre", "post")}
    synapses = b2.Synapses(
        pre_group, post_group, model=model_equations(rule),
        on_pre=codes["pre"] or None, on_post=codes["post"] or None, method=method, clock=clock,
    )  # fmt: skip
    synapses.connect(j="i")
    for order, side in enumerate(("pre", "post")):  # pre before post at equal times
        if codes[side]:
            getattr(synapses, side).order = order
    synapses.w = 1.0
    for p in rule.parameters:
        per_synapse = np.tile(np.broadcast_to(values[p.symbol], (size,)), n_protocols)
        if p.may_be_zero:  # relaxes to exactly its rest within any time step (exp(-0.1 ms / 1e-9 ms) = 0)
            per_synapse = np.maximum(per_synapse, ZERO_TAU_MS)
        setattr(synapses, p.symbol, per_synapse * (b2.ms if p.is_time else 1))
    dimensions = rule.dimensions()
    for trace in rule.traces:  # every trace starts at its rest
        if trace.rest != "0":
            setattr(synapses, trace.name, to_brian2(trace.rest, dimensions))
    network.add(pre_group, post_group, synapses)
    monitor = None
    if record:
        monitor = b2.StateMonitor(synapses, "response", record=True, when="after_synapses", dt=step_ms * b2.ms)
        network.add(monitor)
    if modulated:
        modulator = b2.SpikeGeneratorGroup(
            count, np.asarray(mod_idx, dtype=int), np.asarray(mod_t) * b2.ms, dt=step_ms * b2.ms
        )
        delivery = b2.Synapses(modulator, synapses, on_pre=modulator_code(rule), clock=clock)
        delivery.connect(j="i")
        delivery.pre.order = -1  # a pulse reaches the synapse before a simultaneous spike
        network.add(modulator, delivery)
    network.run(duration_ms * b2.ms, report=report, namespace={})
    weights = np.asarray(synapses.w[:]).reshape(n_protocols, size)
    if monitor is None:
        return weights, None
    samples = np.asarray(monitor.response[:])  # [synapse, step]
    trains = [protocol.spike_trains()[0] for protocol in protocols]
    responses = np.full((n_protocols, max(len(t) for t in trains), size), np.nan)
    for row, train in enumerate(trains):
        steps = np.rint(train / step_ms).astype(int)
        for column in range(size):
            responses[row, : len(train), column] = samples[row * size + column, steps]
    return weights, responses
