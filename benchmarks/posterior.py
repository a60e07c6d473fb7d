"""Posterior of the triplet rule on the Sjöström data by neural posterior estimation: the time split.

10^4 simulations (the default), the default density estimator; prints the seconds spent
simulating (batched torch backend) and training (sbi NPE), the calibration of the held-back
simulations and the A3_plus / tau_y_ms posterior correlation.

Usage: python benchmarks/posterior.py [--simulations N]
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np

from neurofwp import data
from neurofwp.analysis.posterior import CalibrationWarning, posterior


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--simulations", type=int, default=10_000)
    args = parser.parse_args()
    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", CalibrationWarning)
        result = posterior("triplet", data.resolve("sjostrom2001"), simulations=args.simulations)
    total = time.perf_counter() - start
    simulating, training = result.attrs["seconds_simulating"], result.attrs["seconds_training"]
    print(
        f"triplet on sjostrom2001, {args.simulations} simulations: simulating {simulating:.1f} s, "
        f"training {training:.1f} s, total {total:.1f} s"
    )
    print("coverage of the 90 % intervals on held-back simulations:", result.expected_coverage_90.values.round(2))
    print("calibration warning:", "; ".join(str(w.message) for w in caught) or "none")
    correlation = np.corrcoef(result.A3_plus.values, result.tau_y_ms.values)[0, 1]
    print(f"posterior correlation of A3_plus and tau_y_ms: {correlation:.2f}")


if __name__ == "__main__":
    main()
