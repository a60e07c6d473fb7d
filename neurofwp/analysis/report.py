r"""The comparison report: a self-contained HTML page (figures embedded) and a Markdown twin.

Every sentence is generated from the results: which rule fits each dataset best, whether
its lower error is worth its parameters (ΔAIC, ΔBIC, leave-one-out error), which fitted
parameters ended at a bound, how far fits transfer between datasets of one preparation.
No sentence names a rule or a dataset unless the results put it there. Cells that were not
fitted (a rule that cannot explain the data, ``fitted`` False) are left out of every
sentence and table.
"""

from __future__ import annotations

import base64
import html
from pathlib import Path

import numpy as np
import xarray as xr

from neurofwp.analysis.figures import FAST_LABELS, fitted

#: ΔAIC above which the rule with the lower AIC is clearly preferred (Burnham & Anderson 2002: > 10 "essentially none").
CLEAR_DELTA = 10.0
#: ΔAIC below which two rules are not distinguished (Burnham & Anderson 2002: ≤ 2 "substantial support").
TIE_DELTA = 2.0


def _label(result: xr.Dataset, rule) -> str:
    return str(result.rule_label.sel(rule=rule).values)


def _is_trains(result: xr.Dataset, dataset) -> bool:
    return str(result.structure.sel(dataset=dataset).values) == "trains"


def _size(result: xr.Dataset, dataset) -> str:
    """What a dataset holds: ``3 trains, 30 measured responses`` or ``10 protocols``."""
    count = int(result.n_protocols.sel(dataset=dataset))
    if _is_trains(result, dataset):
        if "n_observations" in result.coords:
            responses = int(result.n_observations.sel(dataset=dataset))
        else:
            responses = int((result.observation_dataset == dataset).sum())
        return f"{count} train{'s' * (count != 1)}, {responses} measured responses"
    return f"{count} protocol{'s' * (count != 1)}"


E_UNITS = {"1": "SEM units", "percent^2": "percent²", "amplitude^2": "squared amplitude"}


def _dataset_summary(result: xr.Dataset, dataset: str) -> str:
    done = fitted(result).sel(dataset=dataset).values
    kind = "train responses" if _is_trains(result, dataset) else "weight changes"
    if not done.any():
        return f"{dataset} ({_size(result, dataset)}): no compared rule can explain its {kind}; it was not fitted."
    cell = result.sel(dataset=dataset).isel(rule=np.flatnonzero(done))
    e = cell.E.to_series().sort_values()
    best_e = e.index[0]
    units = str(cell.E_units.values)
    aic = (cell.AIC - cell.AIC.min()).to_series().sort_values()
    best_aic = aic.index[0]
    text = f"{dataset} ({_size(result, dataset)}, E in {E_UNITS.get(units, units)}): "
    if len(e) == 1:
        text += (
            f"{_label(result, best_e)} has E = {e.iloc[0]:.3g} (k = {int(cell.k.sel(rule=best_e))}), "
            f"the only compared rule that can explain its {kind}"
        )
    else:
        text += f"{_label(result, best_e)} has the lowest E ({e.iloc[0]:.3g}, k = {int(cell.k.sel(rule=best_e))})"
    if best_aic == best_e:
        runner = aic.index[1] if len(aic) > 1 else None
        if runner is not None:
            gap = float(aic.iloc[1])
            verdict = (
                "a clear preference"
                if gap > CLEAR_DELTA
                else "the two are not distinguished"
                if gap <= TIE_DELTA
                else "a moderate preference"
            )
            text += (
                f" and the lowest AIC, ahead of {_label(result, runner)} by ΔAIC = {gap:.1f} "
                f"(k = {int(cell.k.sel(rule=runner))}): {verdict}"
            )
    else:
        text += (
            f", but its extra parameters do not pay: {_label(result, best_aic)} has the lowest AIC "
            f"(k = {int(cell.k.sel(rule=best_aic))}; ΔAIC of the lowest-E rule {float(aic[best_e]):.1f})"
        )
    if "E_cv" in cell and np.isfinite(cell.E_cv.values).any():
        cv = cell.E_cv.to_series().dropna().sort_values()
        held_out = "held-out trains" if _is_trains(result, dataset) else "held-out protocols"
        if len(cv) == 1:
            text += f". Leave-one-out, {_label(result, cv.index[0])} predicts {held_out} with E_cv = {cv.iloc[0]:.3g}"
        else:
            text += f". Leave-one-out, {_label(result, cv.index[0])} predicts {held_out} best (E_cv = {cv.iloc[0]:.3g})"
        own_cv = float(cell.E_cv.sel(rule=best_e))
        if cv.index[0] != best_e and np.isfinite(own_cv):
            text += f", not {_label(result, best_e)} (E_cv = {own_cv:.3g})"
    return text + "."


