r"""What a plasticity rule is: parameters, traces, per-spike updates, drift, and its metadata.

A :class:`Rule` is checked when it is built (:func:`validate`): every expression parses in
the rule language (:mod:`neurofwp.plasticity.language`), reads only names it may read, has
consistent units, and a drift is linear in ``w``; names are unique, defaults lie within their
bounds. A rule file (TOML, :func:`load_rule`) holds exactly the fields of a :class:`Rule`, and
:meth:`Rule.to_toml` writes them back: ``rule_from_toml(rule.to_toml()) == rule``.

Expressions use the parameter names without their ``_ms`` suffix (``tau_plus`` for
``tau_plus_ms``), the trace names and the weight ``w``. Traces relax as
:math:`d\,tr/dt = (r - tr)/\tau` toward their rest r (0 unless stated) and are read *before*
the current spike's own update. A spike of a trace's source adds 1 to it, sets it to 1
(``reset``) or sets it to its ``on_spike`` expression, evaluated on the values before the
spike (all updates of one spike are simultaneous). Short-term plasticity is written this way:
the Tsodyks–Markram resources relax to 1 and are depleted, ``R ← R(1 − u)``, and ``response``
is the transient efficacy each presynaptic spike delivers (e.g. ``A * u * R``), apart from ``w``.
"""

from __future__ import annotations

import difflib
import json
import math
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, cast

import numpy as np

from neurofwp.errors import DTypeError, NeurofwpError, NonFiniteError, OutOfRangeError, UnknownNameError
from neurofwp.plasticity import language
from neurofwp.plasticity.language import ExpressionError

SOURCES = ("pre", "post", "modulator")
FAMILIES = ("hebbian", "delta", "learned-beta", "biological")  # the built-ins' words; a rule may use its own
CUSTOM_FAMILY = "custom"


class RuleError(NeurofwpError, ValueError):
    """A rule definition that cannot be run: ``key`` names the field, ``detail`` says why."""

    def __init__(self, key: str, detail: str, rule: str = ""):
        self.key, self.detail, self.rule = key, detail, rule
        where = f"rule {rule!r}: " if rule else ""
        super().__init__(f"{where}{key}: {detail}")

    def __reduce__(self):  # an error raised in a worker process reaches the parent intact
        return type(self), (self.key, self.detail, self.rule)


class RuleFileError(RuleError):
    """A rule file with a mistake: the message names the file, the key and the value."""

    def __init__(self, path: str, key: str, detail: str):
        self.path = path
        NeurofwpError.__init__(self)
        self.key, self.detail, self.rule = key, detail, ""
        self.args = (f"{path}: {key}: {detail}" if key else f"{path}: {detail}",)

    def __reduce__(self):
        return type(self), (self.path, self.key, self.detail)


@dataclass(frozen=True)
class Parameter:
    """A rule parameter: plain float, unit in the name (``_ms``: milliseconds), default and bounds."""

    name: str
    default: float
    bounds: tuple[float, float]
    description: str = ""
    # A time constant that may be 0: the variable it governs relaxes at once (only a trace's tau)
    may_be_zero: bool = False

    def __post_init__(self) -> None:
        # plain floats, so that a default written 0 in a file equals one written 0.0
        if isinstance(self.default, int) and not isinstance(self.default, bool):
            object.__setattr__(self, "default", float(self.default))
        if isinstance(self.bounds, (list, tuple)) and all(
            isinstance(b, (int, float)) and not isinstance(b, bool) for b in self.bounds
        ):
            object.__setattr__(self, "bounds", tuple(float(b) for b in self.bounds))

    @property
    def symbol(self) -> str:
        """Name used in expressions (``tau_plus`` for ``tau_plus_ms``)."""
        return self.name[:-3] if self.name.endswith("_ms") else self.name

    @property
    def is_time(self) -> bool:
        """Whether the parameter is a time (name ending in ``_ms``; must be > 0, or ≥ 0 with ``may_be_zero``)."""
        return self.name.endswith("_ms")


