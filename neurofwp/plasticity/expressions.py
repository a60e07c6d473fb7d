"""Evaluate a rule's expression strings on tensors (the torch backend's reading of the rule language).

The language and its checks are in :mod:`neurofwp.plasticity.language`; here every function
gets its torch meaning: ``step(x)`` is 1 where ``x > 0`` else 0 (gradient 0), ``min``/``max``
are element-wise, ``clip(x, lo, hi) = min(max(x, lo), hi)``.
"""

from __future__ import annotations

import functools

import torch

from neurofwp.plasticity import language


def _tensors(*values):
    """The arguments as tensors of one dtype and device (numbers take those of a tensor argument)."""
    like = next((v for v in values if isinstance(v, torch.Tensor)), None)
    dtype = like.dtype if like is not None else torch.float64
    device = like.device if like is not None else None
    return [v if isinstance(v, torch.Tensor) else torch.as_tensor(v, dtype=dtype, device=device) for v in values]


def _unary(function):
    return lambda x: function(*_tensors(x))


def _step(x):
    (x,) = _tensors(x)
    return (x > 0).to(x.dtype)


def _clip(x, low, high):
    x, low, high = _tensors(x, low, high)
    return torch.minimum(torch.maximum(x, low), high)


FUNCTIONS = {
    "exp": _unary(torch.exp),
    "log": _unary(torch.log),
    "sqrt": _unary(torch.sqrt),
    "tanh": _unary(torch.tanh),
    "abs": _unary(torch.abs),
    "min": lambda a, b: torch.minimum(*_tensors(a, b)),
    "max": lambda a, b: torch.maximum(*_tensors(a, b)),
    "clip": _clip,
    "step": _step,
}
assert set(FUNCTIONS) == set(language.FUNCTIONS), "every function of the language has a torch meaning"


@functools.cache
def compile_expression(text: str):
    """Parse and check an expression of the rule language once; its code object and the names it reads."""
    tree = language.parse(text)  # raises ExpressionError for anything outside the language
    return compile(tree, f"<{text}>", "eval"), language.names(text)


def evaluate(text: str, namespace: dict[str, torch.Tensor | float]):
    """Value of the expression ``text`` with its names taken from ``namespace`` (a missing name raises ``KeyError``)."""
    code, names = compile_expression(text)
    missing = [n for n in names if n not in namespace]
    if missing:
        raise KeyError(f"expression {text!r} refers to undefined name(s) {missing}")
    return eval(code, {"__builtins__": {}, **FUNCTIONS}, namespace)  # noqa: S307 - checked AST, no builtins
