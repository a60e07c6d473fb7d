"""Wall time of the default comparison (`neurofwp compare`: every rule × every bundled dataset), and where it goes.

Runs the README's main job through the API with the command's defaults (3 starts per fit,
leave-one-out cross-validation, one worker per core, no store), then times one cell per
rule on each dataset in this process (fit with its Laplace step, cross-validation,
transfer and curves), so that the share of each rule is visible.

Usage: python benchmarks/compare.py [--workers N] [--skip-cells]
"""

from __future__ import annotations

import argparse
import os
import time

from neurofwp import data
from neurofwp.analysis.compare import DEFAULT_RULES, _resolve, compare, explains, fit_cell


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--skip-cells", action="store_true", help="only the end-to-end time")
    args = parser.parse_args()
    names = data.measured()
    print(f"machine: {os.cpu_count()} cores; {len(DEFAULT_RULES)} rules x {len(names)} datasets, 3 starts, CV")
    start = time.perf_counter()
    compare(workers=args.workers, show_progress=False)
    print(f"default comparison on {args.workers} worker(s): {time.perf_counter() - start:.1f} s")
    if args.skip_cells:
        return
    rules, tables, _ = _resolve(DEFAULT_RULES, names)
    print(f"{'cell time (s), one process':<28}" + "".join(f"{n[:14]:>16}" for n in names) + f"{'sum':>10}")
    for rule in rules:
        times = []
        for name in names:
            if not explains(rules[rule], tables[name]):  # a cell the comparison does not fit
                times.append(float("nan"))
                continue
            start = time.perf_counter()
            fit_cell({"rule": rule, "dataset": name}, rules=rules, tables=tables, starts=3, seed=0, cv=True)
            times.append(time.perf_counter() - start)
        print(f"{rule:<28}" + "".join(f"{t:16.1f}" for t in times) + f"{sum(t for t in times if t == t):10.1f}")


if __name__ == "__main__":
    main()