def _bounds(result: xr.Dataset) -> list[str]:
    lines = []
    flags = result.parameter_at_bound
    for rule in result.rule.values:
        hits = []
        for dataset in result.dataset.values:
            names = [str(p) for p in result.parameter.values if int(flags.sel(rule=rule, dataset=dataset, parameter=p))]
            if names:
                hits.append(f"{', '.join(names)} on {dataset}")
        if hits:
            lines.append(f"{_label(result, rule)} ends at a bound for {'; '.join(hits)}: no interval is given there.")
    return lines


def _transfer(result: xr.Dataset) -> list[str]:
    lines = []
    preparations = result.preparation.to_series()
    for preparation, count in preparations.value_counts().items():
        if count < 2 or not preparation:
            continue
        names = list(preparations[preparations == preparation].index)
        ratios = {}
        for rule in result.rule.values:
            m = result.E_transfer.sel(rule=rule, dataset=names, predicted=names).values
            own = np.diag(m)
            off = np.array([m[a, b] / own[b] for a in range(len(names)) for b in range(len(names)) if a != b])
            off = off[np.isfinite(off) & (off > 0)]  # pairs of fitted cells of one kind only
            if off.size:
                ratios[rule] = float(np.exp(np.mean(np.log(off))))
        if not ratios:
            continue
        best = min(ratios, key=ratios.__getitem__)
        worst = max(ratios, key=ratios.__getitem__)
        text = (
            f"Within {preparation} ({', '.join(names)}), parameters fitted on one dataset predict the others "
            f"best with {_label(result, best)} (E {ratios[best]:.2g}x its own fit's, geometric mean)"
        )
        if worst != best:
            text += f" and worst with {_label(result, worst)} ({ratios[worst]:.2g}x)"
        lines.append(text + ".")
    return lines


def _capacity(result: xr.Dataset) -> list[str]:
    if "retrieval_error" not in result:
        return []
    capacity = result.retrieval_error
    at = int(capacity.n_pairs.sel(n_pairs=128, method="nearest"))
    values = {rule: float(capacity.sel(fast_rule=rule, n_pairs=at)) for rule in capacity.fast_rule.values}
    order = sorted(values, key=values.__getitem__)
    listed = ", ".join(f"{FAST_LABELS.get(r, r)} {values[r]:.2f}" for r in order)
    return [
        f"Fast weights: storing S = {at} random associations in a 64 × 64 matrix leaves a relative retrieval error of {listed}."
    ]


