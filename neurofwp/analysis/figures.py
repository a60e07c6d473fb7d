"""Seaborn figures of a comparison (PNG and SVG), from long-format tables."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import seaborn as sns
import xarray as xr

from neurofwp import plotting
from neurofwp.analysis.compare import LABELS

FAST_LABELS = {
    "hebbian": "Hebbian (sum) rule",
    "delta": "delta rule, β = 1",
    "delta-fitted-beta": "delta rule, fitted β",
}


def _save(fig, folder: Path, stem: str) -> list[Path]:
    return plotting.save(fig, folder / stem)


# The biological reference in black; the artificial rules in distinct colour-blind-safe hues.
COLOURS = {
    "stdp": "#0173b2",
    "delta": "#de8f05",
    "stdp-modulated": "#029e73",
    "triplet": "#222222",
    "stdp-nearest": "#cc78bc",
    "triplet-nearest": "#949494",
}


def _palette(rules):
    return {LABELS.get(r, r): COLOURS.get(r, "#56b4e9") for r in rules}


def window(result: xr.Dataset, folder: Path) -> list[Path]:
    """STDP window: the Bi & Poo (1998) cells and each rule fitted to them (``window.png``/``.svg``)."""
    rules = list(result.rule.values)
    fig = plotting.figure(6, 4)
    ax = fig.subplots()
    points = pd.DataFrame({"dt": result["dt_ms_bipoo1998"].values, "dw": result["dw_data_bipoo1998"].values})
    sns.scatterplot(points, x="dt", y="dw", color="0.3", s=22, ax=ax, label="Bi & Poo 1998 (cells)", zorder=3)
    curves = result.window_curve.to_dataframe().reset_index()
    curves["rule"] = curves["rule"].map(LABELS)
    sns.lineplot(curves, x="dt_ms", y="window_curve", hue="rule", palette=_palette(rules), ax=ax)
    ax.axhline(0, color="0.7", lw=0.8)
    ax.axvline(0, color="0.7", lw=0.8)
    ax.set(xlabel="Δt = t_post − t_pre (ms)", ylabel="weight change (%)", title="STDP window: 60 pairings at 1 Hz")
    ax.legend(fontsize=7, frameon=False)
    sns.despine(fig)
    return _save(fig, folder, "window")


def frequency(result: xr.Dataset, folder: Path) -> list[Path]:
    """Weight change vs pairing frequency at ±10 ms: Sjöström et al. (2001) and each fitted rule."""
    rules = list(result.rule.values)
    fig = plotting.figure(9, 3.8)
    axes = fig.subplots(1, 2, sharey=True)
    names = result["protocol_names_sjostrom2001"].values
    hz = result["repeat_hz_sjostrom2001"].values
    for ax, (sign, pairing) in zip(axes, (("+", "+10 ms"), ("-", "-10 ms")), strict=True):
        rows = np.array([n.startswith(f"pair{sign}") for n in names])
        ax.errorbar(
            hz[rows],
            result["dw_data_sjostrom2001"].values[rows],
            yerr=result["sem_sjostrom2001"].values[rows],
            fmt="o",
            color="0.2",
            capsize=3,
            label="Sjöström 2001 (mean ± SEM)",
            zorder=3,
        )
        curves = result.frequency_curve.sel(pairing=pairing).to_dataframe().reset_index()
        curves["rule"] = curves["rule"].map(LABELS)
        sns.lineplot(
            curves,
            x="frequency_hz",
            y="frequency_curve",
            hue="rule",
            palette=_palette(rules),
            ax=ax,
            legend=ax is axes[0],
        )
        ax.axhline(0, color="0.7", lw=0.8)
        ax.set(xlabel="pairing frequency (Hz)", ylabel="weight change (%)", title=f"pairing at Δt = {pairing}")
    axes[0].legend(fontsize=7, frameon=False)
    sns.despine(fig)
    return _save(fig, folder, "frequency")


def model_vs_data(result: xr.Dataset, folder: Path) -> list[Path]:
    """Fitted prediction against measurement, one point per protocol, one panel per dataset."""
    frames = []
    for name in result.dataset.values:
        data = result[f"dw_data_{name}"].values
        for rule in result.rule.values:
            model = result[f"dw_model_{name}"].sel(rule=rule).values
            frames.append(pd.DataFrame({"data": data, "model": model, "rule": LABELS[rule], "dataset": name}))
    table = pd.concat(frames)
    datasets = list(result.dataset.values)
    fig = plotting.figure(3.8 * len(datasets) + 1.6, 3.8)
    axes = np.atleast_1d(fig.subplots(1, len(datasets)))
    for ax, name in zip(axes, datasets, strict=True):
        rows = table[table["dataset"] == name]
        sns.scatterplot(rows, x="data", y="model", hue="rule", palette=_palette(list(result.rule.values)), s=25,
                        ax=ax, legend=ax is axes[-1])  # fmt: skip
        low, high = min(ax.get_xlim()[0], ax.get_ylim()[0]), max(ax.get_xlim()[1], ax.get_ylim()[1])
        ax.plot([low, high], [low, high], color="0.6", lw=0.8, ls="--")
        ax.set(xlabel="measured weight change (%)", ylabel="fitted model (%)", title=f"dataset = {name}")
    sns.move_legend(axes[-1], "upper left", bbox_to_anchor=(1.0, 0.9), frameon=False, title=None)
    fig.suptitle("model vs data, per protocol")
    sns.despine(fig)
    return _save(fig, folder, "model_vs_data")


def error_heatmap(result: xr.Dataset, folder: Path) -> list[Path]:
    """Fit error E per rule and dataset (colour on a log scale, values annotated)."""
    table = result.E.to_pandas().rename(index=LABELS)
    fig = plotting.figure(6, 3.2)
    ax = fig.subplots()
    sns.heatmap(
        np.log10(table),
        annot=table.map(lambda e: f"{e:.3g}"),
        fmt="",
        cmap="viridis_r",
        ax=ax,
        cbar_kws={"label": "log10 E"},
    )
    ax.set(xlabel="dataset", ylabel="", title="fit error E (lower is better)")
    return _save(fig, folder, "error_heatmap")


def capacity(result: xr.Dataset, folder: Path) -> list[Path]:
    """Retrieval error of the tensor rules vs the number of stored pairs S (``retrieval_error``)."""
    table = result.retrieval_error.to_dataframe().reset_index()
    table["fast_rule"] = table["fast_rule"].map(FAST_LABELS)
    fig = plotting.figure(5.5, 3.8)
    ax = fig.subplots()
    sns.lineplot(table, x="n_pairs", y="retrieval_error", hue="fast_rule", marker="o", ax=ax)
    ax.axvline(64, color="0.6", lw=0.8, ls="--")
    ax.text(66, ax.get_ylim()[1] * 0.95, "S = Dk", fontsize=8, va="top", color="0.4")
    ax.set(
        xlabel="stored associations S",
        ylabel="relative retrieval error",
        title="fast weights: interference vs capacity (Dk = 64)",
    )
    ax.legend(title=None, fontsize=8, frameon=False)
    sns.despine(fig)
    return _save(fig, folder, "capacity")


def all_figures(result: xr.Dataset, folder: Path) -> dict[str, list[Path]]:
    """Every figure of a :func:`~neurofwp.analysis.compare.compare` result (all rules and both datasets),
    as PNG and SVG in ``folder``; the paths by figure name."""
    with plotting.style():
        return {
            "window": window(result, folder),
            "frequency": frequency(result, folder),
            "model_vs_data": model_vs_data(result, folder),
            "error_heatmap": error_heatmap(result, folder),
            "capacity": capacity(result, folder),
        }
