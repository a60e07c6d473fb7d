r"""Spiking plasticity rules, each defined once.

A rule is data: its parameters (with defaults, bounds and units), its traces (which
spikes drive them, their time constant, whether a spike adds 1 or resets to 1), the
weight change on a presynaptic and on a postsynaptic spike, and optionally a
continuous drift :math:`dw/dt`. Both backends read these definitions: the Brian2
backend writes them into ``Synapses`` equations with units, the torch backend
evaluates the same expression strings on tensors. Nothing of a rule's math is written
twice.

Expressions use the parameter names without their ``_ms`` suffix (``tau_plus`` for
``tau_plus_ms``) and the trace names; times are in ms in the torch backend and carry
units in Brian2. Traces decay as :math:`d\,tr/dt = -tr/\tau` and are read *before*
the current spike's own increment.

This is the spiking side of the fast-weight correspondence: the presynaptic trace is the
key, the postsynaptic signal the value, and each rule is an outer-product write
:math:`\Delta w = (\text{post factor}) \times (\text{pre factor})`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, cast

from neurofwp.errors import DTypeError, NonFiniteError, OutOfRangeError, UnknownNameError


@dataclass(frozen=True)
class Parameter:
    """A rule parameter: plain float, unit in the name (``_ms``: milliseconds), default and bounds."""

    name: str
    default: float
    bounds: tuple[float, float]
    description: str

    @property
    def symbol(self) -> str:
        """Name used in expressions (``tau_plus`` for ``tau_plus_ms``)."""
        return self.name[:-3] if self.name.endswith("_ms") else self.name

    @property
    def is_time(self) -> bool:
        """Whether the parameter is a time (name ending in ``_ms``; must be > 0)."""
        return self.name.endswith("_ms")


@dataclass(frozen=True)
class Trace:
    """A synaptic trace ``d tr/dt = -tr / tau``, bumped by ``source`` events (``+= 1``, or ``= 1`` when ``reset``)."""

    name: str
    tau: str  # parameter symbol of the time constant
    source: str  # "pre", "post" or "modulator" (a neuromodulator pulse, the third factor)
    reset: bool = False


@dataclass(frozen=True)
class Rule:
    r"""One plasticity rule. ``on_pre``/``on_post`` are the weight change of a spike, read
    with the traces just before that spike's own trace update; ``drift`` is a continuous
    :math:`dw/dt` (then the rule is clock-driven); ``helpers`` are named sub-expressions
    (e.g. a dynamic learning rate) usable in ``on_pre``/``on_post``."""

    name: str
    summary: str
    parameters: tuple[Parameter, ...]
    traces: tuple[Trace, ...]
    on_pre: str
    on_post: str
    drift: str | None = None
    helpers: tuple[tuple[str, str], ...] = field(default_factory=tuple)
    # Postsynaptic sums: (name, per-synapse expression, Brian2 unit). In a network the name
    # stands for the sum over all synapses onto the postsynaptic neuron; in a protocol (one
    # synapse per neuron) for the synapse's own term.
    summed: tuple[tuple[str, str, str], ...] = field(default_factory=tuple)
    reference: str = ""

    @property
    def parameter_names(self) -> list[str]:
        """The parameters' names, in definition order."""
        return [p.name for p in self.parameters]

    @property
    def clock_driven(self) -> bool:
        """Whether the rule has a drift (then it is integrated on a time grid, not event by event)."""
        return self.drift is not None

    def parameter(self, name: str) -> Parameter:
        """The parameter called ``name``; an unknown name raises :class:`~neurofwp.errors.UnknownNameError`."""
        for p in self.parameters:
            if p.name == name:
                return p
        raise UnknownNameError(f"parameter of rule {self.name!r}", name, self.parameter_names)

    def defaults(self) -> dict[str, float]:
        """Every parameter's default value, by name."""
        return {p.name: p.default for p in self.parameters}

    def resolve(self, values: Mapping[str, float] | None = None) -> dict[str, float]:
        """Defaults overridden by ``values``; every value checked (known name, finite, time constants > 0)."""
        resolved = self.defaults()
        for name, value in (values or {}).items():
            parameter = self.parameter(name)
            resolved[name] = check_parameter_value(parameter, value)
        return resolved