@dataclass(frozen=True)
class Trace:
    """A synaptic variable ``d tr/dt = (rest - tr) / tau`` (initially ``rest``), updated by ``source`` events:
    ``+= 1``, ``= 1`` when ``reset``, or ``= on_spike`` (an expression of parameters and traces)."""

    name: str
    tau: str  # parameter symbol of the time constant
    source: str  # "pre", "post" or "modulator" (a neuromodulator pulse, the third factor)
    reset: bool = False
    rest: str = "0"  # expression of parameters: the value the trace relaxes to
    on_spike: str = ""  # empty: += 1 (or = 1 with reset)

    @property
    def standard(self) -> bool:
        """Whether the trace relaxes to 0 and a spike adds 1 or resets it to 1 (a trace in the strict sense)."""
        return self.rest == "0" and self.on_spike == ""


@dataclass(frozen=True)
class Rule:
    r"""One plasticity rule. ``on_pre``/``on_post`` are the weight change of a spike, read
    with the traces just before that spike's own trace update; ``drift`` is a continuous
    :math:`dw/dt` (then the rule is clock-driven), linear in ``w``; ``helpers`` are named
    sub-expressions (e.g. a dynamic learning rate) usable in ``on_pre``/``on_post``.

    Metadata: ``label`` (display name, default ``name``), ``family`` (``hebbian``, ``delta``,
    ``learned-beta``, ``biological`` or the author's own word), ``free`` (the parameters a
    fit frees by default, default all). ``source`` is the file the rule was read from (not
    part of its identity). Building a Rule checks it (:func:`validate`, raising
    :class:`RuleError`)."""

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
    # The transient efficacy a presynaptic spike delivers, read before the spike's updates
    # (short-term plasticity); None: the rule describes only the persistent weight w.
    response: str | None = None
    reference: str = ""
    label: str = ""
    family: str = CUSTOM_FAMILY
    free: tuple[str, ...] = ()
    source: str = field(default="", compare=False, repr=False)

    def __post_init__(self) -> None:
        # lists from a caller or a TOML file become tuples, so that rules compare and hash
        for key in ("parameters", "traces", "free"):
            if isinstance(getattr(self, key), list):
                object.__setattr__(self, key, tuple(getattr(self, key)))
        for key in ("helpers", "summed"):
            value = getattr(self, key)
            if isinstance(value, (list, tuple)) and all(isinstance(v, (list, tuple)) for v in value):
                object.__setattr__(self, key, tuple(tuple(v) for v in value))
        if self.label == "" and isinstance(self.name, str):
            object.__setattr__(self, "label", self.name)
        if not self.free and isinstance(self.parameters, tuple):
            object.__setattr__(self, "free", tuple(getattr(p, "name", p) for p in self.parameters))
        validate(self)

    @property
    def parameter_names(self) -> list[str]:
        """The parameters' names, in definition order."""
        return [p.name for p in self.parameters]

    @property
    def changes_weight(self) -> bool:
        """Whether the rule can change the persistent weight ``w``: a spike update or a drift that is not 0
        (short-term plasticity rules change only their ``response``)."""
        return not (is_zero(self.on_pre) and is_zero(self.on_post)) or self.drift is not None

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

    def dimensions(self) -> dict[str, Fraction]:
        """The dimension (power of time) of every name an expression may read."""
        return _dimensions(self)

    def to_toml(self) -> str:
        """The rule as a rule file; :func:`rule_from_toml` reads it back to an equal Rule."""
        return to_toml(self)


def is_zero(expression: str) -> bool:
    """Whether an expression is the number 0 (a spike update that leaves ``w`` alone)."""
    try:
        return float(expression) == 0.0
    except ValueError:
        return False


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
    if parameter.is_time and (value < 0 or (value == 0 and not parameter.may_be_zero)):
        relation = ">= 0" if parameter.may_be_zero else "> 0"
        raise OutOfRangeError(f"time constant {parameter.name} must be {relation} ms, got {value}")
    return value


