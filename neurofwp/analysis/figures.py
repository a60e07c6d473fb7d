"""Figures of a comparison (PNG and SVG), chosen from the protocols' structure, not from dataset names.

Each dataset gets the figure its protocols call for (:mod:`neurofwp.analysis.structure`):
a timing window, a frequency series, protocol by protocol, or train by train (short-term
plasticity: response against spike number). Beside them: fitted model against data, the
fit error, the model-selection criteria, fitted parameters within their bounds (Laplace
intervals; parameters at a bound marked), transfer between datasets of one preparation,
and the capacity of the tensor rules. A rule is drawn only where it was fitted (``fitted``):
cells it was not fitted to stay blank.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import seaborn as sns
import xarray as xr
from matplotlib.lines import Line2D

from neurofwp import plotting
from neurofwp.analysis.compare import observations_of, protocols_of

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


def fitted(result: xr.Dataset) -> xr.DataArray:
    """Which rule × dataset cells were fitted (``fitted``; from a file without it: where E is finite)."""
    return result.fitted.astype(bool) if "fitted" in result else np.isfinite(result.E)


def fitted_rules(result: xr.Dataset, dataset: str) -> list:
    """The rules fitted to ``dataset``, in the result's order."""
    mask = fitted(result).sel(dataset=dataset).values
    return [rule for rule, keep in zip(result.rule.values, mask, strict=True) if keep]


def _legend_handles(labels_colours, marker: str = "o", line: bool = False) -> list[Line2D]:
    return [
        Line2D([], [], color=colour, marker=marker, ls="-" if line else "none", ms=5, label=label)
        for label, colour in labels_colours
    ]


def _curves(result: xr.Dataset, dataset: str) -> pd.DataFrame:
    rows = result.curve_dataset == dataset
    part = result.curve.isel(curve_point=np.flatnonzero(rows.values)).sel(rule=fitted_rules(result, dataset))
    table = part.to_dataframe().reset_index()
    table["rule"] = table["rule"].map(lambda r: _label(result, r))
    return table


def _curve_bands(ax, result: xr.Dataset, dataset: str, x: str, colours, timing: float | None = None) -> None:
    """The posterior predictive of each rule's curve, where the result has one: its central 90 % as a band,
    its median dashed."""
    if "curve_posterior" not in result:
        return
    rows = result.curve_dataset.values == dataset
    if timing is not None:
        rows &= result.curve_timing_ms.values == timing
    for rule in fitted_rules(result, dataset):
        band = result.curve_posterior.sel(rule=rule).values[rows]
        if np.isfinite(band).any():
            where = result[x].values[rows]
            colour = colours[_label(result, rule)]
            ax.fill_between(where, band[:, 0], band[:, -1], color=colour, alpha=0.2, lw=0)
            ax.plot(where, band[:, 1], color=colour, lw=0.9, ls="--")  # the posterior predictive median


def dataset_figure(result: xr.Dataset, dataset: str, folder: Path) -> list[Path]:
    """The data of one dataset with every fitted rule, drawn as its structure calls for (``data_<dataset>``)."""
    kind = str(result.structure.sel(dataset=dataset).values)
    if kind == "trains":
        return _train_figure(result, dataset, folder)
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
        _curve_bands(ax, result, dataset, "curve_timing_ms", colours)
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
            _curve_bands(ax, result, dataset, "curve_rate_hz", colours, timing)
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
        rules = fitted_rules(result, dataset)
        width = 0.7 / max(len(rules), 1)
        for i, rule in enumerate(rules):
            label = _label(result, rule)
            ax.plot(
                x - 0.35 + width * (i + 0.5),
                rows.dw_model.sel(rule=rule).values,
                "o",
                ms=4.5,
                color=colours[label],
                label=label,
            )
            if "dw_posterior" in rows:
                band = rows.dw_posterior.sel(rule=rule)
                ax.vlines(
                    x - 0.35 + width * (i + 0.5),
                    band.sel(quantile=0.05).values,
                    band.sel(quantile=0.95).values,
                    color=colours[label],
                    lw=1.0,
                )
                ax.plot(x - 0.35 + width * (i + 0.5), band.sel(quantile=0.5).values, "_", ms=7, color=colours[label])
        ax.set_xticks(x, names, rotation=60, ha="right", fontsize=7)
        ax.set(xlabel="protocol")
    ax.axhline(0, color="0.7", lw=0.8)
    ax.set(ylabel="weight change (%)")
    ax.legend(fontsize=7, frameon=False)
    fig.suptitle(title, fontsize=9)
    sns.despine(fig)
    return _save(fig, folder, f"data_{file_stem(dataset)}")


