"""Loss vs number of unique keys S per model, in the style of Schlag et al. (2021), Fig. 2–3."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import seaborn as sns
import xarray as xr
from matplotlib.figure import Figure

from neurofwp import plotting
from neurofwp.retrieval.model import parse_model

__all__ = ["draw", "figure", "label"]


def label(model: str, d_key: int = 64) -> str:
    """``dpfp2-sum`` → ``DPFP ν=2, sum (d_dot=256)``; ``dpfp2-triplet`` → ``DPFP ν=2, triplet @100 ms (d_dot=256)``."""
    spec = parse_model(model)
    if spec.update == "softmax":
        return "softmax attention"
    kind = {"linear": "linear (ELU+1)", "dpfp": f"DPFP ν={spec.order}", "favor": f"FAVOR+ m={spec.order}"}
    if spec.update == "rule":
        rule = f"{spec.rule}{', trained' if spec.trained else ''} @{spec.dt_ms:g} ms"
    else:
        rule = {"sum": "sum", "delta": "delta, learned β"}[spec.update]
    return f"{kind[spec.feature_map]}, {rule} (d_dot={spec.d_dot(d_key)})"


def draw(result: xr.Dataset, reference: pd.DataFrame | None = None) -> Figure:
    """``best_eval_loss`` vs S, one line per model; ``reference`` (columns ``model``, ``S``,
    ``best_eval_loss``), when given, dashed with open markers in the same colours: the paper's own runs.

    Built on a bare :class:`~matplotlib.figure.Figure`, so the caller's pyplot backend is left alone.
    """
    d_key = int(result.attrs.get("config_d_key", 64))
    table = result.best_eval_loss.to_dataframe().reset_index()
    table["model"] = table["model"].map(lambda m: label(m, d_key))
    order = [label(m, d_key) for m in result.model.values]
    palette = dict(zip(order, sns.color_palette("colorblind", len(order)), strict=True))
    fig = plotting.figure(6.5, 4.2)
    ax = fig.add_subplot()
    if reference is not None and len(reference):
        for model in result.model.values:
            rows = reference[reference["model"] == model].sort_values("S")
            if len(rows):
                colour = palette[label(model, d_key)]
                # A marker on every point: a reference with one point would be an invisible dashed line.
                ax.plot(rows["S"], rows["best_eval_loss"], "--", marker="D", mfc="none", color=colour, alpha=0.6,
                        label="_nolegend_", gid=f"reference:{model}")  # fmt: skip
        ax.plot([], [], "--", marker="D", mfc="none", color="0.4", label="Schlag et al. 2021 (their logs)")
    sns.lineplot(table, x="S", y="best_eval_loss", hue="model", hue_order=order, palette=palette, marker="o", ax=ax)
    ax.axhline(float(result.attrs.get("config_stop_loss", 1e-3)), color="0.7", lw=0.8, zorder=0)
    setting = int(result.attrs.get("setting", 1))
    ax.set(
        xlabel="number of unique keys S",
        ylabel="best evaluation loss",
        title=f"Setting {setting}: " + ("capacity (sequence length S)" if setting == 1 else "updates (length 2S)"),
        ylim=(-0.01, None),
    )
    ax.legend(fontsize=7, frameon=False)
    return fig


def figure(result: xr.Dataset, stem: str | Path, reference: pd.DataFrame | None = None) -> list[Path]:
    """Draw :func:`draw`'s figure and save it as ``stem.png`` and ``stem.svg``."""
    return plotting.save(draw(result, reference), stem)