def _rule_map(result: xr.Dataset) -> list[str]:
    """What the map of all rules shows: capacity against the mean ΔAIC over the weight-change data."""
    if "capacity" not in result:
        return []
    from scipy.stats import spearmanr

    from neurofwp.analysis.figures import mean_delta_aic

    capacity, delta = result.capacity, mean_delta_aic(result)
    both = [
        r
        for r in result.rule.values
        if np.isfinite(float(capacity.sel(rule=r))) and np.isfinite(float(delta.sel(rule=r)))
    ]
    lines = []
    unreadable = [r for r in result.rule.values if not np.isfinite(float(capacity.sel(rule=r)))]
    if unreadable:
        lines.append(
            f"No fast-weight capacity for {', '.join(_label(result, r) for r in unreadable)}: "
            "not an outer-product write rule (see the capacity variable's reason)."
        )
    if len(both) < 2:
        return lines
    best_fit = min(both, key=lambda r: float(delta.sel(rule=r)))
    top = max(float(capacity.sel(rule=r)) for r in both)
    tied = [r for r in both if float(capacity.sel(rule=r)) == top]
    most = best_fit if best_fit in tied else tied[0]
    text = (
        f"Map of the rules: {_label(result, best_fit)} explains the weight-change data best (mean ΔAIC "
        f"{float(delta.sel(rule=best_fit)):.1f}) and stores {float(capacity.sel(rule=best_fit)):g} pairs as a "
        f"fast-weight write rule; "
    )
    if most == best_fit:
        text += "it also stores the most" + (f" (as do {len(tied) - 1} other rules)" if len(tied) > 1 else "")
    else:
        text += (
            f"{_label(result, most)} stores the most ({float(capacity.sel(rule=most)):g} pairs, mean ΔAIC "
            f"{float(delta.sel(rule=most)):.1f})"
        )
    x = [float(capacity.sel(rule=r)) for r in both]
    y = [float(delta.sel(rule=r)) for r in both]
    if len(set(x)) > 1 and len(set(y)) > 1:
        rho = float(spearmanr(x, y).statistic)
        if rho <= -0.5:
            verdict = "the rules that explain the biology better tend to store more"
        elif rho >= 0.5:
            verdict = "the rules that explain the biology better tend to store less"
        else:
            verdict = "explaining the biology and storing as fast weights are not clearly related"
        text += f". Across {len(both)} rules the rank correlation of capacity with mean ΔAIC is {rho:+.2f}: {verdict}"
    else:
        text += ". The rules do not differ in capacity" if len(set(x)) == 1 else ""
    return lines + [text + "."]


def _map_table(result: xr.Dataset) -> tuple[list[str], list[list[str]]]:
    """The map as a table: per rule its capacity, mean ΔAIC and E on each weight-change dataset."""
    if "capacity" not in result:
        return [], []
    from neurofwp.analysis.figures import mean_delta_aic

    weights = [str(d) for d in result.dataset.values if not _is_trains(result, d)]
    delta = mean_delta_aic(result)
    header = ["rule", "capacity (pairs)", "mean ΔAIC"] + [f"E {d}" for d in weights]

    def number(value: float, form: str) -> str:
        return format(value, form) if np.isfinite(value) else "–"

    rows = [
        [
            _label(result, rule),
            number(float(result.capacity.sel(rule=rule)), "g"),
            number(float(delta.sel(rule=rule)), ".1f"),
            *(number(float(result.E.sel(rule=rule, dataset=d)), ".3g") for d in weights),
        ]
        for rule in result.rule.values
    ]
    return header, rows


def _skipped(result: xr.Dataset) -> list[str]:
    """Which rules were not fitted to which datasets, and why (they cannot explain those data): one
    sentence per kind of data and set of datasets."""
    done = fitted(result)
    lines = []
    for trains, (singular, plural), what in (
        (False, ("does not change w", "do not change w"), "weight changes"),
        (True, ("has no per-spike response", "have no per-spike response"), "train responses"),
    ):
        groups: dict[tuple[str, ...], list[str]] = {}
        for rule in result.rule.values:
            missing = tuple(
                str(d)
                for d in result.dataset.values
                if _is_trains(result, d) == trains and not bool(done.sel(rule=rule, dataset=d))
            )
            if missing:
                groups.setdefault(missing, []).append(_label(result, rule))
        for missing, labels in groups.items():
            one = len(labels) == 1
            lines.append(
                f"{'; '.join(labels)} {singular if one else plural} and {'is' if one else 'are'} not fitted to the "
                f"{what} of "
                f"{', '.join(missing)}."
            )
    return lines


def summary(result: xr.Dataset) -> list[str]:
    """The report's sentences, each generated from ``result``."""
    lines = [_dataset_summary(result, str(d)) for d in result.dataset.values]
    return lines + _skipped(result) + _bounds(result) + _transfer(result) + _capacity(result) + _rule_map(result)


