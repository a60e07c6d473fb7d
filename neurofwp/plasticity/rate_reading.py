r"""The rate (tensor) reading of a spiking rule, derived from its one definition.

A spiking rule (:class:`~neurofwp.plasticity.definition.Rule`) is read as a fast weight program
over the layout ``[B, T, H, D]``: step ``t`` lasts ``dt_ms``; the presynaptic activity of the
step is the key :math:`k_t \in \mathbb{R}^{D_k}` (one entry per presynaptic unit ``i``), the
postsynaptic activity the value :math:`v_t \in \mathbb{R}^{D_v}` (one per postsynaptic unit
``j``), and the fast weights :math:`W \in \mathbb{R}^{D_k \times D_v}` hold one synapse
:math:`i \to j` per entry (the tensor core's state ``[B, H, Dk, Dv]``).

Traces. A trace of the presynaptic side becomes an exponentially filtered key, one of the
postsynaptic side a filtered value:

.. math:: \bar x_t = c\, \bar x_{t-1} + k_t, \qquad c = e^{-\Delta t/\tau}
    \quad (\text{clock-driven rules: } c = 1 - \Delta t/\tau,\ \text{the Euler factor of the backends}).

Convention (the spiking one, in steps): a spike reads the traces *before* its own update, and at
equal times presynaptic spikes come before postsynaptic ones. So within step ``t`` the step's
presynaptic activity arrives first, then its postsynaptic activity:

- ``on_pre`` reads presynaptic traces without the current step, :math:`x^-_t = \bar x_t - k_t`,
  and postsynaptic traces without it, :math:`y^-_t = \bar y_t - v_t`; it fires with :math:`k_t`;
- ``on_post`` reads presynaptic traces *with* the current step, :math:`x^+_t = \bar x_t`, and
  postsynaptic ones without it, :math:`y^-_t`; it fires with :math:`v_t`;
- ``drift`` reads the traces as ``on_post`` does and acts for one step (:math:`\Delta t\cdot dw/dt`);
- every change of step ``t`` is evaluated on :math:`W_{t-1}` (explicit Euler); the read-out is
  :math:`o_t = W_t^\top q_t` (read after write, like the tensor core). Traces start at 0.

So with traces that reach only the current step (:math:`c = 0`: :math:`\Delta t \gg \tau`, or
:math:`\Delta t = \tau` for a clock-driven rule) the pre traces read by ``on_post`` are :math:`k_t`
and the post traces read by ``on_pre`` are 0.

Updates. Helpers are substituted, parameters not left free are replaced by their values, and
every update is expanded (:mod:`sympy`) into products whose factors read either presynaptic
traces (the key side) or postsynaptic traces (the value side), never both:

.. math::

    \Delta W_t = \sum_{m \in \text{on\_pre}} (k_t \odot P_m(x^-_t)) \otimes Q_m(y^-_t)
      + \sum_{m \in \text{on\_post}} P_m(x^+_t) \otimes (v_t \odot Q_m(y^-_t))
      + \Delta t \sum_{m \in \text{drift}} P_m(x^+_t) \otimes \big(Q_m(y^-_t) \odot W_{t-1}^\top A_m(x^+_t)\big)
      + \Delta t \sum_{m \in \text{drift}} W_{t-1} \odot \big(P_m(x^+_t) \otimes Q_m(y^-_t)\big).

Slow traces and helpers become per-element gates of the key or the value (``P``, ``Q``); a drift
term through a postsynaptic sum :math:`\sum_i w_{ij} A(x_i)` is the delta rule's correction
(:math:`W^\top A`), and one that multiplies ``w`` directly a per-element decay. Neuromodulator
traces are held at rest (no third factor in a fast weight program). A factor that reads both sides
(e.g. a learning rate :math:`\sigma(a\,y_\text{slow} + b\,x_\text{slow})` with free or non-zero
``a`` and ``b``), a spike update that reads ``w``, a nearest-spike trace (reset: not linear in the
activity) or a trace with a rest or an ``on_spike`` update raise :class:`RuleError` naming the rule
and the term.

Forms. Without drift the write is a sum of ``M`` outer products per step, evaluated by
:func:`neurofwp.tensor.hebbian_rule` on ``T·M`` sub-steps (pair STDP: Hebbian with filtered keys
and values; triplet: a Hebbian write whose value side is gated by the slow postsynaptic trace).
A drift of the delta form, :math:`\Delta W = \eta A \otimes v - \Delta t\,\tfrac{\eta}{\tau}\, A \otimes W^\top A`,
is :func:`neurofwp.tensor.delta_rule` with key :math:`A`, :math:`\beta = \eta\Delta t/\tau` and value
:math:`v\,\tau/\Delta t`. Anything else runs the step loop (``mode="recurrent"``, the reference).

Rate form. For Poisson activity at rates :math:`r_\text{pre}, r_\text{post}` the stationary traces
have mean :math:`r\tau` and the mean drift is
:math:`\langle \dot w \rangle = r_\text{pre} \sum_\text{on\_pre} \langle P\rangle\langle Q\rangle
+ r_\text{post} \sum_\text{on\_post} \langle P\rangle\langle Q\rangle` (:meth:`RateReading.mean_drift`):
Kempter, Gerstner & van Hemmen (1999) for pair STDP,
:math:`r_\text{pre} r_\text{post}(A_+\tau_+ - A_-\tau_-) + p\, r_\text{pre} A_+ e^{-d/\tau_+}` with a
pre→post correlation (a post spike ``d`` after a pre spike with probability ``p``); Pfister &
Gerstner (2006) for the triplet rule,
:math:`r_\text{pre} r_\text{post}\,[A_2^+\tau_+ + A_3^+\tau_+\tau_y r_\text{post}
- A_2^-\tau_- - A_3^-\tau_-\tau_x r_\text{pre}]`.
"""

