"""Figures of a comparison (PNG and SVG), chosen from the protocols' structure, not from dataset names.

Each dataset gets the figure its protocols call for (:mod:`neurofwp.analysis.structure`):
a timing window, a frequency series, or protocol by protocol. Beside them: fitted model
against data, the fit error, the model-selection criteria, fitted parameters within their
bounds (Laplace intervals; parameters at a bound marked), transfer between datasets of one
preparation, and the capacity of the tensor rules.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import seaborn as sns
import xarray as xr

from neurofwp import plotting
from neurofwp.analysis.compare import protocols_of

FAST_LABELS = {
    "hebbian": "Hebbian (sum) rule",
    "delta": "delta rule, β = 1",
    "delta-fitted-beta": "delta rule, fitted β",
}
#: The biological reference rules are drawn in near-black, the others in colour-blind-safe hues.
REFERENCE_COLOUR = "#222222"


def _save(fig, folder: Path, stem: str) -> list[Path]:
    return plotting.save(fig, folder / stem)


def file_stem(dataset: str) -> str:
    """A file-name-safe name of a dataset (a user's dataset is named by its path): ``data/mine.csv`` → ``mine``."""
    name = Path(dataset).stem if ("/" in dataset or dataset.endswith(".csv")) else dataset
    return re.sub(r"[^A-Za-z0-9_.+-]", "_", name) or "dataset"


def palette(result: xr.Dataset) -> dict[str, tuple | str]:
    """A colour per rule label, from the rules' order and family (nothing to register per rule)."""
    hues = iter(sns.color_palette("colorblind", result.sizes["rule"]))
    colours: dict[str, tuple | str] = {}
    for rule in result.rule.values:
        family, label = str(result.rule_family.sel(rule=rule).values), _label(result, rule)
        colours[label] = REFERENCE_COLOUR if family == "biological" else next(hues)
    return colours


def _label(result: xr.Dataset, rule) -> str:
    return str(result.rule_label.sel(rule=rule).values)


def _curves(result: xr.Dataset, dataset: str) -> pd.DataFrame:
    rows = result.curve_dataset == dataset
    part = result.curve.isel(curve_point=np.flatnonzero(rows.values))
    table = part.to_dataframe().reset_index()
    table["rule"] = table["rule"].map(lambda r: _label(result, r))
    return table


def dataset_figure(result: xr.Dataset, dataset: str, folder: Path) -> list[Path]:
    """The data of one dataset with every fitted rule, drawn as its structure calls for (``data_<dataset>``)."""
    kind = str(result.structure.sel(dataset=dataset).values)
    rows = protocols_of(result, dataset)
    colours = palette(result)
    title = f"{dataset}: {str(result.preparation.sel(dataset=dataset).values)}"
    if kind == "window":
        fig = plotting.figure(6.4, 4.2)
        ax = fig.subplots()
        points = pd.DataFrame({"dt": rows.protocol_timing_ms.values, "dw": rows.dw_data.values})
        sns.scatterplot(points, x="dt", y="dw", color="0.35", s=20, ax=ax, label="data", zorder=3)
        curves = _curves(result, dataset)
        sns.lineplot(curves, x="curve_timing_ms", y="curve", hue="rule", palette=colours, ax=ax)
        ax.axvline(0, color="0.7", lw=0.8)
        ax.set(xlabel="Δt = t_post − t_pre (ms)")
    elif kind == "frequency":
        timings = sorted(set(rows.protocol_timing_ms.values))
        fig = plotting.figure(4.4 * len(timings) + 0.6, 3.9)
        axes = np.atleast_1d(fig.subplots(1, len(timings), sharey=True))
        curves = _curves(result, dataset)
        for ax, timing in zip(axes, timings, strict=True):
            mine = rows.protocol_timing_ms.values == timing
            ax.errorbar(
                rows.protocol_rate_hz.values[mine],
                rows.dw_data.values[mine],
                yerr=rows.sem.values[mine],
                fmt="o",
                color="0.2",
                capsize=3,
                label="data (mean ± SEM)",
                zorder=3,
            )
            sns.lineplot(
                curves[curves.curve_timing_ms == timing],
                x="curve_rate_hz",
                y="curve",
                hue="rule",
                palette=colours,
                ax=ax,
                legend=ax is axes[0],
            )
            ax.axhline(0, color="0.7", lw=0.8)
            ax.set(xlabel="repetition rate (Hz)", ylabel="weight change (%)", title=f"Δt = {timing:+g} ms")
        ax = axes[0]
    else:
        names = list(rows.protocol_name.values)
        fig = plotting.figure(max(5.0, 0.55 * len(names) + 2.5), 4.2)
        ax = fig.subplots()
        x = np.arange(len(names))
        ax.bar(x, rows.dw_data.values, color="0.85", edgecolor="0.4", label="data")
        if np.isfinite(rows.sem.values).any():
            ax.errorbar(x, rows.dw_data.values, yerr=rows.sem.values, fmt="none", ecolor="0.3", capsize=2)
        width = 0.7 / max(result.sizes["rule"], 1)
        for i, rule in enumerate(result.rule.values):
            label = _label(result, rule)
            ax.plot(
                x - 0.35 + width * (i + 0.5),
                rows.dw_model.sel(rule=rule).values,
                "o",
                ms=4.5,
                color=colours[label],
                label=label,
            )
        ax.set_xticks(x, names, rotation=60, ha="right", fontsize=7)
        ax.set(xlabel="protocol")
    ax.axhline(0, color="0.7", lw=0.8)
    ax.set(ylabel="weight change (%)")
    ax.legend(fontsize=7, frameon=False)
    fig.suptitle(title, fontsize=9)
    sns.despine(fig)
    return _save(fig, folder, f"data_{file_stem(dataset)}")


def model_vs_data(result: xr.Dataset, folder: Path) -> list[Path]:
    """Fitted prediction against measurement, one point per protocol, one panel per dataset."""
    table = pd.DataFrame(
        {
            "data": np.tile(result.dw_data.values, result.sizes["rule"]),
            "model": result.dw_model.values.ravel(),
            "rule": np.repeat([_label(result, r) for r in result.rule.values], result.sizes["protocol"]),
            "dataset": np.tile(result.protocol_dataset.values, result.sizes["rule"]),
        }
    )
    datasets = list(result.dataset.values)
    columns = min(len(datasets), 3)
    lines = -(-len(datasets) // columns)
    fig = plotting.figure(3.6 * columns + 1.8, 3.4 * lines)
    axes = np.atleast_1d(fig.subplots(lines, columns)).ravel()
    for ax, name in zip(axes, datasets, strict=False):
        sns.scatterplot(
            table[table.dataset == name],
            x="data",
            y="model",
            hue="rule",
            palette=palette(result),
            s=22,
            ax=ax,
            legend=ax is axes[0],
        )
        low, high = min(ax.get_xlim()[0], ax.get_ylim()[0]), max(ax.get_xlim()[1], ax.get_ylim()[1])
        ax.plot([low, high], [low, high], color="0.6", lw=0.8, ls="--")
        ax.set(xlabel="measured (%)", ylabel="fitted model (%)", title=name)
    for ax in axes[len(datasets) :]:
        ax.set_visible(False)
    sns.move_legend(axes[0], "upper left", bbox_to_anchor=(0.0, -0.25), frameon=False, title=None, fontsize=7)
    fig.suptitle("model vs data, per protocol (dashed: identity)", fontsize=9)
    sns.despine(fig)
    return _save(fig, folder, "model_vs_data")


def _heatmap(
    table: pd.DataFrame,
    annotations: pd.DataFrame,
    title: str,
    label: str,
    stem: str,
    folder: Path,
    cmap: str = "viridis_r",
    centre: float | None = None,
) -> list[Path]:
    fig = plotting.figure(1.5 * table.shape[1] + 3.6, 0.45 * table.shape[0] + 1.8)
    ax = fig.subplots()
    sns.heatmap(table, annot=annotations, fmt="", cmap=cmap, center=centre, ax=ax, cbar_kws={"label": label})
    ax.set(xlabel="", ylabel="", title=title)
    ax.tick_params(axis="x", rotation=30)
    return _save(fig, folder, stem)


def error_heatmap(result: xr.Dataset, folder: Path) -> list[Path]:
    """E per rule and dataset; colour: log10 of E over the dataset's best E (E's units differ between datasets)."""
    e = result.E.to_pandas().rename(index=lambda r: _label(result, r))
    cv = result.E_cv.to_pandas().rename(index=lambda r: _label(result, r))
    notes = e.map(lambda v: f"{v:.3g}") + cv.map(lambda v: "" if not np.isfinite(v) else f"\n(CV {v:.3g})")
    return _heatmap(
        np.log10(e / e.min()),
        notes,
        "fit error E (leave-one-out E_cv); lower is better",
        "log10 E / best E of the dataset",
        "error_heatmap",
        folder,
    )


def model_selection(result: xr.Dataset, folder: Path) -> list[Path]:
    """ΔAIC and ΔBIC to the dataset's best rule: is a lower error worth its parameters?"""
    paths = []
    for criterion in ("AIC", "BIC"):
        values = result[criterion] - result[criterion].min("rule")
        table = pd.DataFrame(values.to_pandas()).rename(index=lambda r: _label(result, r))
        k = result.k.to_pandas().rename(index=lambda r: _label(result, r))
        notes = table.map(lambda v: f"{v:.1f}") + k.map(lambda v: f"\nk={int(v)}" if np.isfinite(v) else "")
        paths += _heatmap(
            table.clip(upper=50),
            notes,
            f"Δ{criterion} to the best rule of each dataset (0 = best)",
            f"Δ{criterion} (clipped at 50)",
            f"delta_{criterion.lower()}",
            folder,
            cmap="mako_r",
        )
    return paths


def parameters(result: xr.Dataset, folder: Path) -> list[Path]:
    """Free parameters as positions within their bounds, with Laplace 95 % intervals; at a bound: open triangles."""
    from neurofwp.plasticity.definition import rule_from_toml

    rules = list(result.rule.values)
    fig = plotting.figure(4.2 * len(rules), 0.9 + 0.32 * max(1, result.sizes["parameter"]))
    axes = np.atleast_1d(fig.subplots(1, len(rules), sharex=True))
    colours = dict(zip(result.dataset.values, sns.color_palette("deep", result.sizes["dataset"]), strict=True))
    for ax, rule in zip(axes, rules, strict=True):
        definition = rule_from_toml(str(result.rule_definition.sel(rule=rule).values))
        free = [p for p in result.parameter.values if p in definition.free]
        for j, name in enumerate(free):
            low, high = definition.parameter(name).bounds
            for d, dataset in enumerate(result.dataset.values):
                cell = result.sel(rule=rule, dataset=dataset, parameter=name)
                y = j + (d - (result.sizes["dataset"] - 1) / 2) * 0.12
                position = (float(cell.parameter_value) - low) / (high - low)
                ci = [(float(cell[v]) - low) / (high - low) for v in ("parameter_ci95_low", "parameter_ci95_high")]
                if np.all(np.isfinite(ci)):
                    ax.plot(np.clip(ci, 0, 1), [y, y], color=colours[dataset], lw=1.2)
                at = int(cell.parameter_at_bound) != 0
                ax.plot(
                    position,
                    y,
                    "^" if at else "o",
                    mfc="none" if at else colours[dataset],
                    ms=5,
                    color=colours[dataset],
                    label=dataset if j == 0 else "_nolegend_",
                )
        ax.set_yticks(range(len(free)), free, fontsize=7)
        ax.set(xlim=(-0.03, 1.03), title=_label(result, rule), xlabel="position within bounds")
        ax.invert_yaxis()
    axes[0].legend(fontsize=6, frameon=False, loc="lower left", bbox_to_anchor=(0, 1.08))
    fig.suptitle("fitted parameters (lines: Laplace 95 % intervals; open triangles: at a bound)", fontsize=9)
    sns.despine(fig)
    return _save(fig, folder, "parameters")


def transfer(result: xr.Dataset, folder: Path) -> list[Path]:
    """For datasets of one preparation: how much worse each rule predicts B with parameters fitted on A."""
    preparations = result.preparation.to_series()
    shared = [p for p, count in preparations.value_counts().items() if count >= 2 and p]
    if not shared:
        return []
    paths = []
    rules = list(result.rule.values)
    columns = min(len(rules), 3)
    lines = -(-len(rules) // columns)
    for index, preparation in enumerate(shared):
        names = list(preparations[preparations == preparation].index)
        ratios = {}
        for rule in rules:
            matrix = result.E_transfer.sel(rule=rule, dataset=names, predicted=names)
            ratios[rule] = (
                matrix / xr.DataArray(np.diag(matrix.values), dims="predicted", coords={"predicted": names})
            ).to_pandas()
        # One colour scale for every panel, so that colours compare across rules.
        top = min(3.0, max(float(np.nanmax(np.log10(r.values))) for r in ratios.values()))
        size = 0.75 * len(names) + 1.4
        fig = plotting.figure(size * columns + 1.0, (size + 0.4) * lines)
        axes = np.atleast_1d(fig.subplots(lines, columns)).ravel()
        for ax, rule in zip(axes, rules, strict=False):
            ratio = ratios[rule]
            sns.heatmap(
                np.log10(ratio),
                annot=ratio.map(lambda v: f"{v:.0f}x" if v >= 10 else f"{v:.1f}x"),
                fmt="",
                cmap="rocket_r",
                vmin=0,
                vmax=max(top, 0.1),
                ax=ax,
                cbar=ax is axes[columns - 1],
                cbar_kws={"label": "log10 E_AB / E_BB"},
                annot_kws={"fontsize": 7},
            )
            ax.set(title=_label(result, rule), xlabel="predicted (B)", ylabel="fitted on (A)")
            ax.tick_params(labelsize=7)
        for ax in axes[len(rules) :]:
            ax.set_visible(False)
        fig.suptitle(f"transfer within one preparation: {preparation}", fontsize=9)
        paths += _save(fig, folder, f"transfer_{index}")
    return paths


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
    """Every figure of a :func:`~neurofwp.analysis.compare.compare` result, as PNG and SVG in ``folder``;
    the paths by figure name (``data_<dataset>`` per dataset)."""
    folder = Path(folder)
    with plotting.style():
        drawn = {f"data_{name}": dataset_figure(result, str(name), folder) for name in result.dataset.values}
        drawn["model_vs_data"] = model_vs_data(result, folder)
        drawn["error_heatmap"] = error_heatmap(result, folder)
        drawn["model_selection"] = model_selection(result, folder)
        drawn["parameters"] = parameters(result, folder)
        drawn["transfer"] = transfer(result, folder)
        if "retrieval_error" in result:
            drawn["capacity"] = capacity(result, folder)
    return {key: paths for key, paths in drawn.items() if paths}
