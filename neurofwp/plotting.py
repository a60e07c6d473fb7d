"""Figures without side effects on the caller: bare matplotlib Figures, seaborn style in a context, PNG + SVG.

neurofwp never selects a matplotlib backend or changes rcParams for the process that
imports it (a notebook keeps its inline backend and its style): figures are
:class:`matplotlib.figure.Figure` objects, not pyplot figures, so nothing is registered
with pyplot and nothing needs closing, and the seaborn theme is applied inside
:func:`style` only.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from matplotlib.figure import Figure

__all__ = ["FORMATS", "figure", "save", "style"]

#: Every figure is saved in these formats: PNG to look at, SVG to edit.
FORMATS = ("png", "svg")
DPI = 150


@contextlib.contextmanager
def style() -> Iterator[None]:
    """seaborn's ``ticks`` style and ``paper`` context, for the figures drawn inside the block only."""
    import seaborn as sns

    with sns.axes_style("ticks"), sns.plotting_context("paper"):
        yield


def figure(width: float, height: float) -> Figure:
    """A new Figure of ``width`` × ``height`` inches laid out tightly when drawn."""
    return Figure(figsize=(width, height), layout="tight")


def save(fig: Figure, stem: str | os.PathLike) -> list[Path]:
    """Save ``fig`` as ``stem.png`` and ``stem.svg``; return the paths."""
    stem = Path(stem)
    paths = [stem.with_name(f"{stem.name}.{extension}") for extension in FORMATS]
    for path in paths:
        fig.savefig(path, dpi=DPI, bbox_inches="tight")
    return paths
