"""Short-term plasticity: the torch backend's batched speed, and the cost of deriving the Brian2 synapse.

1. torch: responses of 10^4 Tsodyks–Markram parameter sets to a protocol set of 20-spike trains
   (regular at 5, 10, 20, 50 and 100 Hz, and a Poisson train), without and with gradients.
2. Brian2: a network of 1000 Poisson inputs onto 1000 synapses, run once with the synapse that
   neurofwp derives from the rule file and once with a Tsodyks–Markram synapse written by hand
   (the convention of the Brian2 documentation), each on its own; the ratio of their run times.

Usage: python benchmarks/short_term.py [--repeats N]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from neurofwp.plasticity import get_rule, torch_backend
from neurofwp.plasticity.brian2_backend import model_equations, pathway_code
from neurofwp.protocols import make_train

SETS = 10_000
SYNAPSES = 1000
DURATION_S = 20.0
RATE_HZ = 20.0


def protocols():
    trains = [make_train(f"{hz} Hz", np.round(np.arange(20) * 1000.0 / hz, 1)) for hz in (5, 10, 20, 50, 100)]
    generator = np.random.default_rng(0)
    poisson = np.unique(np.round(np.cumsum(generator.exponential(50.0, 20)), 1))
    return [*trains, make_train("poisson 20 Hz", poisson)]


def torch_speed(repeats: int) -> None:
    generator = np.random.default_rng(1)
    values = {
        "U": torch.tensor(generator.uniform(0.01, 0.9, SETS)),
        "tau_rec_ms": torch.tensor(generator.uniform(50, 2000, SETS)),
        "tau_facil_ms": torch.tensor(generator.uniform(0, 1000, SETS)),
    }
    trains = protocols()
    torch_backend.simulate_responses("tsodyks-markram", trains, values)  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        torch_backend.simulate_responses("tsodyks-markram", trains, values)
        times.append(time.perf_counter() - start)
    leaves = {k: v.clone().requires_grad_(True) for k, v in values.items()}
    gradient_times = []
    for _ in range(repeats):
        start = time.perf_counter()
        out = torch_backend.simulate_responses("tsodyks-markram", trains, leaves)
        torch.autograd.grad(torch.nan_to_num(out).sum(), list(leaves.values()))
        gradient_times.append(time.perf_counter() - start)
    print(
        f"torch: {SETS} parameter sets x {len(trains)} trains of 20 spikes, {torch.get_num_threads()} threads: "
        f"{min(times) * 1000:.0f} ms (median {np.median(times) * 1000:.0f} ms); with gradients "
        f"{min(gradient_times) * 1000:.0f} ms (median {np.median(gradient_times) * 1000:.0f} ms)"
    )


HAND_WRITTEN = {  # Brian2's documentation convention: response read before the updates
    "model": """w : 1
response : 1
U : 1 (constant)
tau_facil : second (constant)
tau_rec : second (constant)
A : 1 (constant)
du/dt = (U - u) / tau_facil : 1 (event-driven)
dR/dt = (1 - R) / tau_rec : 1 (event-driven)""",
    "on_pre": """response = A * u * R
R = R * (1 - u)
u = u + U * (1 - u)""",
}


def brian2_run(model: str, on_pre: str, seed: int) -> float:
    import brian2 as b2

    b2.seed(seed)
    network = b2.Network()
    source = b2.PoissonGroup(SYNAPSES, RATE_HZ * b2.Hz)
    target = b2.NeuronGroup(SYNAPSES, "v : 1")
    synapses = b2.Synapses(source, target, model=model, on_pre=on_pre)
    synapses.connect(j="i")
    synapses.U = 0.3
    synapses.tau_rec = 500 * b2.ms
    synapses.tau_facil = 200 * b2.ms
    synapses.A = 1.0
    synapses.u = "U"
    synapses.R = 1.0
    network.add(source, target, synapses)
    network.run(10 * b2.ms)  # compile outside the timing
    start = time.perf_counter()
    network.run(DURATION_S * b2.second)
    return time.perf_counter() - start


def brian2_overhead(repeats: int) -> None:
    rule = get_rule("tsodyks-markram")
    derived = (model_equations(rule), pathway_code(rule, "pre"))
    generated, hand = [], []
    for seed in range(repeats):  # interleaved, so that a slow phase of the machine hits both
        generated.append(brian2_run(*derived, seed))
        hand.append(brian2_run(HAND_WRITTEN["model"], HAND_WRITTEN["on_pre"], seed))
    ratio = np.median(generated) / np.median(hand)
    print(
        f"Brian2, {SYNAPSES} synapses, {RATE_HZ:g} Hz Poisson inputs, {DURATION_S:g} s: derived synapse "
        f"{np.median(generated):.2f} s, hand-written {np.median(hand):.2f} s (medians of {repeats}); ratio {ratio:.3f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch_speed(args.repeats)
    brian2_overhead(args.repeats)


if __name__ == "__main__":
    main()
