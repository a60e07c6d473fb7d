r"""The expression language of plasticity rules, shared by both backends.

An expression is arithmetic over numbers and names:

- operators ``+ - * / **`` and unary ``-``/``+``, parentheses;
- functions ``exp``, ``log``, ``sqrt``, ``tanh``, ``abs``, ``min(a, b)``, ``max(a, b)``,
  ``clip(x, lo, hi)`` and ``step(x)`` (1 where :math:`x > 0`, else 0);
- names: the rule's parameters (without their ``_ms`` suffix), traces, ``w``, helpers and
  postsynaptic sums.

Comparisons, boolean operators, conditionals, attributes and indexing are not part of it
(``step(w - 0.5)`` is the value of ``w > 0.5``). Nothing is executed: the text is parsed
into a Python AST and every node is checked against this list.

Units are checked by dimension analysis in powers of time: a parameter ending in ``_ms`` is
a time, traces, ``w`` and other parameters are dimensionless, numbers are dimensionless.
Sums, ``min``/``max``/``clip`` and ``step``'s comparison need equal dimensions, ``exp``/
``log``/``tanh`` a dimensionless argument, and ``sqrt`` halves the dimension. The torch
backend then evaluates with times in ms, the Brian2 backend with physical units, and both
give the same numbers because every accepted expression is dimensionally consistent.
"""

from __future__ import annotations

import ast
import difflib
import functools
import keyword
from collections.abc import Mapping
from fractions import Fraction
from typing import cast

# name -> number of arguments
FUNCTIONS: dict[str, int] = {
    "exp": 1,
    "log": 1,
    "sqrt": 1,
    "tanh": 1,
    "abs": 1,
    "min": 2,
    "max": 2,
    "clip": 3,
    "step": 1,
}
_OPERATORS = (ast.Add, ast.Sub, ast.Mult, ast.Div, ast.Pow)
_UNARY = (ast.USub, ast.UAdd)
DIMENSIONLESS = Fraction(0)
TIME = Fraction(1)


class ExpressionError(ValueError):
    """An expression that the language does not accept; ``str()`` is the reason (no location)."""


def describe(dimension: Fraction) -> str:
    """A dimension in words: ``dimensionless``, ``time``, ``1/time``, ``time^2``."""
    if dimension == 0:
        return "dimensionless"
    if dimension == 1:
        return "time"
    if dimension == -1:
        return "1/time"
    return f"time^{dimension}" if dimension.denominator == 1 else f"time^({dimension})"


@functools.cache
def parse(text: str) -> ast.Expression:
    """The checked syntax tree of ``text`` (raises :class:`ExpressionError`)."""
    if not isinstance(text, str):
        raise ExpressionError(f"an expression must be text, got {type(text).__name__} {text!r}")
    if not text.strip():
        raise ExpressionError("the expression is empty (write 0 for no change)")
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as error:
        raise ExpressionError(f"cannot parse {text!r}: {error.msg} at column {error.offset}") from None
    called = {id(n.func) for n in ast.walk(tree) if isinstance(n, ast.Call)}
    for node in ast.walk(tree):
        if id(node) not in called:
            _check_node(node, text)
    return tree


def _check_node(node: ast.AST, text: str) -> None:
    if isinstance(node, ast.Compare):
        raise ExpressionError(
            f"{text!r} compares values; comparisons are not part of the rule language: "
            "write step(a - b) for the value of a > b (1 or 0)"
        )
    if isinstance(node, (ast.BoolOp, ast.IfExp)) or isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        raise ExpressionError(f"{text!r} uses and/or/not/if, which the rule language lacks: use step, min, max, clip")
    if isinstance(node, ast.Constant):
        if isinstance(node.value, bool) or not isinstance(node.value, (int, float)):
            raise ExpressionError(f"{text!r} contains {node.value!r}; only numbers are constants")
        return
    if isinstance(node, ast.BinOp):
        if not isinstance(node.op, _OPERATORS):
            raise ExpressionError(f"{text!r} uses an operator outside + - * / ** ({type(node.op).__name__})")
        return
    if isinstance(node, ast.UnaryOp):
        if not isinstance(node.op, _UNARY):
            raise ExpressionError(f"{text!r} uses the unary operator {type(node.op).__name__}")
        return
    if isinstance(node, ast.Call):
        if not isinstance(node.func, ast.Name) or node.func.id not in FUNCTIONS:
            called = node.func.id if isinstance(node.func, ast.Name) else ast.unparse(node.func)
            raise ExpressionError(f"{text!r} calls {called}(), not one of {', '.join(FUNCTIONS)}")
        if node.keywords or any(isinstance(a, ast.Starred) for a in node.args):
            raise ExpressionError(f"{text!r}: {node.func.id}() takes plain arguments")
        if len(node.args) != FUNCTIONS[node.func.id]:
            raise ExpressionError(
                f"{text!r}: {node.func.id}() takes {FUNCTIONS[node.func.id]} argument(s), got {len(node.args)}"
            )
        return
    if isinstance(node, ast.Name):
        if node.id in FUNCTIONS:
            raise ExpressionError(f"{text!r} uses the function {node.id} as a value; call it: {node.id}(...)")
        return
    if isinstance(node, (ast.Expression, ast.Load, *_OPERATORS, *_UNARY)):
        return
    raise ExpressionError(f"{text!r} uses {type(node).__name__}, which the rule language lacks")


