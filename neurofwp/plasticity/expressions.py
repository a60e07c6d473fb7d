"""Evaluate a rule's expression strings on tensors (the torch backend's reading of a rule)."""

from __future__ import annotations

import ast
import functools

import torch

_ALLOWED_NODES = (
    ast.Expression,
    ast.BinOp,
    ast.UnaryOp,
    ast.Call,
    ast.Name,
    ast.Load,
    ast.Constant,
    ast.Add,
    ast.Sub,
    ast.Mult,
    ast.Div,
    ast.Pow,
    ast.USub,
    ast.UAdd,
)
FUNCTIONS = {"exp": torch.exp, "log": torch.log, "sqrt": torch.sqrt, "tanh": torch.tanh}


@functools.cache
def compile_expression(text: str):
    """Parse an arithmetic expression (names, numbers, ``+ - * / **``, ``exp``/``log``/``sqrt``/``tanh``) once."""
    tree = ast.parse(text, mode="eval")
    for node in ast.walk(tree):
        if not isinstance(node, _ALLOWED_NODES):
            raise ValueError(f"expression {text!r} uses unsupported syntax {type(node).__name__}")
        if isinstance(node, ast.Call) and not (isinstance(node.func, ast.Name) and node.func.id in FUNCTIONS):
            raise ValueError(f"expression {text!r} calls an unsupported function")
    names = sorted({n.id for n in ast.walk(tree) if isinstance(n, ast.Name)} - set(FUNCTIONS))
    return compile(tree, f"<{text}>", "eval"), names


def evaluate(text: str, namespace: dict[str, torch.Tensor | float]):
    """Value of the expression ``text`` with its names taken from ``namespace`` (a missing name raises ``KeyError``)."""
    code, names = compile_expression(text)
    missing = [n for n in names if n not in namespace]
    if missing:
        raise KeyError(f"expression {text!r} refers to undefined name(s) {missing}")
    return eval(code, {"__builtins__": {}, **FUNCTIONS}, namespace)  # noqa: S307 - checked AST, no builtins
