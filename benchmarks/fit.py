"""Time to fit the minimal triplet rule to the Sjostrom 2001 data: torch backend vs Brian2 in the loop.

Same optimiser (L-BFGS-B on the unit cube), same start, same free parameters (A3_plus,
A2_minus, tau_y_ms; A2_plus = A3_minus = 0), seed 0. Torch gives exact gradients by
autograd; Brian2 gives central differences from one network holding the 2n + 1 parameter
sets side by side. Prints wall time, evaluations and E for each, and the speed-up.

Usage: python benchmarks/fit.py [--starts 8] [--skip-brian2]
"""

from __future__ import annotations

import argparse
import time

from neurofwp import data
from neurofwp.fit import fit
from neurofwp.plasticity import brian2_backend

MINIMAL = dict(free=["A3_plus", "A2_minus", "tau_y_ms"], fixed={"A2_plus": 0.0, "A3_minus": 0.0})


def timed(**options):
    start = time.perf_counter()
    result = fit("triplet", data.protocols("sjostrom2001"), show_progress=False, seed=0, **MINIMAL, **options)
    return time.perf_counter() - start, result.attrs["evaluations"], result.attrs["E"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--starts", type=int, default=8)
    parser.add_argument("--skip-brian2", action="store_true")
    args = parser.parse_args()
    timed(starts=1)  # warm-up
    one = timed(starts=1)
    many = timed(starts=args.starts)
    print("minimal triplet fit, Sjostrom 2001 (10 protocols), L-BFGS-B:")
    print(f"  torch, 1 start:           {one[0]:7.2f} s, {one[1]:4d} evaluations, E = {one[2]:.6f}")
    print(f"  torch, {args.starts} starts:          {many[0]:7.2f} s, {many[1]:4d} evaluations, E = {many[2]:.6f}")
    if not args.skip_brian2:
        brian2_backend.simulate("triplet", data.protocols("sjostrom2001"))  # compile once
        brian = timed(starts=1, backend="brian2")
        print(f"  brian2 in the loop, 1 start: {brian[0]:7.2f} s, {brian[1]:4d} evaluations, E = {brian[2]:.6f}")
        print(
            f"  torch is {brian[0] / one[0]:.0f}x faster per fit (target >= 50x); |E difference| = "
            f"{abs(brian[2] - one[2]):.2e} (target <= 1e-3)"
        )


if __name__ == "__main__":
    main()
