"""Cost of neurofwp's abstractions on the spiking side.

1. song2000: wall time of ``neurofwp.networks.song2000.simulate`` vs a plain Brian2 script
   with the same equations (Brian2's own STDP example), same duration and seed, after a
   warm-up run of each (Cython compiled and cached). Target ratio <= 1.1.
2. Protocol throughput: protocol x parameter-set evaluations per second of the torch
   backend (one batched call) vs the brian2 backend on the same protocols (Sjostrom 2001,
   triplet rule).

Usage: python benchmarks/song2000.py [--duration 10] [--sets 256]
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def plain_brian2(duration_s: float, seed: int) -> float:
    """Brian2's STDP example (examples/synapses/STDP.py), written out directly; returns wall seconds of run()."""
    import brian2 as b2
    from brian2 import Hz, NeuronGroup, PoissonGroup, SpikeMonitor, StateMonitor, Synapses, ms, mV, second

    b2.seed(seed)
    np.random.seed(seed)
    # The names below are read by Brian2 from this namespace when it parses the equations
    # (net.run() takes the caller's locals), hence the noqa: they are used, just not by Python.
    N, taum, taupre, taupost, Ee, vt, vr, El, taue = (  # noqa: F841
        1000,
        10 * ms,
        20 * ms,
        20 * ms,
        0 * mV,
        -54 * mV,
        -60 * mV,
        -74 * mV,
        5 * ms,
    )
    F, gmax = 15 * Hz, 0.01
    dApre = 0.01 * gmax
    dApost = -dApre * taupre / taupost * 1.05  # noqa: F841
    clock = b2.Clock(dt=0.1 * ms)
    inputs = PoissonGroup(N, rates=F, clock=clock)
    neurons = NeuronGroup(
        1,
        "dv/dt = (ge * (Ee-v) + El - v) / taum : volt\ndge/dt = -ge / taue : 1",
        threshold="v>vt",
        reset="v = vr",
        method="euler",
        clock=clock,
    )
    neurons.v = vr
    S = Synapses(
        inputs,
        neurons,
        """w : 1
                    dApre/dt = -Apre / taupre : 1 (event-driven)
                    dApost/dt = -Apost / taupost : 1 (event-driven)""",
        on_pre="ge += w\nApre += dApre\nw = clip(w + Apost, 0, gmax)",
        on_post="Apost += dApost\nw = clip(w + Apre, 0, gmax)",
        clock=clock,
    )
    S.connect()
    S.w = "rand() * gmax"
    weights = StateMonitor(S, "w", record=True, dt=1 * second)
    spikes = SpikeMonitor(neurons)
    net = b2.Network(inputs, neurons, S, weights, spikes)
    start = time.perf_counter()
    net.run(duration_s * second)
    return time.perf_counter() - start


def ours(duration_s: float, seed: int) -> float:
    from neurofwp.networks import song2000

    start = time.perf_counter()
    song2000.simulate(duration_s, seed=seed, show_progress=False)
    return time.perf_counter() - start


def throughput(sets: int) -> None:
    import torch

    from neurofwp import data
    from neurofwp.plasticity import brian2_backend, torch_backend

    protocols = data.protocols("sjostrom2001")
    rng = np.random.default_rng(0)
    params = {
        "A3_plus": rng.uniform(0, 1e-2, sets),
        "A2_minus": rng.uniform(0, 1e-2, sets),
        "tau_y_ms": rng.uniform(20, 200, sets),
    }
    tensors = {k: torch.as_tensor(v) for k, v in params.items()}
    torch_backend.simulate("triplet", protocols, tensors)  # warm-up
    start = time.perf_counter()
    torch_backend.simulate("triplet", protocols, tensors)
    torch_rate = len(protocols) * sets / (time.perf_counter() - start)
    few = {k: v[:8] for k, v in params.items()}
    brian2_backend.simulate("triplet", protocols, few)  # compile
    start = time.perf_counter()
    brian2_backend.simulate("triplet", protocols, few)
    brian_rate = len(protocols) * 8 / (time.perf_counter() - start)
    print(f"protocol x parameter-set evaluations per second (triplet, Sjostrom 2001, {len(protocols)} protocols):")
    print(f"  torch backend, {sets} sets in one call: {torch_rate:,.0f}/s")
    print(f"  brian2 backend, 8 sets side by side:  {brian_rate:,.1f}/s   -> torch {torch_rate / brian_rate:,.0f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=10.0, help="simulated seconds per song2000 run")
    parser.add_argument("--sets", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    plain_brian2(0.2, 0)
    ours(0.2, 0)  # compile both
    plain, mine = [], []
    for r in range(args.rounds):  # interleaved: the machine's speed drifts
        plain.append(plain_brian2(args.duration, r))
        mine.append(ours(args.duration, r))
    p, m = np.median(plain), np.median(mine)
    print(f"song2000, {args.duration:g} s simulated, median of {args.rounds} interleaved runs:")
    print(f"  plain Brian2 script: {p:.2f} s ({args.duration / p:.2f} simulated s per wall s)")
    print(f"  neurofwp song2000:   {m:.2f} s ({args.duration / m:.2f} simulated s per wall s)")
    print(f"  ratio neurofwp / plain: {m / p:.3f} (target <= 1.1)")
    throughput(args.sets)


if __name__ == "__main__":
    main()
