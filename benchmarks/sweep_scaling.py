"""Speed-up of sweep-shaped jobs from 1 to N workers: a comparison of 8 rule × dataset fits and a grid sweep.

Each configuration runs the same cells (no store, so nothing is skipped) in this process
(1 worker), on N local processes, and on a loopback dask LocalCluster with N workers;
every task uses one torch thread, so results are identical and only the spread of the
cells over cores differs. Prints wall time, speed-up and parallel efficiency, and checks
that the Datasets are equal. The time includes starting the worker processes (importing
torch and neurofwp, a few seconds each), which a long sweep amortises.

Usage: python benchmarks/sweep_scaling.py [--workers 2] [--starts 2] [--skip-dask]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import xarray as xr

from neurofwp import grid
from neurofwp.analysis.compare import compare as full_compare

# The 8 cells this benchmark has always timed (the default comparison is larger: benchmarks/compare.py).
RULES = ("stdp", "delta", "stdp-modulated", "triplet")
DATASETS = ("bipoo1998", "sjostrom2001")


def compare(**options):
    return full_compare(RULES, DATASETS, cross_validate=False, **options)


GRID = """
kind = "fit"
rules = ["stdp", "triplet"]
datasets = ["sjostrom2001"]
seeds = [0]
starts = 2
[grid.stdp]
tau_plus_ms = [10.0, 16.8, 30.0]
tau_minus_ms = [20.0, 33.7]
[grid.triplet]
tau_x_ms = [50.0, 101.0]
tau_y_ms = [40.0, 125.0]
"""


def timed(function, **options) -> tuple[float, xr.Dataset]:
    start = time.perf_counter()
    result = function(**options)
    return time.perf_counter() - start, result


def report(name: str, runs: dict[str, tuple[float, xr.Dataset]], workers: int) -> None:
    base_time, base = runs["1 worker (this process)"]
    print(f"{name}:")
    for label, (seconds, result) in runs.items():
        xr.testing.assert_identical(base.drop_attrs(), result.drop_attrs())
        speedup = base_time / seconds
        parallel = workers if "1 worker" not in label else 1
        print(f"  {label:<32} {seconds:7.1f} s   speed-up {speedup:4.2f}x   efficiency {speedup / parallel:4.0%}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--starts", type=int, default=2)
    parser.add_argument("--skip-dask", action="store_true")
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} cores; compare with {args.starts} starts per fit (8 cells); grid sweep: 8 fits")

    runs = {"1 worker (this process)": timed(compare, starts=args.starts, show_progress=False)}
    runs[f"{args.workers} local processes"] = timed(
        compare, starts=args.starts, workers=args.workers, show_progress=False
    )
    if not args.skip_dask:
        runs[f"dask LocalCluster, {args.workers} workers"] = timed(
            compare, starts=args.starts, scheduler=f"local:{args.workers}", show_progress=False
        )
    report("compare", runs, args.workers)

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "grid.toml"
        path.write_text(GRID)
        config = grid.load(path)
        runs = {"1 worker (this process)": timed(grid.run, config=config, progress=False)}
        runs[f"{args.workers} local processes"] = timed(grid.run, config=config, workers=args.workers, progress=False)
        report("grid sweep (8 fits)", runs, args.workers)


if __name__ == "__main__":
    main()