from __future__ import annotations

import ast
import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import sympy
import torch
from sympy.printing.str import StrPrinter

from neurofwp.errors import NeurofwpError, OutOfRangeError, ShapeError
from neurofwp.plasticity import language
from neurofwp.plasticity.definition import Rule, RuleError, Trace, check_parameter_value
from neurofwp.plasticity.expressions import evaluate
from neurofwp.plasticity.rules import resolve_rule
from neurofwp.tensor.rules import delta_rule, hebbian_rule

__all__ = ["FORMS", "RateReading", "Term", "rate_reading"]

FORMS = ("hebbian", "delta", "recurrent")
MODES = ("auto", *FORMS)
CHUNK = 64  # steps per block of the trace filter

_CLIP = sympy.Function("clip")
_STEP = sympy.Function("step")
_SYMPY_FUNCTIONS = {
    "exp": sympy.exp,
    "log": sympy.log,
    "sqrt": sympy.sqrt,
    "tanh": sympy.tanh,
    "abs": sympy.Abs,
    "min": sympy.Min,
    "max": sympy.Max,
    "clip": _CLIP,
    "step": _STEP,
}
assert set(_SYMPY_FUNCTIONS) == set(language.FUNCTIONS), "every function of the language has a sympy meaning"


class _Printer(StrPrinter):
    """sympy back to the rule language (``abs``, ``min``, ``max`` by their language names)."""

    def _print_Abs(self, expr):
        return f"abs({self._print(expr.args[0])})"

    def _nested(self, name, args):
        text = self._print(args[0])
        for arg in args[1:]:
            text = f"{name}({text}, {self._print(arg)})"
        return text

    def _print_Min(self, expr):
        return self._nested("min", expr.args)

    def _print_Max(self, expr):
        return self._nested("max", expr.args)

    def _print_Exp1(self, expr):
        return "exp(1)"


def _text(expr: sympy.Expr) -> str:
    text = _Printer().doprint(expr)
    language.parse(text)  # a printed factor is an expression of the rule language
    return text


def _to_sympy(text: str, symbols: Mapping[str, sympy.Expr]) -> sympy.Expr:
    """An expression of the rule language (already checked) as a sympy expression; names map through ``symbols``."""

    def walk(node: ast.AST) -> sympy.Expr:
        if isinstance(node, ast.Expression):
            return walk(node.body)
        if isinstance(node, ast.Constant):
            return sympy.nsimplify(node.value) if isinstance(node.value, int) else sympy.Float(node.value)
        if isinstance(node, ast.Name):
            return symbols[node.id]
        if isinstance(node, ast.UnaryOp):
            return -walk(node.operand) if isinstance(node.op, ast.USub) else walk(node.operand)
        if isinstance(node, ast.BinOp):
            left, right = walk(node.left), walk(node.right)
            operators = {ast.Add: sympy.Add, ast.Mult: sympy.Mul}
            if type(node.op) in operators:
                return operators[type(node.op)](left, right)
            if isinstance(node.op, ast.Sub):
                return left - right
            if isinstance(node.op, ast.Div):
                return left / right
            return left**right
        assert isinstance(node, ast.Call) and isinstance(node.func, ast.Name), "checked by language.parse"
        return _SYMPY_FUNCTIONS[node.func.id](*(walk(a) for a in node.args))

    return walk(language.parse(text))