def _parameter_rows(result: xr.Dataset) -> list[tuple[str, str, str]]:
    rows = []
    done = fitted(result)
    for rule in result.rule.values:
        for dataset in result.dataset.values:
            if not bool(done.sel(rule=rule, dataset=dataset)):
                continue
            cell = result.sel(rule=rule, dataset=dataset)
            parts = []
            for p in result.parameter.values:
                value = float(cell.parameter_value.sel(parameter=p))
                if not np.isfinite(value):
                    continue
                if not int(cell.parameter_free.sel(parameter=p)):
                    parts.append(f"{p}={value:.4g} (fixed)")
                    continue
                low, high = (
                    float(cell.parameter_ci95_low.sel(parameter=p)),
                    float(cell.parameter_ci95_high.sel(parameter=p)),
                )
                if int(cell.parameter_at_bound.sel(parameter=p)):
                    parts.append(f"{p}={value:.4g} (at bound)")
                elif np.isfinite(low):
                    parts.append(f"{p}={value:.4g} [{low:.3g}, {high:.3g}]")
                else:
                    parts.append(f"{p}={value:.4g} (no interval: {cell.laplace_status.sel(parameter=p).values})")
            rows.append((_label(result, rule), str(dataset), ", ".join(parts)))
    return rows


def _posterior_cells(result: xr.Dataset) -> list[tuple[str, str, list[str]]]:
    """(rule, dataset, free parameters) of every cell with a posterior."""
    if "posterior_sample" not in result:
        return []
    found = np.isfinite(result.posterior_sample).any("sample")
    cells = []
    for dataset in result.dataset.values:
        for rule in result.rule.values:
            free = [str(p) for p in result.parameter.values if bool(found.sel(rule=rule, dataset=dataset, parameter=p))]
            if free:
                cells.append((str(rule), str(dataset), free))
    return cells


def _posterior_rows(result: xr.Dataset) -> list[list[str]]:
    """Per cell and free parameter: the best fit with its Laplace interval, the posterior median with its
    central 90 % and the coverage of held-back simulations."""
    rows = []
    for rule, dataset, free in _posterior_cells(result):
        cell = result.sel(rule=rule, dataset=dataset)
        for p in free:
            samples = cell.posterior_sample.sel(parameter=p).values
            low, median, high = np.nanquantile(samples, [0.05, 0.5, 0.95])
            ci = float(cell.parameter_ci95_low.sel(parameter=p)), float(cell.parameter_ci95_high.sel(parameter=p))
            interval = f" [{ci[0]:.3g}, {ci[1]:.3g}]" if np.isfinite(ci).all() else ""
            rows.append(
                [
                    _label(result, rule),
                    dataset,
                    p,
                    f"{float(cell.parameter_value.sel(parameter=p)):.4g}{interval}",
                    f"{median:.4g} [{low:.3g}, {high:.3g}]",
                    f"{float(cell.posterior_coverage_90.sel(parameter=p)):.2f}",
                ]
            )
    return rows


def posterior_summary(result: xr.Dataset) -> list[str]:
    """Sentences on each posterior: calibration, where the best fit lies, the strongest trade-off."""
    lines = []
    for rule, dataset, free in _posterior_cells(result):
        cell = result.sel(rule=rule, dataset=dataset)
        samples = {p: cell.posterior_sample.sel(parameter=p).values for p in free}
        outside = []
        for p in free:
            low, high = np.nanquantile(samples[p], [0.05, 0.95])
            if not low <= float(cell.parameter_value.sel(parameter=p)) <= high:
                outside.append(p)
        text = f"{_label(result, rule)} on {dataset}: "
        text += (
            "the best fit lies within the central 90 % of every marginal"
            if not outside
            else f"the best fit lies outside the central 90 % of {', '.join(outside)}"
        )
        if len(free) > 1:
            matrix = np.corrcoef(np.array([samples[p] for p in free]))
            np.fill_diagonal(matrix, 0.0)
            i, j = np.unravel_index(np.argmax(np.abs(matrix)), matrix.shape)
            text += f"; strongest trade-off {free[i]} / {free[j]} (posterior correlation {matrix[i, j]:+.2f})"
        coverage = cell.posterior_coverage_90.sel(parameter=free).values
        calibrated = bool(int(cell.posterior_calibrated))
        text += (
            f"; held-back coverage of the 90 % intervals {coverage.min():.2f}–{coverage.max():.2f}"
            + ("" if calibrated else " (not calibrated: more simulations needed)")
            + (
                ""
                if "posterior_centred" not in cell or bool(int(cell.posterior_centred))
                else "; its median prediction misses the data (posterior predictive check failed)"
            )
            + f"; noise: {cell.posterior_noise.values}."
        )
        lines.append(text)
    return lines


