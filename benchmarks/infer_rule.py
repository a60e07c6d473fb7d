"""Time of one log-likelihood-and-gradient evaluation of the plastic-coupling GLM (neurofwp infer-rule).

A 10-minute recording: 100 presynaptic Poisson units at 1.5 Hz and a postsynaptic train at
10 Hz (about 96 000 spikes), 1 ms bins, 5 history lags, float64, ``--threads`` torch threads.
Peers in the same run: the static GLM (constant couplings), the event-driven rules by prefix
scans, the clock-driven delta rule with its drift integrated exactly between events (method
"ode", full length) and by Euler steps of 0.1 ms and 0.5 ms (method "scan", measured on a shorter
recording and scaled by its length), and the event loop (the reference) on a 5 s recording,
scaled per event. Prints seconds per evaluation and the machine's load.

Usage: python benchmarks/infer_rule.py [--minutes 10] [--units 100] [--repeats 5] [--threads 2]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch

from neurofwp.plasticity import get_rule
from neurofwp.recordings import Recording, plastic


def recording(minutes: float, units: int, seed: int = 0) -> Recording:
    rng = np.random.default_rng(seed)
    duration = minutes * 60.0
    post = np.sort(rng.uniform(0, duration, rng.poisson(10.0 * duration)))
    pre = {f"u{i}": np.sort(rng.uniform(0, duration, rng.poisson(1.5 * duration))) for i in range(units)}
    return Recording(post, duration, input_spike_times_s=pre, source="benchmark")


def model(trains, name: str | None, method: str = "auto", dt_ms: float = 0.1) -> plastic.PlasticGLM:
    rule = None if name is None else get_rule(name)
    free = [] if rule is None else list(rule.free)
    bounds = {} if rule is None else {n: rule.parameter(n).bounds for n in free}
    return plastic.PlasticGLM(
        trains, rule, bin_ms=1.0, history_lags=5, coupling_tau_ms=5.0, likelihood="poisson",
        free=free, held={} if rule is None else {k: v for k, v in rule.defaults().items() if k not in free},
        bounds=bounds, method=method, dt_ms=dt_ms,
    )  # fmt: skip


def seconds_per_evaluation(glm: plastic.PlasticGLM, repeats: int) -> float:
    theta = np.zeros(glm.n_parameters)
    theta[0] = -4.6
    theta[1 + 5 : 1 + 5 + len(glm.trains.pre_ms)] = 0.3
    theta[glm.n_parameters - len(glm.free) :] = 0.3
    glm.value_and_gradient(theta)  # warm-up
    began = time.perf_counter()
    for _ in range(repeats):
        glm.value_and_gradient(theta)
    return (time.perf_counter() - began) / repeats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--units", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--rules", default="stdp,triplet", help="event-driven rules at full length")
    parser.add_argument("--clock-minutes", type=float, default=0.5, help="length of the delta rule's recording")
    parser.add_argument("--loop-seconds", type=float, default=5.0, help="length of the loop's recording")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    data = recording(args.minutes, args.units)
    trains = plastic.check_trains(data)
    spikes = len(trains.post_ms) + sum(len(t) for t in trains.pre_ms)
    print(
        f"{args.minutes:g} min, {args.units} presynaptic units, {spikes} spikes ({len(trains.post_ms)} post), "
        f"1 ms bins; torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"load {os.getloadavg()[0]:.2f}"
    )
    print(f"  static GLM:                  {seconds_per_evaluation(model(trains, None), args.repeats):7.3f} s")
    for name in args.rules.split(","):
        glm = model(trains, name)
        print(f"  {name:<8} ({glm.method}):{'':<12}{seconds_per_evaluation(glm, args.repeats):7.3f} s")
    print(f"  delta    (ode):{'':<15}{seconds_per_evaluation(model(trains, 'delta', 'ode'), args.repeats):7.3f} s")
    clock = plastic.check_trains(recording(args.clock_minutes, args.units))
    for dt_ms in (0.1, 0.5):
        took = seconds_per_evaluation(model(clock, "delta", "scan", dt_ms=dt_ms), 1)
        print(
            f"  delta    (Euler scan, dt {dt_ms:g} ms, {args.clock_minutes:g} min): {took:7.3f} s, "
            f"about {took * args.minutes / args.clock_minutes:7.1f} s scaled to {args.minutes:g} min"
        )
    short = recording(args.loop_seconds / 60.0, args.units)
    short_trains = plastic.check_trains(short)
    for name in [*args.rules.split(","), "delta"]:
        glm = model(short_trains, name, "loop")
        loop = seconds_per_evaluation(glm, 1)
        assert glm.events is not None
        full = model(trains, name, "loop").events
        assert full is not None
        scale = full.kinds.shape[1] / glm.events.kinds.shape[1]
        print(
            f"  {name:<8} (event loop, {args.loop_seconds:g} s recording): {loop:7.3f} s, "
            f"about {loop * scale:7.1f} s scaled to the full recording"
        )


if __name__ == "__main__":
    main()
