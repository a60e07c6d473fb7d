"""Figures of a rule inference (:func:`neurofwp.recordings.plastic.infer_rules`): the inferred weight
trajectories and the model comparison, with the held-out blocks shaded."""

from __future__ import annotations

import numpy as np
import xarray as xr

from neurofwp.recordings.plastic import STATIC

FIGURE_INPUTS = 8  # the trajectories of at most this many inputs are drawn


def figures(result: xr.Dataset, folder) -> list:
    """``inference_weights`` (each plastic model's w_i(t) for the first inputs) and ``inference_models``
    (held-out bits per spike per model, the likelihood-ratio p-value above each plastic one), PNG and SVG."""
    from pathlib import Path

    import seaborn as sns

    from neurofwp import plotting

    folder = Path(folder)
    plastic_models = [m for m in result.model.values if m != STATIC]
    inputs = list(result.input.values[:FIGURE_INPUTS])
    paths = []
    with plotting.style():
        fig = plotting.figure(3.4 * len(plastic_models), 2.8)
        axes = np.atleast_1d(fig.subplots(1, len(plastic_models), sharey=True, squeeze=False)[0])
        for ax, model in zip(axes, plastic_models, strict=True):
            table = result.weight.sel(model=model, input=inputs).to_dataframe().reset_index()
            sns.lineplot(table, x="time", y="weight", hue="input", ax=ax, lw=0.9, legend=ax is axes[-1])
            static = result.w0.sel(model=STATIC, input=inputs).values
            ax.scatter(np.zeros(len(static)), static, marker=">", color="0.3", s=12, zorder=3, label="static w0")
            shade_held_out(ax, result)
            ax.set(xlabel="time (s)", ylabel="coupling weight w_i(t)", title=f"{model} (grey: held out)")
        sns.despine(fig)
        paths += plotting.save(fig, folder / "inference_weights")

        fig = plotting.figure(1.2 + 0.9 * len(result.model), 3.0)
        ax = fig.subplots()
        table = result.bits_per_spike.to_dataframe().reset_index()
        sns.barplot(table, x="model", y="bits_per_spike", hue="model", ax=ax, legend=False)
        for index, model in enumerate(result.model.values):
            if model != STATIC:
                p = float(result.lr_p_value.sel(model=model))
                ax.annotate(f"p = {p:.2g}", (index, float(result.bits_per_spike.sel(model=model))),
                            ha="center", va="bottom", fontsize=7)  # fmt: skip
        ax.axhline(float(result.bits_per_spike.sel(model=STATIC)), color="0.4", lw=0.7, ls=":")
        ax.set(xlabel="", ylabel="held-out bits / spike", title="plastic vs static couplings")
        sns.despine(fig)
        paths += plotting.save(fig, folder / "inference_models")
    return paths


def shade_held_out(ax, result: xr.Dataset) -> None:
    """Grey spans over the held-out blocks of an inference (``held_out_intervals_s``)."""
    intervals = np.reshape(np.atleast_1d(result.attrs.get("held_out_intervals_s", [])), (-1, 2))
    if not len(intervals):  # results written before held-out blocks: the end from test_start_s
        intervals = np.array([[result.attrs["test_start_s"], result.attrs["duration_s"]]])
    for start, end in intervals:
        ax.axvspan(start, end, color="0.9", lw=0, zorder=0)