def _table(result: xr.Dataset) -> tuple[list[str], list[list[str]]]:
    header = ["rule", "dataset", "k", "E", "E_cv", "log L", "ΔAIC", "ΔBIC"]
    delta_aic, delta_bic = result.AIC - result.AIC.min("rule"), result.BIC - result.BIC.min("rule")
    rows = []
    done = fitted(result)
    for dataset in result.dataset.values:
        for rule in result.rule.values:
            at = {"rule": rule, "dataset": dataset}
            if not bool(done.sel(at)):
                continue
            rows.append(
                [
                    _label(result, rule),
                    str(dataset),
                    f"{int(result.k.sel(at))}",
                    f"{float(result.E.sel(at)):.4g}",
                    f"{float(result.E_cv.sel(at)):.4g}" if np.isfinite(float(result.E_cv.sel(at))) else "–",
                    f"{float(result.log_likelihood.sel(at)):.2f}",
                    f"{float(delta_aic.sel(at)):.1f}",
                    f"{float(delta_bic.sel(at)):.1f}",
                ]
            )
    return header, rows


CAPTIONS = {
    "model_vs_data": "Fitted prediction against measurement, one point per protocol or measured response "
    "(dashed: identity).",
    "error_heatmap": "Fit error E per rule and dataset; colour relative to the dataset's best E; leave-one-out E_cv.",
    "model_selection": "ΔAIC and ΔBIC to each dataset's best rule (0 = best; k = estimated parameters).",
    "parameters": "Fitted free parameters within their bounds, Laplace 95 % intervals; open triangles: at a bound.",
    "transfer": "Parameters fitted on dataset A predicting dataset B of the same preparation: E_AB / E_BB.",
    "capacity": "Fast weights (tensor rules): retrieval error as more associations share one 64 × 64 matrix.",
    "rule_map": "One map of all rules: mean ΔAIC over the weight-change datasets and E on each, against the "
    "rule's capacity as the write rule of a fast weight programmer (untrained, the rule's rate reading).",
}


def _caption(result: xr.Dataset, key: str) -> str:
    if key.startswith("data_"):
        name = key[len("data_") :]
        kind = str(result.structure.sel(dataset=name).values)
        what = {
            "window": "timing window",
            "frequency": "frequency series",
            "trains": "train responses against spike number, one panel per train",
        }.get(kind, "protocol by protocol")
        return f"{name}, {what}: data and every fitted rule. {result.citation.sel(dataset=name).values}"
    if key.startswith("posterior_"):
        return (
            f"Posterior (sbi NPE, {result.attrs.get('posterior_simulations')} simulations) of the cell {key[10:]}: "
            "marginals and pairs; red: the best fit and its Laplace 95 % interval."
        )
    return CAPTIONS.get(key, key)