@dataclass(frozen=True)
class Term:
    r"""One outer-product term of a step's change, its factors as rule-language expressions.

    ``kind``: ``"pre"`` (fired by the key: :math:`(k_t \odot P) \otimes Q`), ``"post"`` (fired by
    the value: :math:`P \otimes (v_t \odot Q)`), ``"readout"`` (drift through a postsynaptic sum:
    :math:`\Delta t\, P \otimes (Q \odot W^\top A)`, ``readout`` is ``A``) or ``"decay"`` (drift on
    ``w`` itself: :math:`\Delta t\, W \odot (P \otimes Q)`). ``key`` is ``P`` (reads presynaptic
    traces and parameters), ``value`` is ``Q`` (postsynaptic traces and parameters); ``origin``
    names the rule field and the expanded term it came from (for messages)."""

    kind: str
    key: str
    value: str
    readout: str = ""
    origin: str = ""


@dataclass(frozen=True)
class RateReading:
    """The rate reading of ``rule`` (build it with :func:`rate_reading`; the math is in the module docstring)."""

    rule: Rule
    terms: tuple[Term, ...]
    pre_traces: tuple[Trace, ...]
    post_traces: tuple[Trace, ...]
    fixed: tuple[tuple[str, float], ...]  # parameters replaced by their values
    free: tuple[str, ...]  # parameters left as names (given at evaluation, e.g. trained)
    form: str  # "hebbian", "delta" or "recurrent"
    delta: tuple[str, str, str] | None = None  # the delta form's key A and factors c_W, c_R

    @property
    def rank(self) -> int:
        """Outer products written per step by the spike updates (the Hebbian form's sub-steps)."""
        return sum(t.kind in ("pre", "post") for t in self.terms)

    def describe(self) -> str:
        """The terms as one line each (``ΔW += ...``)."""
        lines = []
        for t in self.terms:
            if t.kind == "pre":
                lines.append(f"dW += (k * ({t.key})) ⊗ ({t.value})")
            elif t.kind == "post":
                lines.append(f"dW += ({t.key}) ⊗ (v * ({t.value}))")
            elif t.kind == "readout":
                lines.append(f"dW += dt * ({t.key}) ⊗ (({t.value}) * W^T ({t.readout}))")
            else:
                lines.append(f"dW += dt * W * ({t.key}) ⊗ ({t.value})")
        return "\n".join(lines)

    # evaluation ---------------------------------------------------------------------------------

    def _values(self, parameters: Mapping[str, object] | None, like: torch.Tensor) -> dict[str, object]:
        """Parameter symbol → value: fixed numbers, and the free ones (given, else the default)."""
        given = dict(parameters or {})
        for name in given:
            if name not in self.free:
                kept = ", ".join(self.free) or "none"
                raise NeurofwpError(
                    f"rule {self.rule.name!r}: parameter {name!r} is not free in this reading (free: {kept}); "
                    "fixed values are given to rate_reading(parameters=...)"
                )
        values: dict[str, object] = {}
        fixed = dict(self.fixed)
        for p in self.rule.parameters:
            value = given.get(p.name, fixed.get(p.name, p.default))
            if isinstance(value, torch.Tensor):
                if value.ndim == 3:  # one value per step and head: [B, T, H]
                    value = value[..., None]
                elif value.ndim != 0:
                    raise ShapeError(
                        f"parameter {p.name} must be a scalar or [B, T, H], got shape {tuple(value.shape)}"
                    )
                value = value.to(like.dtype)
            else:
                value = check_parameter_value(p, value)
            values[p.symbol] = value
        return values

    def _decay(self, trace: Trace, values: Mapping[str, object], dt_ms: float, like: torch.Tensor) -> torch.Tensor:
        tau = torch.as_tensor(values[trace.tau], dtype=like.dtype, device=like.device)
        if tau.ndim:
            raise ShapeError(f"time constant {trace.tau} of trace {trace.name} must be one value, not one per step")
        if self.rule.clock_driven:
            if bool((tau.detach() < dt_ms * (1 - 1e-12)).any()):
                raise OutOfRangeError(
                    f"rule {self.rule.name!r} is clock-driven: dt_ms = {dt_ms:g} must be at most every trace "
                    f"time constant (Euler factor 1 - dt/tau >= 0); {trace.tau} is {float(tau):g} ms"
                )
            return torch.clamp(1.0 - dt_ms / tau, min=0.0)
        return torch.exp(-dt_ms / tau)

    def traces(
        self, k: torch.Tensor, v: torch.Tensor, *, dt_ms: float, parameters: Mapping[str, object] | None = None
    ) -> dict[str, torch.Tensor]:
        r"""The traces the terms read, with the current step: :math:`\bar x_t = c\,\bar x_{t-1} + a_t`,
        ``[B, T, H, D]`` each."""
        values = self._values(parameters, k)
        read = _reads(self.terms)
        out: dict[str, torch.Tensor] = {}
        for traces, activity in ((self.pre_traces, k), (self.post_traces, v)):
            used = [t for t in traces if t.name in read]
            if used:  # the traces of one side in one pass
                decays = torch.stack([self._decay(t, values, dt_ms, activity) for t in used])
                out |= dict(zip((t.name for t in used), _filter(activity, decays), strict=True))
        return out

    def _factors(self, k, v, dt_ms, parameters):
        """Per term the key-side, value-side (and read-out) vectors of every step, ``[B, T, H, D]``."""
        values = self._values(parameters, k)
        with_step = self.traces(k, v, dt_ms=dt_ms, parameters=parameters)
        pre = {t.name for t in self.pre_traces}
        before = {n: x - (k if n in pre else v) for n, x in with_step.items()}
        held = {t.name: 0.0 for t in self.rule.traces if t.source == "modulator"}
        after_pre = {**values, **held, **before, **{n: x for n, x in with_step.items() if n in pre}}
        before_all = {**values, **held, **before}
        out = []
        for term in self.terms:
            namespace = before_all if term.kind == "pre" else after_pre
            key = _vector(term.key, namespace, k)
            value = _vector(term.value, namespace, v)
            if term.kind == "pre":
                key = k * key
            elif term.kind == "post":
                value = v * value
            readout = _vector(term.readout, namespace, k) if term.kind == "readout" else None
            out.append((term, key, value, readout))
        return out, after_pre

    def apply(
        self,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        *,
        dt_ms: float,
        parameters: Mapping[str, object] | None = None,
        mode: str = "auto",
        scale: float = 1.0,
        initial_state: torch.Tensor | None = None,
        output_final_state: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Run the reading on ``q, k [B, T, H, Dk]``, ``v [B, T, H, Dv]``: ``(o [B, T, H, Dv], final_state)``.

        ``parameters`` gives the free parameters (a number, a 0-d tensor, or ``[B, T, H]``: one value
        per step, e.g. a learning rate programmed by a slow network; time constants one value).
        ``mode``: ``"auto"`` (the reading's :attr:`form`), ``"hebbian"``/``"delta"`` (that fast
        path; an error where it does not apply) or ``"recurrent"`` (the step loop, the reference).
        """
        if mode not in MODES:
            raise NeurofwpError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
        _check(q, k, v, dt_ms)
        mode = self.form if mode == "auto" else mode
        if mode != "recurrent" and mode != self.form:
            raise NeurofwpError(f"rule {self.rule.name!r}: its reading has the {self.form} form, not {mode}")
        factors, namespace = self._factors(k, v, dt_ms, parameters)
        if scale != 1.0:
            q = q * scale
        if mode == "hebbian":
            return _hebbian(q, factors, initial_state, output_final_state)
        if mode == "delta":
            assert self.delta is not None
            return _delta(q, k, v, self.delta, namespace, dt_ms, initial_state, output_final_state)
        return _recurrent(q, factors, dt_ms, initial_state, output_final_state, v.shape[-1])

    def final_state(
        self,
        k: torch.Tensor,
        v: torch.Tensor,
        *,
        dt_ms: float,
        parameters: Mapping[str, object] | None = None,
        initial_state: torch.Tensor | None = None,
    ) -> torch.Tensor:
        r"""Only the fast weights after the last step, ``[B, H, Dk, Dv]`` (the Hebbian form as one sum,
        :math:`W_T = W_0 + \sum_{t,m} a_{t,m} \otimes b_{t,m}`)."""
        if self.form != "hebbian":
            _out, state = self.apply(
                torch.zeros_like(k), k, v, dt_ms=dt_ms, parameters=parameters,
                initial_state=initial_state, output_final_state=True,
            )  # fmt: skip
            assert state is not None
            return state
        _check(k, k, v, dt_ms)
        factors, _namespace = self._factors(k, v, dt_ms, parameters)
        keys = torch.cat([key for _term, key, _value, _readout in factors], dim=1)  # [B, T·M, H, Dk]
        values = torch.cat([value for _term, _key, value, _readout in factors], dim=1)
        state = torch.einsum("bthk,bthv->bhkv", keys, values)
        return state if initial_state is None else initial_state + state

    # rate form ------------------------------------------------------------------------------------

    def mean_drift(
        self,
        rate_pre_hz: float,
        rate_post_hz: float,
        *,
        lag_ms: float | None = None,
        probability: float = 0.0,
    ) -> float:
        r"""Stationary mean :math:`dw/dt` (1/s) for Poisson pre and post spike trains (module docstring).

        ``rate_post_hz`` is the total postsynaptic rate; with ``lag_ms`` and ``probability``, each
        presynaptic spike is followed by a postsynaptic one ``lag_ms`` later with that probability
        (part of the total rate), the pre→post correlation of Kempter et al. (1999). The fixed
        parameter values are used (every parameter must be fixed). Traces are read before their
        own spike, so for Poisson trains a trace of the firing side has the stationary mean
        :math:`r\tau` and the two sides are independent; products of two traces of one side, and
        (with a correlation) terms that read both sides, raise :class:`NeurofwpError`.
        """
        if self.free:
            raise NeurofwpError(f"mean_drift needs fixed parameters; {', '.join(self.free)} are free")
        if any(t.kind not in ("pre", "post") for t in self.terms):
            raise NeurofwpError(f"rule {self.rule.name!r}: its drift reads w, so the mean drift depends on w")
        correlated = lag_ms is not None and probability > 0
        if correlated and not (lag_ms is not None and lag_ms > 0 and probability * rate_pre_hz <= rate_post_hz):
            raise OutOfRangeError("a correlation needs lag_ms > 0 and probability * rate_pre_hz <= rate_post_hz")
        values = dict(self.fixed)
        taus = {t.name: self.rule.parameter(_time_name(self.rule, t.tau)).name for t in self.rule.traces}
        mean = {t.name: rate_pre_hz * values[taus[t.name]] / 1000.0 for t in self.pre_traces}
        mean |= {t.name: rate_post_hz * values[taus[t.name]] / 1000.0 for t in self.post_traces}
        kick = {t.name: math.exp(-(lag_ms or 0.0) / values[taus[t.name]]) for t in self.pre_traces}
        symbols = {name: sympy.Symbol(name) for name in mean}
        drift = 0.0
        for term in self.terms:
            key, value = (
                _linear_mean(self, term, term.key, mean, symbols),
                _linear_mean(self, term, term.value, mean, symbols),
            )
            rate = rate_pre_hz if term.kind == "pre" else rate_post_hz
            drift += rate * key[0] * value[0]
            if correlated:
                if not (key[1] == {} or value[1] == {}):
                    raise NeurofwpError(
                        f"{term.origin}: with a correlation only terms that read one side are predicted"
                    )
                if term.kind == "post":  # a triggered post spike sees its own pre spike, lag_ms earlier
                    drift += probability * rate_pre_hz * value[0] * sum(c * kick[n] for n, c in key[1].items())
        return drift


@functools.cache
def _reads(terms: tuple[Term, ...]) -> frozenset[str]:
    """The names the terms read."""
    return frozenset(n for t in terms for text in (t.key, t.value, t.readout) if text for n in language.names(text))


def _check(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, dt_ms: float) -> None:
    if not (q.ndim == k.ndim == v.ndim == 4) or q.shape != k.shape or k.shape[:3] != v.shape[:3]:
        raise ShapeError(
            f"q, k must be [B, T, H, Dk] and v [B, T, H, Dv] alike, got {tuple(q.shape)}, "
            f"{tuple(k.shape)}, {tuple(v.shape)}"
        )
    if not dt_ms > 0:
        raise OutOfRangeError(f"dt_ms must be > 0, got {dt_ms}")


def _time_name(rule: Rule, symbol: str) -> str:
    return next(p.name for p in rule.parameters if p.symbol == symbol)


def _linear_mean(reading, term, text, mean, symbols) -> tuple[float, dict[str, float]]:
    """Mean of a factor linear in the traces, and its coefficient per trace."""
    expr = sympy.expand(_to_sympy(text, {n: sympy.Symbol(n) for n in language.names(text)}))
    present = [symbols[n] for n in language.names(text) if n in symbols]
    try:
        poly = sympy.Poly(expr, *present) if present else None
    except sympy.PolynomialError:
        poly = None
    if present and (poly is None or poly.total_degree() > 1):
        raise NeurofwpError(
            f"rule {reading.rule.name!r}, {term.origin}: {text!r} is not linear in the traces; "
            "its Poisson mean needs moments of products of traces"
        )
    if poly is None:
        return float(expr), {}
    coefficients = {str(s): float(poly.coeff_monomial(s)) for s in present}
    constant = float(poly.coeff_monomial(1))
    return constant + sum(c * mean[n] for n, c in coefficients.items()), coefficients


# construction ------------------------------------------------------------------------------------


def rate_reading(
    rule: str | Rule,
    *,
    parameters: Mapping[str, float] | None = None,
    free: tuple[str, ...] | list[str] = (),
) -> RateReading:
    """Derive the rate reading of ``rule`` (a name, a rule file's path or a Rule).

    Parameters not in ``free`` are replaced by their value (``parameters``, else the default)
    before the updates are decomposed, so a gate that reads both sides through a parameter set
    to 0 drops out; ``free`` parameters stay names, given at :meth:`RateReading.apply`.
    Raises :class:`RuleError` (naming the rule and the term) where the reading is not an
    outer-product write.
    """
    rule = resolve_rule(rule)
    return _derive(rule, tuple(sorted(rule.resolve(parameters).items())), tuple(free))


@functools.cache
def _derive(rule: Rule, resolved: tuple[tuple[str, float], ...], free: tuple[str, ...]) -> RateReading:
    for name in free:
        rule.parameter(name)  # unknown names raise
    fixed = tuple((n, v) for n, v in resolved if n not in free)
    if not rule.changes_weight:
        raise RuleError(
            "on_pre", "the rule never changes w (short-term plasticity): it writes no fast weights", rule.name
        )
    for t in rule.traces:
        if not t.standard:
            raise RuleError(
                f"traces.{t.name}",
                "a trace with a rest or an on_spike update is not an exponentially filtered key or value",
                rule.name,
            )
        if t.reset and t.source != "modulator":
            raise RuleError(
                f"traces.{t.name}.reset",
                "a nearest-spike trace (reset to 1 at a spike) is not linear in the activity, "
                "so its reading is not a filtered key or value; use the all-to-all rule",
                rule.name,
            )
    pre = tuple(t for t in rule.traces if t.source == "pre")
    post = tuple(t for t in rule.traces if t.source == "post")
    by_symbol = {p.symbol: p for p in rule.parameters}
    symbols: dict[str, sympy.Expr] = {}
    values = dict(fixed)
    for symbol, p in by_symbol.items():
        symbols[symbol] = sympy.Symbol(symbol) if p.name in free else sympy.Float(values[p.name])
    for t in rule.traces:
        symbols[t.name] = sympy.Integer(0) if t.source == "modulator" else sympy.Symbol(t.name)
    symbols["w"] = sympy.Symbol("w")
    sums = {name: sympy.Symbol(name) for name, _e, _u in rule.summed}
    symbols |= sums
    for name, expression in rule.helpers:
        symbols[name] = _to_sympy(expression, symbols)
    sides = {"pre": {sympy.Symbol(t.name) for t in pre}, "post": {sympy.Symbol(t.name) for t in post}}
    readouts = {name: _sum_factors(rule, name, expression, symbols, sides) for name, expression, _u in rule.summed}

    terms: list[Term] = []
    for field in ("on_pre", "on_post"):
        expr = _to_sympy(getattr(rule, field), symbols)
        read = {str(s) for s in expr.free_symbols}
        if "w" in read or read & set(sums):
            raise RuleError(
                field, "reads w: a write that depends on the fast weight is not an outer-product write", rule.name
            )
        kind = "pre" if field == "on_pre" else "post"
        pieces = [(f"{field}: {m}", _split(rule, field, m, sides), None) for m in _monomials(expr)]
        terms += _group(kind, pieces)
    if rule.drift is not None:
        expr = _to_sympy(rule.drift, symbols)
        readout_pieces, decay_pieces = [], []
        for monomial in _monomials(expr):
            origin = f"drift: {monomial}"
            found = [s for s in monomial.free_symbols if s in set(sums.values()) or str(s) == "w"]
            if len(found) != 1 or sympy.degree(monomial, found[0]) != 1:
                raise RuleError(
                    "drift", f"term {monomial} is not linear in w (once, directly or through one sum)", rule.name
                )
            rest = sympy.cancel(monomial / found[0])
            if rest.has(found[0]):
                raise RuleError("drift", f"term {monomial} is not linear in w", rule.name)
            key, value = _split(rule, "drift", rest, sides)
            if str(found[0]) == "w":
                decay_pieces.append((origin, (key, value), None))
            else:
                readout, gate = readouts[str(found[0])]
                readout_pieces.append((origin, (key, value * gate), readout))
        terms += _group("readout", readout_pieces) + _group("decay", decay_pieces)
    terms = [t for t in terms if t.key != "0" and t.value != "0"]
    if not terms:
        raise RuleError("on_post", "every update is 0 with these parameters: nothing is written", rule.name)
    form, delta = _form(terms, {t.name for t in rule.traces})
    return RateReading(rule, tuple(terms), pre, post, fixed, free, form, delta)


def _monomials(expr: sympy.Expr) -> list[sympy.Expr]:
    expanded = sympy.expand(expr)
    return [] if expanded == 0 else list(sympy.Add.make_args(expanded))


def _split(rule: Rule, field: str, monomial: sympy.Expr, sides) -> tuple[sympy.Expr, sympy.Expr]:
    """A product as (key side, value side); a factor that reads both sides raises RuleError."""
    key, value = sympy.Integer(1), sympy.Integer(1)
    for factor in sympy.Mul.make_args(monomial):
        pre = factor.free_symbols & sides["pre"]
        post = factor.free_symbols & sides["post"]
        if pre and post:
            names = lambda found: ", ".join(sorted(str(s) for s in found))  # noqa: E731
            raise RuleError(
                field,
                f"term {monomial}: the factor {_Printer().doprint(factor)} reads presynaptic ({names(pre)}) and "
                f"postsynaptic ({names(post)}) traces together, so it is not a product of a key-side and a "
                "value-side factor (not an outer-product write)",
                rule.name,
            )
        if post:
            value *= factor
        else:  # presynaptic traces or parameters only: parameters join the key side
            key *= factor
    return key, value


def _sum_factors(rule: Rule, name: str, expression: str, symbols, sides) -> tuple[str, sympy.Expr]:
    r"""A postsynaptic sum :math:`\sum_i w_{ij} A(x_i) B(y_j)` as (``A`` as text, ``B``)."""
    expr = _to_sympy(expression, symbols)
    w = sympy.Symbol("w")
    rest = sympy.cancel(expr / w)
    if rest.has(w) or rest == 0:
        raise RuleError(f"summed.{name}", f"{expression!r} is not w times a factor without w", rule.name)
    keys, gates = [], set()
    for monomial in _monomials(rest):
        key, value = _split(rule, f"summed.{name}", monomial, sides)
        keys.append(key)
        gates.add(value)
    if len(gates) != 1:
        raise RuleError(f"summed.{name}", f"{expression!r}: its postsynaptic factor differs between terms", rule.name)
    return _text(sympy.Add(*keys)), gates.pop()


def _group(kind: str, pieces) -> list[Term]:
    """Sum the pieces into as few outer products as possible: grouped by key or by value, whichever is fewer."""
    if not pieces:
        return []
    by_key: dict[tuple, list] = {}
    by_value: dict[tuple, list] = {}
    for origin, (key, value), readout in pieces:
        by_key.setdefault((key, readout), []).append((origin, value))
        by_value.setdefault((value, readout), []).append((origin, key))
    terms = []
    if len(by_key) <= len(by_value):
        for (key, readout), entries in by_key.items():
            value = sympy.Add(*(e for _o, e in entries))
            terms.append(Term(kind, _text(key), _text(value), readout or "", "; ".join(o for o, _e in entries)))
    else:
        for (value, readout), entries in by_value.items():
            key = sympy.Add(*(e for _o, e in entries))
            terms.append(Term(kind, _text(key), _text(value), readout or "", "; ".join(o for o, _e in entries)))
    return terms


def _form(terms: list[Term], traces: set[str]) -> tuple[str, tuple[str, str, str] | None]:
    r"""``hebbian`` without drift; ``delta`` for :math:`c_W\,A \otimes v + \Delta t\, c_R\, A \otimes W^\top A`
    (one write fired by the value and one read-out term over the same key ``A``, parameter factors
    :math:`c_W, c_R`), returned as ``(A, c_W, c_R)``; ``recurrent`` otherwise."""
    kinds = [t.kind for t in terms]
    if "readout" not in kinds and "decay" not in kinds:
        return "hebbian", None
    if kinds.count("readout") != 1 or kinds.count("post") != 1 or len(terms) != 2:
        return "recurrent", None
    readout = next(t for t in terms if t.kind == "readout")
    write = next(t for t in terms if t.kind == "post")
    names = set(language.names(readout.readout))
    for text in (readout.key, readout.value, write.key, write.value):
        names |= set(language.names(text))
    symbols = {n: sympy.Symbol(n) for n in names}
    # the key is A without its parameter factor (x, not x / tau): then beta = eta * dt / tau for the delta rule
    scale, base = _to_sympy(readout.readout, symbols).as_independent(*(symbols[n] for n in names & traces))
    c_r = sympy.cancel(_to_sympy(readout.key, symbols) / base * _to_sympy(readout.value, symbols) * scale)
    c_w = sympy.cancel(_to_sympy(write.key, symbols) / base * _to_sympy(write.value, symbols))
    if {str(s) for s in (c_r.free_symbols | c_w.free_symbols)} & traces:
        return "recurrent", None
    return "delta", (_text(base), _text(c_w), _text(c_r))


# tensor evaluation --------------------------------------------------------------------------------


def _vector(text: str, namespace: Mapping[str, Any], like: torch.Tensor) -> torch.Tensor:
    """An expression's value broadcast to ``like``'s shape."""
    value = torch.as_tensor(evaluate(text, dict(namespace)), dtype=like.dtype, device=like.device)
    return value.expand(like.shape) if value.shape != like.shape else value


def _filter(a: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    r""":math:`\bar x_t = c_n\,\bar x_{t-1} + a_t` from :math:`\bar x_0 = 0` along dim 1 for each decay
    ``c [N]``: ``[N, B, T, H, D]``, in blocks of CHUNK steps (a lower-triangular matrix of powers per block).

    Where ``c = 0`` the powers are set, not computed, so that the gradient stays finite.
    """
    batch, steps = a.shape[:2]
    width = min(CHUNK, max(steps, 1))
    lag = torch.arange(width, device=a.device)
    lag = lag[:, None] - lag[None, :]
    positive = (c > 0)[:, None, None]
    base = torch.where(positive, c[:, None, None], torch.ones_like(c)[:, None, None])
    exponent = lag.clamp(min=0).to(a.dtype)
    matrix = torch.where(positive, base**exponent, (exponent == 0).to(a.dtype))
    matrix = torch.where(lag >= 0, matrix, torch.zeros((), dtype=a.dtype, device=a.device))  # [N, W, W]
    flat = a.reshape(batch, steps, -1)
    out, carry = [], None
    for start in range(0, steps, width):
        block = flat[:, start : start + width]
        n = block.shape[1]
        x = torch.matmul(matrix[:, None, :n, :n], block[None])  # [N, B, n, H·D]
        if carry is not None:  # what the previous blocks left, decayed by c^(1..n)
            x = x + matrix[:, None, :n, :1] * c[:, None, None, None] * carry[:, :, None]
        out.append(x)
        carry = x[:, :, -1]
    joined = torch.cat(out, dim=2) if out else flat[None].expand(len(c), -1, -1, -1)
    return joined.reshape(len(c), *a.shape)


def _hebbian(q, factors, initial_state, output_final_state):
    """Sum of outer products per step as ``M`` sub-steps of :func:`hebbian_rule`; read at each step's last."""
    keys = torch.stack([key for _t, key, _v, _r in factors], dim=2)  # [B, T, M, H, Dk]
    values = torch.stack([value for _t, _k, value, _r in factors], dim=2)
    batch, steps, rank = keys.shape[:3]
    queries = torch.zeros_like(keys)
    queries[:, :, -1] = q
    flat = lambda x: x.reshape(batch, steps * rank, *x.shape[3:])  # noqa: E731
    out, state = hebbian_rule(
        flat(queries), flat(keys), flat(values), initial_state=initial_state, output_final_state=output_final_state
    )
    return out[:, rank - 1 :: rank], state


def _delta(q, k, v, delta, namespace, dt_ms, initial_state, output_final_state):
    r"""The delta form as :func:`delta_rule`: key ``A``, :math:`\beta = -\Delta t\, c_R`, value
    :math:`c_W v / \beta`."""
    readout, c_w, c_r = delta
    key = _vector(readout, namespace, k)
    per_step = k[..., :1]
    beta = -dt_ms * _vector(c_r, namespace, per_step)
    ratio = _vector(c_w, namespace, per_step) / torch.where(beta == 0, torch.ones_like(beta), beta)
    value = v * torch.where(beta == 0, torch.zeros_like(ratio), ratio)
    return delta_rule(q, key, value, beta[..., 0], initial_state=initial_state, output_final_state=output_final_state)


def _recurrent(q, factors, dt_ms, initial_state, output_final_state, d_value):
    """The step loop: every change of step t from :math:`W_{t-1}`; ``o_t = W_t^T q_t``."""
    batch, steps, heads, d_key = q.shape
    state = q.new_zeros(batch, heads, d_key, d_value) if initial_state is None else initial_state
    outputs = []
    for t in range(steps):
        change = torch.zeros_like(state)
        for term, key, value, readout in factors:
            a, b = key[:, t], value[:, t]  # [B, H, D]
            if term.kind in ("pre", "post"):
                change = change + a[..., :, None] * b[..., None, :]
            elif term.kind == "readout":
                read = torch.einsum("bhkv,bhk->bhv", state, readout[:, t])
                change = change + dt_ms * a[..., :, None] * (b * read)[..., None, :]
            else:
                change = change + dt_ms * state * a[..., :, None] * b[..., None, :]
        state = state + change
        outputs.append(torch.einsum("bhkv,bhk->bhv", state, q[:, t]))
    out = torch.stack(outputs, dim=1) if outputs else q.new_zeros(batch, 0, heads, d_value)
    return out, (state if output_final_state else None)