def _train_figure(result: xr.Dataset, dataset: str, folder: Path) -> list[Path]:
    """Train responses: one panel per train, measured response (markers) and each fitted rule (lines)
    against the presynaptic spike number; normalised trains start at 1 by definition."""
    rows = observations_of(result, dataset)
    colours = palette(result)
    rules = fitted_rules(result, dataset)
    normalised = bool(int(result.normalised.sel(dataset=dataset))) if "normalised" in result else False
    trains = list(dict.fromkeys(str(t) for t in rows.observation_protocol.values))
    columns = min(len(trains), 3)
    lines = -(-len(trains) // columns)
    fig = plotting.figure(3.8 * columns + 0.6, 3.2 * lines + 0.9)
    axes = np.atleast_1d(fig.subplots(lines, columns, sharey=True, squeeze=False)).ravel()
    units = str(rows.amplitude_data.attrs.get("units", ""))
    for ax, train in zip(axes, trains, strict=False):
        mine = rows.observation_protocol.values == train
        spikes = rows.observation_spike.values[mine]
        data = rows.amplitude_data.values[mine]
        if normalised:  # the first response is 1 by normalisation (not an observation)
            spikes, data = np.concatenate([[1], spikes]), np.concatenate([[1.0], data])
        sem = rows.amplitude_sem.values[mine] if "amplitude_sem" in rows else None
        if sem is not None and np.isfinite(sem).any():
            ax.errorbar(spikes[-len(sem) :], data[-len(sem) :], yerr=sem, fmt="none", ecolor="0.3", capsize=2)
        ax.plot(spikes, data, "o", color="0.2", ms=5, zorder=3)
        for rule in rules:
            model = rows.amplitude_model.sel(rule=rule).values[mine]
            if normalised:
                model = np.concatenate([[1.0], model])
            ax.plot(spikes, model, "-", color=colours[_label(result, rule)], lw=1.4)
            if "amplitude_posterior" in rows:
                band = rows.amplitude_posterior.sel(rule=rule).values[mine]  # [responses, quantile]
                if np.isfinite(band).any():
                    shown = spikes[-len(band) :]
                    ax.fill_between(
                        shown, band[:, 0], band[:, -1], color=colours[_label(result, rule)], alpha=0.2, lw=0
                    )
                    ax.plot(shown, band[:, 1], color=colours[_label(result, rule)], lw=0.9, ls="--")
        ax.set(xlabel="presynaptic spike", title=train)
        ax.set_xticks(spikes)
        ax.tick_params(axis="x", labelsize=7)
    for ax in axes[len(trains) :]:
        ax.set_visible(False)
    label = "response (normalised to the first)" if normalised else f"response ({units})"
    for ax in axes[::columns]:
        ax.set(ylabel=label)
    handles = _legend_handles([("data", "0.2")]) + _legend_handles(
        [(_label(result, r), colours[_label(result, r)]) for r in rules], marker="", line=True
    )
    # below the panels: the saved figure's tight bounding box takes it in
    fig.legend(
        handles=handles,
        fontsize=7,
        frameon=False,
        loc="upper center",
        bbox_to_anchor=(0.5, 0.0),
        ncols=min(len(handles), 4),
    )
    fig.suptitle(f"{dataset}: {str(result.preparation.sel(dataset=dataset).values)}", fontsize=9)
    sns.despine(fig)
    return _save(fig, folder, f"data_{file_stem(dataset)}")


def model_vs_data(result: xr.Dataset, folder: Path) -> list[Path]:
    """Fitted prediction against measurement, one panel per dataset: one point per protocol (weight
    changes) or per measured response (train responses); only the rules fitted to the dataset."""
    colours = palette(result)
    datasets = list(result.dataset.values)
    columns = min(len(datasets), 3)
    lines = -(-len(datasets) // columns)
    fig = plotting.figure(3.6 * columns + 1.8, 3.4 * lines + 0.6)
    axes = np.atleast_1d(fig.subplots(lines, columns)).ravel()
    shown: dict[str, tuple | str] = {}
    for ax, name in zip(axes, datasets, strict=False):
        trains = str(result.structure.sel(dataset=name).values) == "trains"
        rows = observations_of(result, name) if trains else protocols_of(result, name)
        data = rows.amplitude_data if trains else rows.dw_data
        model = rows.amplitude_model if trains else rows.dw_model
        for rule in fitted_rules(result, name):
            label = _label(result, rule)
            shown[label] = colours[label]
            ax.plot(data.values, model.sel(rule=rule).values, "o", ms=4, color=colours[label], alpha=0.85)
        low, high = min(ax.get_xlim()[0], ax.get_ylim()[0]), max(ax.get_xlim()[1], ax.get_ylim()[1])
        ax.plot([low, high], [low, high], color="0.6", lw=0.8, ls="--")
        if trains:
            units = str(data.attrs.get("units", ""))
            unit = "normalised" if units == "1" else units
            ax.set(xlabel=f"measured response ({unit})", ylabel=f"fitted model ({unit})", title=name)
        else:
            ax.set(xlabel="measured (%)", ylabel="fitted model (%)", title=name)
    for ax in axes[len(datasets) :]:
        ax.set_visible(False)
    fig.legend(
        handles=_legend_handles(list(shown.items())),
        fontsize=7,
        frameon=False,
        loc="upper center",
        bbox_to_anchor=(0.5, 0.0),
        ncols=min(max(len(shown), 1), 4),
    )
    fig.suptitle("model vs data, per protocol or measured response (dashed: identity)", fontsize=9)
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
    notes = e.map(lambda v: f"{v:.3g}" if np.isfinite(v) else "") + cv.map(
        lambda v: "" if not np.isfinite(v) else f"\n(CV {v:.3g})"
    )
    return _heatmap(
        np.log10(e / e.min()),
        notes,
        "fit error E (leave-one-out E_cv); lower is better; blank: not fitted",
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
        notes = table.map(lambda v: f"{v:.1f}" if np.isfinite(v) else "") + k.map(
            lambda v: f"\nk={int(v)}" if np.isfinite(v) else ""
        )
        paths += _heatmap(
            table.clip(upper=50),
            notes,
            f"Δ{criterion} to the best rule of each dataset (0 = best; blank: not fitted)",
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
    done = fitted(result)
    for ax, rule in zip(axes, rules, strict=True):
        definition = rule_from_toml(str(result.rule_definition.sel(rule=rule).values))
        free = [p for p in result.parameter.values if p in definition.free]
        for j, name in enumerate(free):
            low, high = definition.parameter(name).bounds
            for d, dataset in enumerate(result.dataset.values):
                if not bool(done.sel(rule=rule, dataset=dataset)):
                    continue
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
                )
        ax.set_yticks(range(len(free)), free, fontsize=7)
        ax.set(xlim=(-0.03, 1.03), title=_label(result, rule), xlabel="position within bounds")
        ax.invert_yaxis()
    axes[0].legend(
        handles=_legend_handles([(str(d), colours[d]) for d in result.dataset.values]),
        fontsize=6,
        frameon=False,
        loc="lower left",
        bbox_to_anchor=(0, 1.08),
    )
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
    for index, preparation in enumerate(shared):
        names = list(preparations[preparations == preparation].index)
        ratios = {}
        for rule in result.rule.values:
            matrix = result.E_transfer.sel(rule=rule, dataset=names, predicted=names)
            ratio = (
                matrix / xr.DataArray(np.diag(matrix.values), dims="predicted", coords={"predicted": names})
            ).to_pandas()
            off = ratio.values[~np.eye(len(names), dtype=bool)]
            if np.isfinite(off).any():  # a rule fitted to at least two datasets of one kind here
                ratios[rule] = ratio
        if not ratios:
            continue
        rules = list(ratios)
        columns = min(len(rules), 3)
        lines = -(-len(rules) // columns)
        # One colour scale for every panel, so that colours compare across rules.
        top = min(3.0, max(float(np.nanmax(np.log10(r.values))) for r in ratios.values()))
        size = 0.75 * len(names) + 1.4
        fig = plotting.figure(size * columns + 1.0, (size + 0.4) * lines)
        axes = np.atleast_1d(fig.subplots(lines, columns)).ravel()
        for ax, rule in zip(axes, rules, strict=False):
            ratio = ratios[rule]
            sns.heatmap(
                np.log10(ratio),
                annot=ratio.map(lambda v: "" if not np.isfinite(v) else f"{v:.0f}x" if v >= 10 else f"{v:.1f}x"),
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
        if bool(fitted(result).any()):  # a subset of a comparison may hold no fitted cell
            drawn["model_vs_data"] = model_vs_data(result, folder)
            drawn["error_heatmap"] = error_heatmap(result, folder)
            drawn["model_selection"] = model_selection(result, folder)
            drawn["parameters"] = parameters(result, folder)
            drawn["transfer"] = transfer(result, folder)
        if "retrieval_error" in result:
            drawn["capacity"] = capacity(result, folder)
        if "capacity" in result and bool(fitted(result).any()):
            drawn["rule_map"] = rule_map(result, folder)
        if "posterior_sample" in result:
            from neurofwp.analysis.posterior import pair_figure

            for rule, dataset in zip(
                *np.nonzero(np.isfinite(result.posterior_sample).any(("parameter", "sample")).values), strict=True
            ):
                rule, dataset = str(result.rule.values[rule]), str(result.dataset.values[dataset])
                stem = f"posterior_{file_stem(rule)}_{file_stem(dataset)}"
                drawn[stem] = pair_figure(result, rule, dataset, folder / stem)
    return {key: paths for key, paths in drawn.items() if paths}


def mean_delta_aic(result: xr.Dataset) -> xr.DataArray:
    """Each rule's ΔAIC to the best rule, averaged over the weight-change datasets it was fitted to."""
    weights = [d for d in result.dataset.values if str(result.structure.sel(dataset=d).values) != "trains"]
    delta = (result.AIC - result.AIC.min("rule")).sel(dataset=weights)
    return delta.where(fitted(result).sel(dataset=weights)).mean("dataset")


def rule_map(result: xr.Dataset, folder: Path) -> list[Path]:
    """One map of all rules: how well each explains the plasticity data (mean ΔAIC over the weight-change
    datasets; E on each) against how much it stores as a fast-weight write rule (``capacity``)."""
    capacity = result.capacity
    rules = [r for r in result.rule.values if np.isfinite(float(capacity.sel(rule=r)))]
    weights = [d for d in result.dataset.values if str(result.structure.sel(dataset=d).values) != "trains"]
    if not rules or not weights:
        return []
    colours = palette(result)
    panels = 1 + len(weights)
    columns = min(panels, 4)
    lines = -(-panels // columns)
    fig = plotting.figure(3.3 * columns + 0.4, 3.0 * lines + 0.8)
    axes = np.atleast_1d(fig.subplots(lines, columns, squeeze=False)).ravel()
    delta = mean_delta_aic(result)
    for ax, (what, values, ylabel) in zip(
        axes,
        [("all weight-change data", delta, "mean ΔAIC (0 = best)")]
        + [(file_stem(str(d)), result.E.sel(dataset=d), "fit error E") for d in weights],
        strict=False,
    ):
        for rule in rules:
            y = float(values.sel(rule=rule))
            if not np.isfinite(y):
                continue
            label = _label(result, rule)
            ax.plot(float(capacity.sel(rule=rule)), y, "o", ms=6, color=colours[label], label=label)
        ax.set_xscale("symlog", linthresh=1)
        if what != "all weight-change data":
            ax.set_yscale("log")
        ax.set(xlabel="capacity (pairs stored)", ylabel=ylabel, title=what)
        ax.title.set_fontsize(8)
    for ax in axes[panels:]:
        ax.set_visible(False)
    handles = _legend_handles([(_label(result, r), colours[_label(result, r)]) for r in rules])
    fig.legend(handles=handles, fontsize=7, frameon=False, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncols=3)
    fig.suptitle(
        f"explaining the biology vs storing as fast weights (capacity: error ≤ {capacity.attrs['threshold']:g}, "
        f"{capacity.attrs['feature_map']} keys, Dk = {capacity.attrs['d_key']})",
        fontsize=9,
    )
    sns.despine(fig)
    return _save(fig, folder, "rule_map")
