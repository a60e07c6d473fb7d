"""The comparison report: a self-contained HTML page (figures embedded) and a Markdown twin."""

from __future__ import annotations

import base64
import html
from pathlib import Path

import numpy as np
import xarray as xr

from neurofwp.analysis.compare import LABELS
from neurofwp.analysis.figures import FAST_LABELS


def _interpretation(result: xr.Dataset) -> list[str]:
    lines = []
    for name in result.dataset.values:
        errors = result.E.sel(dataset=name).to_series().sort_values()
        best, worst = errors.index[0], errors.index[-1]
        ratio = errors.iloc[-1] / errors.iloc[0]
        lines.append(
            f"On {name}, {LABELS[best]} fits best (E = {errors.iloc[0]:.3g}) and {LABELS[worst]} worst "
            f"(E = {errors.iloc[-1]:.3g}, {ratio:.1f}x higher)."
        )
    if "sjostrom2001" in result.dataset.values:
        e = result.E.sel(dataset="sjostrom2001")
        lines.append(
            "The frequency dependence of Sjöström et al. (2001) separates the rules: an additive pair rule "
            f"(E = {float(e.sel(rule='stdp')):.3g}) has no memory beyond one pair, so its change per pairing does not "
            "grow with frequency; the triplet rule's slow postsynaptic trace (a second factor gating potentiation) "
            f"captures it (E = {float(e.sel(rule='triplet')):.3g}). A learning rate driven by slow activity traces "
            f"(learned β, E = {float(e.sel(rule='stdp-modulated')):.3g}) and the error-correcting delta rule "
            f"(E = {float(e.sel(rule='delta')):.3g}) sit in between: scaling both amplitudes by one β cannot turn "
            "depression at -10 ms into the potentiation seen at 40-50 Hz."
        )
    if "bipoo1998" in result.dataset.values:
        lines.append(
            "The Bi & Poo window (single pairings at 1 Hz) barely separates pair, triplet and modulated rules, "
            "which coincide when traces do not overlap; the delta rule's prediction term depresses after every "
            "presynaptic spike regardless of timing, which the window contradicts."
        )
    capacity = result.retrieval_error
    at = int(capacity.n_pairs.sel(n_pairs=128, method="nearest"))
    lines.append(
        f"On the artificial side, storing S = {at} random associations in a 64 × 64 fast weight matrix "
        f"leaves a relative retrieval error of {float(capacity.sel(fast_rule='hebbian', n_pairs=at)):.2f} "
        "with the additive (Hebbian) rule, "
        f"{float(capacity.sel(fast_rule='delta', n_pairs=at)):.2f} with the delta rule and "
        f"{float(capacity.sel(fast_rule='delta-fitted-beta', n_pairs=at)):.2f} with a fitted learning rate: "
        "the same ordering by which error correction and a controlled learning rate beat pure addition."
    )
    return lines


def _parameter_rows(result: xr.Dataset) -> list[tuple[str, str, str]]:
    rows = []
    for rule in result.rule.values:
        for name in result.dataset.values:
            values = result.parameter_value.sel(rule=rule, dataset=name)
            free = result.parameter_free.sel(rule=rule, dataset=name)
            parts = [
                f"{p}={float(values.sel(parameter=p)):.4g}{'' if int(free.sel(parameter=p)) else ' (fixed)'}"
                for p in result.parameter.values
                if np.isfinite(float(values.sel(parameter=p)))
            ]
            rows.append((LABELS[rule], str(name), ", ".join(parts)))
    return rows


