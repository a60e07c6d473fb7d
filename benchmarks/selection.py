"""Cost of model selection for pair STDP and the triplet rule on every bundled plasticity dataset.

For each rule × dataset, in the same run: one full fit (L-BFGS-B, ``--starts`` starts, the
Laplace step timed apart), leave-one-protocol-out CV with the folds × starts advanced in
lockstep and simulated as parameter sets of one batched torch call per round, the same CV
warm-started from the full fit (one start per fold), and the same folds as a Python loop of
:func:`neurofwp.fit.fit` calls; the largest difference of the fold E between the batched CV
and the loop is printed. Run it as the comparison runs, on 2 cores, e.g.
``taskset -c 0,1 python benchmarks/selection.py``.

Usage: python benchmarks/selection.py [--starts 2] [--rules stdp triplet] [--datasets ...] [--skip-loop]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch

from neurofwp import data
from neurofwp.analysis.selection import loo_cv
from neurofwp.fit import fit


def timed(function, *args, **kwargs):
    began = time.perf_counter()
    result = function(*args, **kwargs)
    return time.perf_counter() - began, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--starts", type=int, default=2)
    parser.add_argument("--rules", nargs="+", default=["stdp", "triplet"])
    parser.add_argument("--datasets", nargs="+", default=data.list())
    parser.add_argument("--skip-loop", action="store_true", help="skip the loop of fits (the slow reference)")
    args = parser.parse_args()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"{cores} cores available, torch {torch.get_num_threads()} threads, {args.starts} starts per fit")
    fit("stdp", data.protocols("sjostrom2001"), starts=1, show_progress=False)  # warm-up (imports, first calls)
    header = (
        f"{'rule':<9}{'dataset':<26}{'P':>4}{'fit s':>8}{'Laplace s':>10}{'CV batched s':>13}"
        f"{'CV warm s':>10}{'CV loop s':>10}{'speed-up':>9}{'E':>10}{'E_cv':>10}{'max rel dE':>11}"
    )
    print(header)
    totals = {"fit": 0.0, "batched": 0.0, "warm": 0.0, "loop": 0.0}
    for name in args.datasets:
        table = data.resolve(name)
        protocols = [p for p in table.protocols if p.dw_percent is not None]
        for rule in args.rules:
            options = dict(starts=args.starts, seed=0)
            seconds, full = timed(fit, rule, protocols, show_progress=False, **options)
            laplace = full.attrs["laplace_seconds"]
            batched_s, cv = timed(loo_cv, rule, protocols, **options)
            start = {n: full.attrs[f"param_{n}"] for n in full.attrs["free"].split()}
            warm_s, warm = timed(loo_cv, rule, protocols, starts=1, start=start)
            loop_s, difference = float("nan"), float("nan")
            if not args.skip_loop:
                began = time.perf_counter()
                folds = [
                    fit(rule, protocols[:j] + protocols[j + 1 :], show_progress=False, uncertainty=False, **options)
                    for j in range(len(protocols))
                ]
                loop_s = time.perf_counter() - began
                loop_e = np.array([f.attrs["E"] for f in folds])
                difference = float(np.max(np.abs(cv.E_train.values - loop_e) / np.maximum(loop_e, 1e-12)))
            totals["fit"] += seconds
            totals["batched"] += batched_s
            totals["warm"] += warm_s
            totals["loop"] += loop_s
            print(
                f"{rule:<9}{name:<26}{len(protocols):>4}{seconds:>8.2f}{laplace:>10.2f}{batched_s:>13.2f}"
                f"{warm_s:>10.2f}{loop_s:>10.2f}{loop_s / batched_s:>8.1f}x{full.attrs['E']:>10.4g}"
                f"{cv.attrs['E_cv']:>10.4g}{difference:>11.1e}",
                flush=True,
            )
            if warm.attrs["E_cv"] != 0:
                change = abs(warm.attrs["E_cv"] - cv.attrs["E_cv"]) / abs(cv.attrs["E_cv"])
                if change > 1e-3:
                    print(
                        f"  warm-started E_cv {warm.attrs['E_cv']:.4g} differs by {change:.1%}: "
                        "a fold found another optimum"
                    )
    print(
        f"total: fits {totals['fit']:.1f} s, CV batched {totals['batched']:.1f} s, "
        f"CV warm-started {totals['warm']:.1f} s, CV loop {totals['loop']:.1f} s"
    )


if __name__ == "__main__":
    main()