def check_time_step(rule: Rule, dt_ms: float, values: Mapping[str, object] | None = None) -> None:
    """For a clock-driven rule: ``dt_ms`` below every trace time constant, else :class:`OutOfRangeError`.

    ``values`` maps parameter names to a number, an array or a tensor (all its values are
    checked), e.g. the lower bounds of fitted time constants; missing names take the defaults.
    Event-driven rules integrate exactly and pass whatever ``dt_ms``.
    """
    if not rule.clock_driven:
        return
    values = values or {}
    by_symbol = {p.symbol: p for p in rule.parameters}
    for trace in rule.traces:
        parameter = by_symbol[trace.tau]
        value = values.get(parameter.name, parameter.default)
        if hasattr(value, "detach"):  # a tensor, possibly requiring gradients
            value = value.detach().cpu().numpy()
        shortest = float(np.min(np.asarray(value, dtype=float)))
        if not dt_ms < shortest:
            raise OutOfRangeError(
                f"dt_ms = {dt_ms:g} must be smaller than every trace time constant; "
                f"{parameter.name} can be {shortest:g} ms"
            )


# Validation ------------------------------------------------------------------------------------


def _fail(rule: Rule, key: str, detail: str) -> RuleError:
    return RuleError(key, detail, rule.name if isinstance(rule.name, str) else "")


def _text(rule: Rule, key: str, value: object, *, empty: bool = True) -> None:
    if not isinstance(value, str):
        raise _fail(rule, key, f"must be text, got {type(value).__name__} {value!r}")
    if not empty and not value.strip():
        raise _fail(rule, key, "must not be empty")