def write(result: xr.Dataset, folder: Path, figures: dict[str, list[Path]]) -> tuple[Path, Path]:
    """Write ``report.html`` (figures inlined as PNG) and ``report.md`` (figures linked) into ``folder``."""
    folder = Path(folder)
    lines = summary(result)
    header, table = _table(result)
    parameter_rows = _parameter_rows(result)
    settings = (
        f"fits: {result.attrs['starts']} start(s) per rule and dataset, seed {result.attrs['seed']}, "
        f"neurofwp {result.attrs['neurofwp_version']}; log L from E with the stated SEMs (σ estimated where a "
        "dataset has none), AIC = 2k − 2 log L, BIC = k ln N − 2 log L with N the observations (protocols"
        + (
            "; measured responses of train datasets"
            if any(_is_trains(result, d) for d in result.dataset.values)
            else ""
        )
        + "); E_cv: leave-one-protocol-out"
        + (" (a train is one protocol)" if any(_is_trains(result, d) for d in result.dataset.values) else "")
        + "."
        + (
            " A rule is fitted only to data it can explain (weight changes: a rule that changes w; train responses: "
            "a rule with a per-spike response)."
            if not bool(fitted(result).all())
            else ""
        )
    )
    pngs = {key: [p for p in paths if p.suffix == ".png"] for key, paths in figures.items()}

    md = ["# Which update rule explains the biology?", "", settings, "", "## Summary", ""]
    md += [f"- {line}" for line in lines]
    md += ["", "## Model comparison", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    md += ["| " + " | ".join(row) + " |" for row in table]
    md += ["", "## Fitted parameters (Laplace 95 % intervals)", "", "| rule | dataset | parameters |", "|---|---|---|"]
    md += [f"| {a} | {b} | {c} |" for a, b, c in parameter_rows]
    posterior_lines, posterior_rows = posterior_summary(result), _posterior_rows(result)
    posterior_header = [
        "rule",
        "dataset",
        "parameter",
        "best fit [Laplace 95 %]",
        "posterior median [90 %]",
        "coverage",
    ]
    if posterior_rows:
        md += ["", "## Posteriors (simulation-based inference)", ""] + [f"- {line}" for line in posterior_lines]
        md += ["", "| " + " | ".join(posterior_header) + " |", "|" + "---|" * len(posterior_header)]
        md += ["| " + " | ".join(row) + " |" for row in posterior_rows]
    map_header, map_rows = _map_table(result)
    if map_rows:
        md += ["", "## Map of the rules: biology and fast-weight capacity", ""]
        md += ["| " + " | ".join(map_header) + " |", "|" + "---|" * len(map_header)]
        md += ["| " + " | ".join(row) + " |" for row in map_rows]
    md += ["", "## Figures", ""]
    for key, paths in pngs.items():
        md += [f"![{key}]({p.name})" for p in paths] + ["", _caption(result, key), ""]
    md_path = folder / "report.md"
    md_path.write_text("\n".join(md) + "\n", encoding="utf-8")

    def image(key: str, png: Path) -> str:
        encoded = base64.b64encode(png.read_bytes()).decode("ascii")
        return f'<img alt="{html.escape(key)}" src="data:image/png;base64,{encoded}">'

    def cells(row, tag="td") -> str:
        return "".join(f"<{tag}>{html.escape(c)}</{tag}>" for c in row)

    figures_html = "".join(
        f"<figure>{''.join(image(key, p) for p in paths)}<figcaption>{html.escape(_caption(result, key))}</figcaption></figure>"
        for key, paths in pngs.items()
    )
    map_html = (
        "<h2>Map of the rules: biology and fast-weight capacity</h2>"
        f"<table><thead><tr>{cells(map_header, 'th')}</tr></thead><tbody>"
        f"{''.join(f'<tr>{cells(row)}</tr>' for row in map_rows)}</tbody></table>"
        if map_rows
        else ""
    )
    posterior_html = (
        "<h2>Posteriors (simulation-based inference)</h2>"
        f"<ul>{''.join(f'<li>{html.escape(line)}</li>' for line in posterior_lines)}</ul>"
        f"<table><thead><tr>{cells(posterior_header, 'th')}</tr></thead><tbody>"
        f"{''.join(f'<tr>{cells(row)}</tr>' for row in posterior_rows)}</tbody></table>"
        if posterior_rows
        else ""
    )
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>neurofwp: which update rule explains the biology?</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 1040px; margin: 2em auto; padding: 0 1em; color: #222; line-height: 1.45; }}
table {{ border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }}
th, td {{ border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: left; }}
thead th {{ background: #f2f2f2; }}
figure {{ margin: 1.5em 0; }} img {{ max-width: 100%; }} figcaption {{ color: #555; font-size: 0.9em; }}
.meta {{ color: #666; font-size: 0.9em; }}
</style></head><body>
<h1>Which update rule explains the biology?</h1>
<p class="meta">{html.escape(settings)}</p>
<h2>Summary</h2><ul>{"".join(f"<li>{html.escape(line)}</li>" for line in lines)}</ul>
<h2>Model comparison</h2>
<table><thead><tr>{cells(header, "th")}</tr></thead><tbody>{"".join(f"<tr>{cells(row)}</tr>" for row in table)}</tbody></table>
{map_html}{posterior_html}<h2>Figures</h2>{figures_html}
<h2>Fitted parameters (Laplace 95 % intervals)</h2>
<table><thead><tr><th>rule</th><th>dataset</th><th>parameters</th></tr></thead><tbody>{"".join(f"<tr>{cells(row)}</tr>" for row in parameter_rows)}</tbody></table>
</body></html>
"""
    html_path = folder / "report.html"
    html_path.write_text(page, encoding="utf-8")
    return html_path, md_path