def names(text: str) -> list[str]:
    """The names an expression reads, in order of first appearance (function names excluded)."""
    seen: dict[str, None] = {}
    for node in ast.walk(parse(text)):
        if isinstance(node, ast.Name) and node.id not in FUNCTIONS:
            seen.setdefault(node.id, None)
    return list(seen)


def unknown_name_message(name: str, known: list[str] | tuple[str, ...]) -> str:
    """``unknown name 'yy'`` with the closest known names."""
    close = difflib.get_close_matches(name, known, n=2)
    hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    if name.endswith("_ms") and name[:-3] in known:
        hint = f"; parameters appear without their _ms suffix: write {name[:-3]}"
    return f"unknown name {name!r}{hint} (known here: {', '.join(known) or 'none'})"


def dimension(text: str, dimensions: Mapping[str, Fraction]) -> Fraction:
    """The dimension (power of time) of ``text``; inconsistent units raise :class:`ExpressionError`."""
    return _dimension(parse(text).body, dimensions, text)


def _dimension(node: ast.AST, dims: Mapping[str, Fraction], text: str) -> Fraction:
    def show(n: ast.AST, d: Fraction) -> str:
        return f"{ast.unparse(n)} ({describe(d)})"

    if isinstance(node, ast.Constant):
        return DIMENSIONLESS
    if isinstance(node, ast.Name):
        return dims[node.id]
    if isinstance(node, ast.UnaryOp):
        return _dimension(node.operand, dims, text)
    if isinstance(node, ast.BinOp):
        left = _dimension(node.left, dims, text)
        if isinstance(node.op, ast.Pow):
            exponent = _dimension(node.right, dims, text)
            if exponent != 0:
                raise ExpressionError(f"in {text!r} the exponent {show(node.right, exponent)} must be dimensionless")
            if left == 0:
                return left
            number = _number(node.right)
            if number is None:
                raise ExpressionError(
                    f"in {text!r} {show(node.left, left)} is raised to {ast.unparse(node.right)}: "
                    "a quantity with units needs a number as exponent"
                )
            return left * number
        right = _dimension(node.right, dims, text)
        if isinstance(node.op, (ast.Add, ast.Sub)):
            if left != right:
                sign = "+" if isinstance(node.op, ast.Add) else "-"
                raise ExpressionError(
                    f"in {text!r} the units differ across {sign}: {show(node.left, left)} and {show(node.right, right)}"
                )
            return left
        return left + right if isinstance(node.op, ast.Mult) else left - right
    if isinstance(node, ast.Call):
        name = node.func.id  # type: ignore[attr-defined]  # checked by parse
        args = [_dimension(a, dims, text) for a in node.args]
        if name in ("exp", "log", "tanh"):
            if args[0] != 0:
                raise ExpressionError(
                    f"in {text!r} {name}() needs a dimensionless argument, got {show(node.args[0], args[0])}"
                )
            return DIMENSIONLESS
        if name == "sqrt":
            return args[0] / 2
        if name == "step":
            return DIMENSIONLESS
        if name in ("min", "max", "clip") and len(set(args)) > 1:
            shown = ", ".join(show(a, d) for a, d in zip(node.args, args, strict=True))
            raise ExpressionError(f"in {text!r} the arguments of {name}() must have the same units: {shown}")
        return args[0]
    raise ExpressionError(f"{text!r}: unexpected {type(node).__name__}")  # parse() lets nothing else through