def write(result: xr.Dataset, folder: Path, figures: dict[str, list[Path]]) -> tuple[Path, Path]:
    """Write ``report.html`` (figures inlined as PNG) and ``report.md`` (figures linked) into ``folder``."""
    interpretation = _interpretation(result)
    datasets = list(result.dataset.values)
    e_table = [(LABELS[r], [float(result.E.sel(rule=r, dataset=d)) for d in datasets]) for r in result.rule.values]
    parameter_rows = _parameter_rows(result)
    captions = {
        "error_heatmap": "Fit error E per rule and dataset (SEM-normalised for sjostrom2001, percent² for bipoo1998).",
        "window": "STDP window: Bi & Poo (1998) cells and each rule fitted to them (60 pairings at 1 Hz).",
        "frequency": "Frequency dependence: Sjöström et al. (2001), mean ± SEM, and each fitted rule.",
        "model_vs_data": "Fitted prediction against measurement, one point per protocol (dashed: identity).",
        "capacity": "Fast weights (tensor rules): retrieval error as more associations share one 64 × 64 matrix.",
    }
    order = ["error_heatmap", "window", "frequency", "model_vs_data", "capacity"]
    settings = (
        f"fits: {result.attrs['starts']} start(s) per rule and dataset, seed {result.attrs['seed']}, "
        f"neurofwp {result.attrs['neurofwp_version']}"
    )

    md = ["# Which update rule explains the biology?", "", settings, "", "## Summary", ""]
    md += [f"- {line}" for line in interpretation]
    md += ["", "## Fit error E", "", "| rule | " + " | ".join(datasets) + " |", "|---|" + "---|" * len(datasets)]
    md += [f"| {label} | " + " | ".join(f"{e:.4g}" for e in errors) + " |" for label, errors in e_table]
    md += ["", "## Fitted parameters", "", "| rule | dataset | parameters |", "|---|---|---|"]
    md += [f"| {a} | {b} | {c} |" for a, b, c in parameter_rows]
    md += ["", "## Figures", ""]
    md += [f"![{key}]({key}.png)\n\n{captions[key]}\n" for key in order if key in figures]
    md_path = folder / "report.md"
    md_path.write_text("\n".join(md) + "\n", encoding="utf-8")

    def image(key: str) -> str:
        png = next(p for p in figures[key] if p.suffix == ".png")
        encoded = base64.b64encode(png.read_bytes()).decode("ascii")
        return (
            f'<figure><img alt="{key}" src="data:image/png;base64,{encoded}">'
            f"<figcaption>{html.escape(captions[key])}</figcaption></figure>"
        )

    e_rows = "".join(
        f"<tr><th>{html.escape(label)}</th>" + "".join(f"<td>{e:.4g}</td>" for e in errors) + "</tr>"
        for label, errors in e_table
    )
    p_rows = "".join(
        f"<tr><td>{html.escape(a)}</td><td>{html.escape(b)}</td><td>{html.escape(c)}</td></tr>"
        for a, b, c in parameter_rows
    )
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>neurofwp: artificial vs biological update rules</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 980px; margin: 2em auto; padding: 0 1em; color: #222; line-height: 1.45; }}
table {{ border-collapse: collapse; margin: 1em 0; font-size: 0.92em; }}
th, td {{ border: 1px solid #ccc; padding: 0.3em 0.7em; text-align: left; }}
thead th {{ background: #f2f2f2; }}
figure {{ margin: 1.5em 0; }} img {{ max-width: 100%; }} figcaption {{ color: #555; font-size: 0.9em; }}
.meta {{ color: #666; font-size: 0.9em; }}
</style></head><body>
<h1>Which update rule explains the biology?</h1>
<p class="meta">{html.escape(settings)}</p>
<h2>Summary</h2><ul>{"".join(f"<li>{html.escape(line)}</li>" for line in interpretation)}</ul>
<h2>Fit error E</h2>
<table><thead><tr><th>rule</th>{"".join(f"<th>{html.escape(str(d))}</th>" for d in datasets)}</tr></thead><tbody>{e_rows}</tbody></table>
<h2>Figures</h2>{"".join(image(key) for key in order if key in figures)}
<h2>Fitted parameters</h2>
<table><thead><tr><th>rule</th><th>dataset</th><th>parameters</th></tr></thead><tbody>{p_rows}</tbody></table>
<p class="meta">Fast-weight rules in the capacity figure: {html.escape(", ".join(FAST_LABELS.values()))}.</p>
</body></html>
"""
    html_path = folder / "report.html"
    html_path.write_text(page, encoding="utf-8")
    return html_path, md_path