def _number(rule: Rule, key: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _fail(rule, key, f"must be a number, got {type(value).__name__} {value!r}")
    if not math.isfinite(value):
        raise _fail(rule, key, f"must be finite, got {value!r}")
    return float(value)


def _expression(rule: Rule, key: str, text: object, scope: list[str], dims: Mapping[str, Fraction]) -> Fraction:
    """Check syntax, names and units of one expression; its dimension."""
    if not isinstance(text, str):
        raise _fail(rule, key, f"an expression must be text, got {type(text).__name__} {text!r}")
    try:
        tree_names = language.names(cast(str, text))
    except ExpressionError as error:
        raise _fail(rule, key, str(error)) from None
    for name in tree_names:
        if name not in scope:
            raise _fail(rule, key, f"{text!r}: {language.unknown_name_message(name, scope)}")
    try:
        return language.dimension(cast(str, text), dims)
    except ExpressionError as error:
        raise _fail(rule, key, str(error)) from None


def _dimensions(rule: Rule) -> dict[str, Fraction]:
    dims: dict[str, Fraction] = {"w": language.DIMENSIONLESS}
    dims.update({p.symbol: language.TIME if p.is_time else language.DIMENSIONLESS for p in rule.parameters})
    dims.update({t.name: language.DIMENSIONLESS for t in rule.traces})
    dims.update({name: language.SUM_UNITS[unit] for name, _expression, unit in rule.summed})
    for name, expression in rule.helpers:
        dims[name] = language.dimension(expression, dims)
    return dims


def validate(rule: Rule) -> None:
    """Check ``rule`` before any backend sees it; the first problem raises :class:`RuleError` naming the key."""
    _text(rule, "name", rule.name, empty=False)
    if any(c.isspace() for c in rule.name) or rule.name.endswith(".toml") or "/" in rule.name:
        raise _fail(rule, "name", f"{rule.name!r} must be one word without spaces, '/' or a .toml suffix")
    for key in ("summary", "reference", "label", "family"):
        _text(rule, key, getattr(rule, key), empty=key in ("summary", "reference"))

    # parameters
    if not isinstance(rule.parameters, tuple) or not all(isinstance(p, Parameter) for p in rule.parameters):
        raise _fail(rule, "parameters", "must be a list of Parameter entries")
    symbols: dict[str, str] = {}  # expression name -> what it is, for clash messages
    for index, p in enumerate(rule.parameters):
        key = f"parameters[{index}]"
        problem = language.name_problem(p.name)
        if problem:
            raise _fail(rule, f"{key}.name", problem)
        key = f"parameters.{p.name}"
        if p.symbol in symbols:
            raise _fail(rule, f"{key}.name", f"{p.symbol!r} names two parameters ({symbols[p.symbol]} and {p.name})")
        if p.is_time and language.name_problem(p.symbol):
            raise _fail(rule, f"{key}.name", f"its symbol {language.name_problem(p.symbol)}")
        symbols[p.symbol] = f"parameter {p.name}"
        default = _number(rule, f"{key}.default", p.default)
        bounds = p.bounds
        if not isinstance(bounds, (tuple, list)) or len(bounds) != 2:
            raise _fail(rule, f"{key}.bounds", f"must be a pair [low, high], got {bounds!r}")
        low, high = (_number(rule, f"{key}.bounds", b) for b in bounds)
        if not low < high:
            raise _fail(rule, f"{key}.bounds", f"needs low < high, got [{low:g}, {high:g}]")
        if not isinstance(p.may_be_zero, bool):
            raise _fail(rule, f"{key}.may_be_zero", f"must be true or false, got {p.may_be_zero!r}")
        if p.may_be_zero and not p.is_time:
            raise _fail(rule, f"{key}.may_be_zero", "only a time constant (a name ending in _ms) may be 0")
        if p.is_time and (low < 0 or (low == 0 and not p.may_be_zero)):
            allowed = ">= 0 ms" if p.may_be_zero else "> 0 ms (may_be_zero = true allows 0: instant relaxation)"
            raise _fail(rule, f"{key}.bounds", f"a time constant's lower bound must be {allowed}, got {low:g}")
        if not low <= default <= high:
            raise _fail(rule, f"{key}.default", f"{default:g} lies outside the bounds [{low:g}, {high:g}]")
        _text(rule, f"{key}.description", p.description)

    # traces
    if not isinstance(rule.traces, tuple) or not all(isinstance(t, Trace) for t in rule.traces) or not rule.traces:
        raise _fail(rule, "traces", "must be a non-empty list of Trace entries")
    times = [p.symbol for p in rule.parameters if p.is_time]
    for index, t in enumerate(rule.traces):
        problem = language.name_problem(t.name)
        if problem:
            raise _fail(rule, f"traces[{index}].name", problem)
        key = f"traces.{t.name}"
        if t.name in symbols:
            raise _fail(rule, f"{key}.name", f"{t.name!r} is already the {symbols[t.name]}")
        symbols[t.name] = f"trace {t.name}"
        if not isinstance(t.tau, str):
            raise _fail(rule, f"{key}.tau", f"must be the name of a time parameter, got {t.tau!r}")
        if t.tau not in times:
            hint = f" (write {t.tau[:-3]!r}: expressions drop the _ms suffix)" if t.tau[:-3] in times else ""
            raise _fail(
                rule, f"{key}.tau", f"{t.tau!r} is not a time parameter{hint}; time parameters: {', '.join(times)}"
            )
        if t.source not in SOURCES:
            raise _fail(rule, f"{key}.source", f"{t.source!r} is not one of {', '.join(SOURCES)}")
        if not isinstance(t.reset, bool):
            raise _fail(rule, f"{key}.reset", f"must be true or false, got {t.reset!r}")
        _text(rule, f"{key}.rest", t.rest, empty=False)
        _text(rule, f"{key}.on_spike", t.on_spike)
        if t.on_spike and t.reset:
            raise _fail(rule, f"{key}.reset", "a trace with on_spike sets its own value at a spike; leave reset out")
        if not t.standard and (rule.drift is not None or t.source == "modulator"):
            raise _fail(
                rule,
                f"{key}.on_spike" if t.on_spike else f"{key}.rest",
                "a trace with a rest or an on_spike update needs an event-driven rule (no drift) "
                "and a pre or post source",
            )
    zero_taus = {p.symbol for p in rule.parameters if p.may_be_zero}

    # postsynaptic sums: read parameters, traces and w
    dims: dict[str, Fraction] = {"w": language.DIMENSIONLESS}
    dims.update({p.symbol: language.TIME if p.is_time else language.DIMENSIONLESS for p in rule.parameters})
    dims.update({t.name: language.DIMENSIONLESS for t in rule.traces})
    # a trace's rest reads parameters; its on_spike update parameters and traces (values before the spike)
    parameter_scope = [p.symbol for p in rule.parameters]
    for t in rule.traces:
        for key, text, scope_here in (
            ("rest", t.rest, parameter_scope),
            ("on_spike", t.on_spike, [*parameter_scope, *(u.name for u in rule.traces)]),
        ):
            if text and _expression(rule, f"traces.{t.name}.{key}", text, scope_here, dims) != 0:
                raise _fail(rule, f"traces.{t.name}.{key}", f"{text!r} must be dimensionless, like the trace")
    base_scope = [*(p.symbol for p in rule.parameters), *(t.name for t in rule.traces), "w"]
    degrees: dict[str, int | None] = {}
    if not isinstance(rule.summed, tuple):
        raise _fail(rule, "summed", "must be a list of [name, expression, unit] triples")
    for index, entry in enumerate(rule.summed):
        if not (isinstance(entry, tuple) and len(entry) == 3):
            raise _fail(rule, f"summed[{index}]", f"must be [name, expression, unit], got {entry!r}")
        name, expression, unit = entry
        problem = language.name_problem(name)
        if problem:
            raise _fail(rule, f"summed[{index}]", problem)
        key = f"summed.{name}"
        if name in symbols:
            raise _fail(rule, key, f"{name!r} is already the {symbols[name]}")
        if unit not in language.SUM_UNITS:
            raise _fail(rule, f"{key}.unit", f"{unit!r} is not one of {', '.join(language.SUM_UNITS)}")
        found = _expression(rule, key, expression, base_scope, dims)
        if found != language.SUM_UNITS[unit]:
            raise _fail(rule, key, f"{expression!r} is {language.describe(found)}, but its unit is {unit!r}")
        symbols[name] = f"postsynaptic sum {name}"
        dims[name] = found
        degrees[name] = language.w_degree(expression, {})
    sums = [name for name, _expression, _unit in rule.summed]

    # helpers: read what sums read, the sums and earlier helpers
    if not isinstance(rule.helpers, tuple):
        raise _fail(rule, "helpers", "must be a list of [name, expression] pairs")
    scope = [*base_scope, *sums]
    for index, pair in enumerate(rule.helpers):
        if not (isinstance(pair, tuple) and len(pair) == 2):
            raise _fail(rule, f"helpers[{index}]", f"must be [name, expression], got {pair!r}")
        name, expression = pair
        problem = language.name_problem(name)
        if problem:
            raise _fail(rule, f"helpers[{index}]", problem)
        key = f"helpers.{name}"
        if name in symbols:
            raise _fail(rule, key, f"{name!r} is already the {symbols[name]}")
        dims[name] = _expression(rule, key, expression, scope, dims)
        symbols[name] = f"helper {name}"
        scope.append(name)

    for key in ("on_pre", "on_post"):
        found = _expression(rule, key, getattr(rule, key), scope, dims)
        if found != 0:
            raise _fail(
                rule, key, f"{getattr(rule, key)!r} is {language.describe(found)}; a weight change is dimensionless"
            )
    if rule.response is not None:
        found = _expression(rule, "response", rule.response, scope, dims)
        if found != 0:
            detail = f"{rule.response!r} is {language.describe(found)}; an efficacy is dimensionless"
            raise _fail(rule, "response", detail)
    # a time constant that may be 0 must not divide anything: it may only be a trace's tau
    texts: dict[str, str | None] = {"on_pre": rule.on_pre, "on_post": rule.on_post}
    texts |= {"response": rule.response, "drift": rule.drift}
    texts |= {f"helpers.{n}": e for n, e in rule.helpers} | {f"summed.{n}": e for n, e, _u in rule.summed}
    texts |= {f"traces.{t.name}.{k}": getattr(t, k) for t in rule.traces for k in ("rest", "on_spike")}
    for key, maybe_text in texts.items():
        text = maybe_text or ""
        for name in language.names(text) if text else ():
            if name in zero_taus:
                raise _fail(rule, key, f"{text!r} reads {name}, which may be 0 (may_be_zero): only a trace's tau may")
    if rule.drift is not None:
        found = _expression(rule, "drift", rule.drift, [*base_scope, *sums], dims)
        if found != -1:
            raise _fail(
                rule,
                "drift",
                f"{rule.drift!r} is {language.describe(found)}; a drift dw/dt is 1/time "
                "(divide by a time constant, e.g. / tau_plus)",
            )
        vanishing = {t.name: True for t in rule.traces}
        vanishing |= {n: language.vanishes_with(e, vanishing) for n, e, _unit in rule.summed}
        if not language.vanishes_with(rule.drift, vanishing):
            raise _fail(
                rule,
                "drift",
                f"{rule.drift!r} must be 0 when every trace is 0 (a factor of a trace, e.g. -lam * w * x / tau_plus): "
                "otherwise w keeps drifting after the last spike and a protocol has no final weight",
            )
        if language.w_degree(rule.drift, degrees) != 1:
            raise _fail(
                rule,
                "drift",
                f"{rule.drift!r} must be w times an expression without w (linear in w, e.g. -w * x / tau_plus): "
                "the torch backend integrates it exactly between spikes that way",
            )

    # metadata
    if not isinstance(rule.free, tuple) or not all(isinstance(n, str) for n in rule.free):
        raise _fail(rule, "free", f"must be a list of parameter names, got {rule.free!r}")
    for name in rule.free:
        if name not in rule.parameter_names:
            message = language.unknown_name_message(name, rule.parameter_names)
            raise _fail(rule, "free", message.replace("unknown name", "unknown parameter", 1))
    if len(set(rule.free)) != len(rule.free):
        raise _fail(rule, "free", f"lists a parameter twice: {', '.join(rule.free)}")


# Rule files ------------------------------------------------------------------------------------

_TOP_KEYS = (
    "name", "label", "family", "summary", "reference", "free",
    "on_pre", "on_post", "drift", "response", "helpers", "summed", "parameters", "traces",
)  # fmt: skip
_REQUIRED = ("name", "summary", "on_pre", "on_post", "parameters", "traces")
_PARAMETER_KEYS = ("name", "default", "bounds", "description", "may_be_zero")
_TRACE_KEYS = ("name", "tau", "source", "reset", "rest", "on_spike")


def _unknown_keys(path: str, where: str, table: Mapping[str, object], allowed: tuple[str, ...]) -> None:
    for key in table:
        if key not in allowed:
            close = difflib.get_close_matches(key, allowed, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise RuleFileError(path, f"{where}{key}", f"unknown key; {hint}the keys here are {', '.join(allowed)}")


def _entries(path: str, document: Mapping[str, Any], key: str, fields: tuple[str, ...]) -> list[dict]:
    entries = document[key]
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise RuleFileError(path, key, f"must be an array of tables ([[{key}]] sections), got {entries!r}")
    for index, entry in enumerate(entries):
        where = f"{key}.{entry['name']}." if isinstance(entry.get("name"), str) else f"{key}[{index}]."
        _unknown_keys(path, where, entry, fields)
        for required in ("name", "default", "bounds") if key == "parameters" else ("name", "tau", "source"):
            if required not in entry:
                raise RuleFileError(path, f"{where}{required}", "is missing")
    return entries


def rule_from_toml(text: str, source: str = "<text>") -> Rule:
    """The :class:`Rule` a rule file's ``text`` defines; any mistake raises :class:`RuleFileError` naming the key.

    The text is parsed with :mod:`tomllib` (nothing in it is executed).
    """
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise RuleFileError(source, "", f"not valid TOML: {error}") from None
    _unknown_keys(source, "", document, _TOP_KEYS)
    for key in _REQUIRED:
        if key not in document:
            raise RuleFileError(source, key, "is missing")
    if "free" in document and document["free"] == []:
        raise RuleFileError(source, "free", "is empty; leave it out to free every parameter")
    parameters = [
        Parameter(
            e["name"],
            e["default"],
            tuple(e["bounds"]) if isinstance(e["bounds"], list) else e["bounds"],
            e.get("description", ""),
            e.get("may_be_zero", False),
        )
        for e in _entries(source, document, "parameters", _PARAMETER_KEYS)
    ]
    traces = [
        Trace(e["name"], e["tau"], e["source"], e.get("reset", False), e.get("rest", "0"), e.get("on_spike", ""))
        for e in _entries(source, document, "traces", _TRACE_KEYS)
    ]
    for key in ("helpers", "summed", "free"):
        if key in document and not isinstance(document[key], list):
            raise RuleFileError(source, key, f"must be an array, got {document[key]!r}")
    try:
        return Rule(
            name=document["name"],
            summary=document["summary"],
            parameters=tuple(parameters),
            traces=tuple(traces),
            on_pre=document["on_pre"],
            on_post=document["on_post"],
            drift=document.get("drift"),
            response=document.get("response"),
            helpers=document.get("helpers", []),
            summed=document.get("summed", []),
            reference=document.get("reference", ""),
            label=document.get("label", ""),
            family=document.get("family", CUSTOM_FAMILY),
            free=tuple(document.get("free", ())),
            source=source,
        )
    except RuleError as error:
        raise RuleFileError(source, error.key, error.detail) from None


def load_rule(path: str | os.PathLike[str]) -> Rule:
    """Read the rule file ``path`` (TOML); a missing, unreadable or wrong file raises :class:`RuleFileError`."""
    name = os.fspath(path)
    try:
        with open(name, "rb") as handle:
            data = handle.read()
    except FileNotFoundError:
        raise RuleFileError(name, "", "no such rule file") from None
    except OSError as error:
        raise RuleFileError(name, "", f"cannot be read: {error.strerror or error}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise RuleFileError(name, "", f"is not UTF-8 text (byte {error.start})") from None
    return rule_from_toml(text, name)


def _string(value: str) -> str:
    """A TOML basic string (JSON's escapes are TOML's; DEL must be escaped too)."""
    return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")


def _float(value: float) -> str:
    return repr(float(value))


def to_toml(rule: Rule) -> str:
    """``rule`` as the text of a rule file (see :func:`rule_from_toml`)."""
    lines = [f"name = {_string(rule.name)}", f"label = {_string(rule.label)}", f"family = {_string(rule.family)}"]
    lines.append(f"summary = {_string(rule.summary)}")
    if rule.reference:
        lines.append(f"reference = {_string(rule.reference)}")
    lines.append(f"free = [{', '.join(_string(n) for n in rule.free)}]")
    lines += [f"on_pre = {_string(rule.on_pre)}", f"on_post = {_string(rule.on_post)}"]
    if rule.drift is not None:
        lines.append(f"drift = {_string(rule.drift)}")
    if rule.response is not None:
        lines.append(f"response = {_string(rule.response)}")
    if rule.helpers:
        lines.append(f"helpers = [{', '.join(f'[{_string(n)}, {_string(e)}]' for n, e in rule.helpers)}]")
    if rule.summed:
        triples = ", ".join(f"[{_string(n)}, {_string(e)}, {_string(u)}]" for n, e, u in rule.summed)
        lines.append(f"summed = [{triples}]")
    for p in rule.parameters:
        lines += ["", "[[parameters]]", f"name = {_string(p.name)}", f"default = {_float(p.default)}"]
        lines.append(f"bounds = [{_float(p.bounds[0])}, {_float(p.bounds[1])}]")
        lines.append(f"description = {_string(p.description)}")
        if p.may_be_zero:
            lines.append("may_be_zero = true")
    for t in rule.traces:
        lines += ["", "[[traces]]", f"name = {_string(t.name)}", f"tau = {_string(t.tau)}"]
        lines += [f"source = {_string(t.source)}", f"reset = {'true' if t.reset else 'false'}"]
        if t.rest != "0":
            lines.append(f"rest = {_string(t.rest)}")
        if t.on_spike:
            lines.append(f"on_spike = {_string(t.on_spike)}")
    return "\n".join(lines) + "\n"