def _number(node: ast.AST) -> Fraction | None:
    """The value of a constant (possibly signed) exponent, else None."""
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
        return Fraction(node.value).limit_denominator(1000)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        inner = _number(node.operand)
        if inner is None:
            return None
        return -inner if isinstance(node.op, ast.USub) else inner
    return None


def w_degree(text: str, degrees: Mapping[str, int | None]) -> int | None:
    """0 if ``text`` does not depend on ``w``, 1 if it is ``w`` times an expression without ``w``, else None.

    ``degrees`` gives the degree of every name other than ``w`` (a postsynaptic sum may be linear in ``w``).
    """
    return _degree(parse(text).body, {**degrees, "w": 1})


def _degree(node: ast.AST, degrees: Mapping[str, int | None]) -> int | None:
    if isinstance(node, ast.Constant):
        return 0
    if isinstance(node, ast.Name):
        return degrees.get(node.id, 0)
    if isinstance(node, ast.UnaryOp):
        return _degree(node.operand, degrees)
    if isinstance(node, ast.BinOp):
        left, right = _degree(node.left, degrees), _degree(node.right, degrees)
        if left is None or right is None:
            return None
        if isinstance(node.op, (ast.Add, ast.Sub)):
            return left if left == right else None  # w + 1 is affine, not w times something
        if isinstance(node.op, ast.Mult):
            return left + right if left + right <= 1 else None
        if isinstance(node.op, ast.Div):
            return left if right == 0 else None
        return 0 if left == right == 0 else None  # a power of w is not linear
    if isinstance(node, ast.Call):
        inner = [_degree(a, degrees) for a in node.args]
        return 0 if all(d == 0 for d in inner) else None
    return None


def vanishes_with(text: str, zero: Mapping[str, bool]) -> bool:
    """Whether ``text`` is 0 whenever the names marked True in ``zero`` are 0 (a sufficient, syntactic test).

    A drift must vanish once the traces have decayed, or the final weight of a protocol would
    depend on how long one waits after the last spike.
    """
    return _vanishes(parse(text).body, zero)


def _vanishes(node: ast.AST, zero: Mapping[str, bool]) -> bool:
    if isinstance(node, ast.Constant):
        return node.value == 0
    if isinstance(node, ast.Name):
        return zero.get(node.id, False)
    if isinstance(node, ast.UnaryOp):
        return _vanishes(node.operand, zero)
    if isinstance(node, ast.BinOp):
        if isinstance(node.op, ast.Mult):
            return _vanishes(node.left, zero) or _vanishes(node.right, zero)
        if isinstance(node.op, ast.Div):
            return _vanishes(node.left, zero)
        if isinstance(node.op, (ast.Add, ast.Sub)):
            return _vanishes(node.left, zero) and _vanishes(node.right, zero)
        exponent = _number(node.right)  # 0 ** p = 0 for p > 0
        return exponent is not None and exponent > 0 and _vanishes(node.left, zero)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
        name, args = node.func.id, node.args
        if name in ("abs", "tanh", "sqrt", "step"):  # each is 0 at 0
            return _vanishes(args[0], zero)
        if name in ("min", "max"):
            return _vanishes(args[0], zero) and _vanishes(args[1], zero)
    return False


# Brian2 ----------------------------------------------------------------------------------------


def to_brian2(text: str, dimensions: Mapping[str, Fraction]) -> str:
    """``text`` in Brian2's expression syntax: ``step``/``min``/``max`` become ``int()`` of a comparison.

    Numbers are written as floats (true division in every code generation target); a
    comparison in ``step`` is against a zero with the argument's units, which Brian2 checks.
    """
    tree = parse(text)
    return _brian2(tree.body, dimensions)


