"""Compare `neurofwp retrieval` results with the paper's own runs: capacity per model, a table and a figure.
=========================================================================================================

For every model in ``retrieval_setting<N>.nc`` (N = 1, 2) found in the results folder, the
*capacity* is the largest S whose best evaluation loss is at most ``--solved`` (default
0.01) with every smaller S solved too; the same is computed from the paper's logs
(:func:`neurofwp.retrieval.paper_reference`). Writes ``retrieval_vs_paper.md`` and
redraws each setting's figure with the paper's runs beside ours.

Usage: python analyses/retrieval_vs_paper.py RESULTS_DIR [--solved 0.01]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from neurofwp.retrieval import paper_reference
from neurofwp.retrieval.figure import figure, label


def capacity(sizes: np.ndarray, losses: np.ndarray, solved: float) -> float:
    """Largest S with all S' <= S solved (loss <= ``solved``); 0 if the smallest fails, NaN without data."""
    order = np.argsort(sizes)
    sizes, losses = np.asarray(sizes)[order], np.asarray(losses)[order]
    known = ~np.isnan(losses)
    if not known.any():
        return float("nan")
    sizes, losses = sizes[known], losses[known]
    failed = np.flatnonzero(losses > solved)
    return float(sizes[-1] if not len(failed) else (sizes[failed[0] - 1] if failed[0] > 0 else 0))


def table(result: xr.Dataset, reference: pd.DataFrame, solved: float) -> pd.DataFrame:
    rows = []
    for model in result.model.values:
        ours = result.best_eval_loss.sel(model=model)
        theirs = reference[reference.model == model]
        mine = capacity(ours.S.values, ours.values, solved)
        rows.append(
            {
                "model": label(str(model)),
                "S tried": f"{int(ours.S.min())}–{int(ours.S.max())}",
                # all tried S solved: the capacity is at least the largest one
                "capacity (ours)": f"≥ {mine:g}" if mine == float(ours.S.max()) else f"{mine:g}",
                "capacity (paper)": capacity(theirs.S.values, theirs.best_eval_loss.values, solved)
                if len(theirs)
                else float("nan"),
            }
        )
    return pd.DataFrame(rows)


def markdown(frame: pd.DataFrame) -> str:
    cells = [[f"{v:g}" if isinstance(v, float) else str(v) for v in row] for row in frame.itertuples(index=False)]
    header = "| " + " | ".join(frame.columns) + " |\n|" + "---|" * len(frame.columns)
    return header + "".join("\n| " + " | ".join(row) + " |" for row in cells)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.strip().split("\n")[0])
    parser.add_argument("results", type=Path)
    parser.add_argument("--solved", type=float, default=0.01)
    args = parser.parse_args(argv)
    found = sorted(args.results.glob("retrieval_setting[12].nc"))
    if not found:
        print(f"error: no retrieval_setting1.nc or retrieval_setting2.nc in {args.results}", file=sys.stderr)
        return 2
    lines = [
        f"# Retrieval capacity: neurofwp vs Schlag et al. (2021)\n\nSolved: best evaluation loss ≤ {args.solved}.\n"
    ]
    for path in found:
        with xr.open_dataset(path) as result:
            result = result.load()
        setting = int(result.attrs["setting"])
        reference = paper_reference(setting)
        frame = table(result, reference, args.solved)
        lines += [f"\n## Setting {setting}\n", markdown(frame), ""]
        figure(result, args.results / f"retrieval_vs_paper_setting{setting}", reference=reference)
        print(f"setting {setting}:\n{frame.to_string(index=False)}")
    out = args.results / "retrieval_vs_paper.md"
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"saved {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
