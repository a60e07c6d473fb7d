"""Redraw the comparison's figures and report from a saved ``comparison.nc``, and print its model-selection table.
===============================================================================================================

``neurofwp compare --out DIR`` writes ``DIR/comparison.nc`` beside the figures; this script
rebuilds every figure (PNG and SVG) and ``report.html`` / ``report.md`` from that file
alone, e.g. after changing a figure, into ``--out`` (default: the file's folder). With
``--datasets`` or ``--rules`` it keeps only those (a figure of a subset).

Usage: python analyses/comparison_figures.py DIR/comparison.nc [--out FOLDER] [--rules R ...] [--datasets D ...]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import xarray as xr

from neurofwp.analysis import figures, report


def select(result: xr.Dataset, rules: list[str] | None, datasets: list[str] | None) -> xr.Dataset:
    """The comparison restricted to some rules and datasets (the per-protocol, per-response and curve rows follow)."""
    if rules:
        result = result.sel(rule=rules)
    if datasets:
        result = result.sel(dataset=datasets, predicted=datasets)
        result = result.isel(protocol=result.protocol_dataset.isin(datasets).values)
        result = result.isel(curve_point=result.curve_dataset.isin(datasets).values)
        if "observation" in result.dims:  # train responses (short-term plasticity)
            result = result.isel(observation=result.observation_dataset.isin(datasets).values)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("comparison", type=Path, help="a comparison.nc written by neurofwp compare")
    parser.add_argument("--out", type=Path, default=None, help="folder for figures and report [default: the file's]")
    parser.add_argument("--rules", nargs="+", default=None)
    parser.add_argument("--datasets", nargs="+", default=None)
    arguments = parser.parse_args(argv)
    if not arguments.comparison.is_file():
        print(f"comparison_figures: no such file {arguments.comparison}", file=sys.stderr)
        return 2
    result = xr.load_dataset(arguments.comparison)
    for name, wanted, known in (
        ("rule", arguments.rules, result.rule.values),
        ("dataset", arguments.datasets, result.dataset.values),
    ):
        missing = sorted(set(wanted or []) - {str(k) for k in known})
        if missing:
            print(
                f"comparison_figures: unknown {name} {', '.join(missing)}; the file has {', '.join(known)}",
                file=sys.stderr,
            )
            return 2
    result = select(result, arguments.rules, arguments.datasets)
    folder = arguments.out or arguments.comparison.parent
    folder.mkdir(parents=True, exist_ok=True)
    drawn = figures.all_figures(result, folder)
    html_path, md_path = report.write(result, folder, drawn)
    delta_aic = result.AIC - result.AIC.min("rule")
    table = xr.Dataset({"E": result.E, "E_cv": result.E_cv, "k": result.k, "dAIC": delta_aic})
    table = table.reset_coords(drop=True).to_dataframe()
    print(table.round(3).to_string())
    print(f"wrote {sum(len(p) for p in drawn.values())} figure files, {html_path} and {md_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