def check_parameter_value(parameter: Parameter, value: object) -> float:
    """``value`` as a float: a number, finite, and > 0 for a time constant (else a :mod:`neurofwp.errors` error)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        try:
            value = float(cast(Any, value))  # any object: numpy scalars, 0-d tensors convert; the rest raise
        except (TypeError, ValueError):
            raise DTypeError(f"parameter {parameter.name} must be a number, got {value!r}") from None
    value = float(value)
    if not math.isfinite(value):
        raise NonFiniteError(f"parameter {parameter.name} must be finite, got {value}")
    if parameter.is_time and value <= 0:
        raise OutOfRangeError(f"time constant {parameter.name} must be > 0 ms, got {value}")
    return value


def _pair_parameters() -> tuple[Parameter, ...]:
    return (
        Parameter("A_plus", 0.01, (0.0, 1.0), "potentiation amplitude (post spike reads the pre trace x)"),
        Parameter("A_minus", 0.0105, (0.0, 1.0), "depression amplitude (pre spike reads the post trace y)"),
        Parameter("tau_plus_ms", 16.8, (1.0, 200.0), "time constant of the pre trace x"),
        Parameter("tau_minus_ms", 33.7, (1.0, 200.0), "time constant of the post trace y"),
    )


def _pair(name: str, nearest: bool) -> Rule:
    kind = "nearest-spike" if nearest else "all-to-all"
    return Rule(
        name=name,
        summary=f"pair-based STDP ({kind}): post spike w += A_plus·x, pre spike w -= A_minus·y",
        parameters=_pair_parameters(),
        traces=(Trace("x", "tau_plus", "pre", nearest), Trace("y", "tau_minus", "post", nearest)),
        on_pre="-A_minus * y",
        on_post="A_plus * x",
        reference="Song, Miller & Abbott (2000) Nat Neurosci 3:919; Bi & Poo (1998) J Neurosci 18:10464",
    )


def _triplet(name: str, nearest: bool) -> Rule:
    kind = "nearest-spike" if nearest else "all-to-all"
    return Rule(
        name=name,
        summary=f"triplet STDP ({kind}): post w += r1·(A2_plus + A3_plus·o2), pre w -= o1·(A2_minus + A3_minus·r2)",
        parameters=(
            Parameter("A2_plus", 0.0, (0.0, 0.1), "pair potentiation amplitude"),
            Parameter("A3_plus", 6.5e-3, (0.0, 0.1), "triplet potentiation amplitude (reads o2)"),
            Parameter("A2_minus", 7.1e-3, (0.0, 0.1), "pair depression amplitude"),
            Parameter("A3_minus", 0.0, (0.0, 0.1), "triplet depression amplitude (reads r2)"),
            Parameter("tau_plus_ms", 16.8, (1.0, 200.0), "time constant of r1"),
            Parameter("tau_minus_ms", 33.7, (1.0, 200.0), "time constant of o1"),
            Parameter("tau_x_ms", 101.0, (1.0, 200.0), "time constant of r2"),
            Parameter("tau_y_ms", 114.0, (1.0, 200.0), "time constant of o2"),
        ),
        traces=(
            Trace("r1", "tau_plus", "pre", nearest),
            Trace("r2", "tau_x", "pre", nearest),
            Trace("o1", "tau_minus", "post", nearest),
            Trace("o2", "tau_y", "post", nearest),
        ),
        on_pre="-o1 * (A2_minus + A3_minus * r2)",
        on_post="r1 * (A2_plus + A3_plus * o2)",
        reference="Pfister & Gerstner (2006) J Neurosci 26:9673 (defaults: visual cortex, all-to-all, minimal model)",
    )


DELTA = Rule(
    name="delta",
    summary="spiking delta rule: dw/dt = eta·(S_post(t) − prediction)·x, prediction = Σ w·x/tau_plus of the "
    "postsynaptic neuron's synapses (the synapse's own w·x/tau_plus in a protocol)",
    parameters=(
        Parameter("eta", 0.05, (0.0, 10.0), "learning rate (the beta of the tensor delta rule)"),
        Parameter("tau_plus_ms", 16.8, (1.0, 200.0), "time constant of the presynaptic trace x (the key)"),
    ),
    traces=(Trace("x", "tau_plus", "pre"),),
    on_pre="0",
    on_post="eta * x",  # ∫ eta · Σδ(t − t_post) · x dt: a jump of eta·x at every post spike
    drift="-eta * prediction * x",  # the prediction term of the error, −eta · prediction · x
    summed=(("prediction", "w * x / tau_plus", "Hz"),),
    reference="Widrow & Hoff (1960); Schlag, Irie & Schmidhuber (2021) for the fast-weight delta rule",
)

MODULATED = Rule(
    name="stdp-modulated",
    summary="pair STDP with a dynamic learning rate beta = sigmoid(a·y_slow + b·x_slow + g·m + c) scaling both "
    "amplitudes; m is the trace of neuromodulator pulses (a three-factor rule when g != 0)",
    parameters=(
        *_pair_parameters(),
        Parameter("a", 0.0, (-5.0, 5.0), "weight of the slow postsynaptic trace in beta"),
        Parameter("b", 0.0, (-5.0, 5.0), "weight of the slow presynaptic trace in beta"),
        Parameter("c", 0.0, (-10.0, 10.0), "bias of beta"),
        Parameter("tau_x_slow_ms", 100.0, (1.0, 1000.0), "time constant of the slow presynaptic trace"),
        Parameter("tau_y_slow_ms", 100.0, (1.0, 1000.0), "time constant of the slow postsynaptic trace"),
        Parameter("g", 0.0, (-10.0, 10.0), "weight of the neuromodulator trace m in beta (third factor)"),
        Parameter("tau_mod_ms", 200.0, (1.0, 1000.0), "time constant of the neuromodulator trace m"),
    ),
    traces=(
        Trace("x", "tau_plus", "pre"),
        Trace("y", "tau_minus", "post"),
        Trace("x_slow", "tau_x_slow", "pre"),
        Trace("y_slow", "tau_y_slow", "post"),
        Trace("m", "tau_mod", "modulator"),
    ),
    helpers=(("beta", "1 / (1 + exp(-(a * y_slow + b * x_slow + g * m + c)))"),),
    on_pre="-beta * A_minus * y",
    on_post="beta * A_plus * x",
    reference="the spiking counterpart of the fast-weight learned learning rate (Schlag et al. 2021)",
)

RULES: dict[str, Rule] = {
    rule.name: rule
    for rule in (
        _pair("stdp", nearest=False),
        _pair("stdp-nearest", nearest=True),
        _triplet("triplet", nearest=False),
        _triplet("triplet-nearest", nearest=True),
        DELTA,
        MODULATED,
    )
}


def get_rule(name: str | Rule) -> Rule:
    """The rule called ``name``: ``stdp``, ``stdp-nearest``, ``triplet``, ``triplet-nearest``, ``delta`` or
    ``stdp-modulated`` (a :class:`Rule` is returned as it is)."""
    if isinstance(name, Rule):
        return name
    if not isinstance(name, str) or name not in RULES:
        raise UnknownNameError("rule", name, list(RULES))
    return RULES[name]