def _brian2(node: ast.AST, dims: Mapping[str, Fraction]) -> str:
    if isinstance(node, ast.Constant):
        return repr(float(cast(float, node.value)))  # parse() admits numbers only
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.UnaryOp):
        return f"({'-' if isinstance(node.op, ast.USub) else '+'}{_brian2(node.operand, dims)})"
    if isinstance(node, ast.BinOp):
        symbol = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.Pow: "**"}[type(node.op)]
        return f"({_brian2(node.left, dims)} {symbol} {_brian2(node.right, dims)})"
    assert isinstance(node, ast.Call) and isinstance(node.func, ast.Name), "parse() lets nothing else through"
    name = node.func.id
    args = [_brian2(a, dims) for a in node.args]
    if name == "step":
        zero = _zero(_dimension(node.args[0], dims, ast.unparse(node)))
        return f"int({args[0]} > {zero})"
    if name in ("min", "max"):
        a, b = args
        below = f"int({a} <= {b})" if name == "min" else f"int({a} >= {b})"
        above = f"int({a} > {b})" if name == "min" else f"int({a} < {b})"
        return f"({a} * {below} + {b} * {above})"  # exact: one term is the value times 1, the other 0
    return f"{name}({', '.join(args)})"


def _zero(dimension: Fraction) -> str:
    if dimension == 0:
        return "0.0"
    return f"(0.0 * second ** {float(dimension)!r})"


# Names -----------------------------------------------------------------------------------------

# Names Brian2 reserves in equations (special variables, constants, functions, units), and
# synapse variables it defines; a rule may use none of them, so that a rule the torch backend
# accepts runs in Brian2 too. Units are generated (prefix + base + power), as Brian2 defines them.
_BRIAN2_SPECIAL = {"t", "dt", "t_in_timesteps", "xi", "i", "j", "N", "pi", "e", "inf", "lastupdate", "delay"}
_BRIAN2_SPECIAL |= {"N_incoming", "N_outgoing", "N_pre", "N_post", "lastspike", "not_refractory"}
_BRIAN2_FUNCTIONS = {
    *"abs arccos arcsin arctan ceil clip cos cosh exp expm1 exprel floor int log log10 log1p".split(),
    *"poisson rand randn sign sin sinh sqrt tan tanh timestep".split(),
}


def _brian2_units() -> frozenset[str]:
    prefixes = "y z a f p n u m k M G T P E Z Y".split()
    bases = (
        "amp ampere becquerel candle coulomb farad gram gramme gray henry hertz joule katal lumen lux meter metre mol "
        "molar mole newton ohm pascal radian second siemens sievert steradian tesla volt watt weber"
    ).split()
    units = {p + b + s for b in bases for p in ["", *prefixes] for s in ("", "2", "3")}
    units |= {f"kelvin{s}" for s in ("", "2", "3")}
    units |= {f"{u}{s}" for u in ("kilogram", "kilogramme", "cm", "mm", "um") for s in ("", "2", "3")}
    units |= {p + litre for p in ["", *prefixes, "c", "d", "da", "h"] for litre in ("liter", "litre")}
    units |= set("Hz kHz MHz mA nA pA uA mM nM uM mV ms us nF pF uF nS uS".split())
    return frozenset(units)


BRIAN2_UNITS = _brian2_units()


def name_problem(name: object) -> str | None:
    """Why ``name`` cannot name a parameter, trace, helper or sum (None when it can)."""
    if not isinstance(name, str):
        return f"a name must be text, got {type(name).__name__} {name!r}"
    if not (name.isascii() and name.isidentifier()) or name.startswith("_"):
        return f"{name!r} is not a valid name (ASCII letters, digits and _, starting with a letter)"
    if keyword.iskeyword(name):
        return f"{name!r} is a Python keyword"
    if name == "w":
        return "'w' is the synaptic weight"
    if name in FUNCTIONS or name in _BRIAN2_FUNCTIONS:
        return f"{name!r} is a function name"
    if name in _BRIAN2_SPECIAL or name.startswith("xi_"):
        return f"{name!r} has a special meaning in Brian2 equations"
    if name in BRIAN2_UNITS:
        return f"{name!r} is the name of a Brian2 unit"
    if name.endswith(("_pre", "_post")):
        return f"{name!r} ends in _pre/_post, which Brian2 reads as a neuron's variable"
    return None


# Units of postsynaptic sums, in Brian2's spelling, as powers of time.
SUM_UNITS: dict[str, Fraction] = {
    "1": Fraction(0),
    "second": Fraction(1),
    "Hz": Fraction(-1),
    "1/second": Fraction(-1),
    "second**2": Fraction(2),
    "Hz**2": Fraction(-2),
}
