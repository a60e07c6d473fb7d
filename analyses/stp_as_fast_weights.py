"""Short-term plasticity as fast weights: the Tsodyks–Markram efficacy written with the tensor core's delta rule.
==============================================================================================================

Between spikes the depletion F = 1 − R decays to 0 (τ_D) and at a spike F ← F + u (1 − F); the
facilitation G = (u − U)/(1 − U) decays to 0 (τ_F) and at a spike G ← G + U (1 − G). Each is a
one-dimensional fast weight written by the decayed delta rule of :func:`neurofwp.tensor.delta_rule`
with key = value = query = 1, forget gate α_n = exp(−Δ_n/τ) over the interval before spike n and
learning rate β_n (u_n for F, U for G): S_n = α_n S_{n−1} + β_n (1 − α_n S_{n−1}). The efficacy
of spike n, read before its own write, is

    A · (U + (1 − U) α^F_n G_{n−1}) · (1 − α^D_n F_{n−1}).

This script computes both readings for a Poisson train (the spiking rule through
:func:`neurofwp.plasticity.simulate_responses`, the tensor reading through
:func:`neurofwp.tensor.delta_rule`), prints their largest difference and draws them.

Usage: python analyses/stp_as_fast_weights.py [--out DIR] [--seed S]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from neurofwp import plotting
from neurofwp.plasticity import simulate_responses
from neurofwp.protocols import make_train
from neurofwp.tensor import delta_rule

RATE_HZ = 20.0
SPIKES = 60
SYNAPSES = {  # Tsodyks, Pawelzik & Markram (1998): U, tau_rec_ms, tau_facil_ms
    "depressing": (0.5, 800.0, 0.0),
    "facilitating": (0.03, 130.0, 530.0),
}


def poisson_train(seed: int, rate_hz: float = RATE_HZ, spikes: int = SPIKES) -> np.ndarray:
    generator = np.random.default_rng(seed)
    return np.round(np.cumsum(2.0 + generator.exponential(1000.0 / rate_hz - 2.0, spikes)), 1)


def scalar_delta_rule(beta: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """S_n = α_n S_{n−1} + β_n (1 − α_n S_{n−1}) from S_0 = 0, by the tensor core's delta rule (one dimension)."""
    ones = torch.ones(1, len(beta), 1, 1, dtype=torch.float64)
    out, _state = delta_rule(
        ones,
        ones,
        ones,
        torch.as_tensor(beta, dtype=torch.float64).reshape(1, -1, 1),
        mode="recurrent",
        decay=torch.as_tensor(alpha, dtype=torch.float64).reshape(1, -1, 1),
    )
    return out.reshape(-1).numpy()


def fast_weight_efficacy(times_ms: np.ndarray, U: float, tau_rec: float, tau_facil: float, A: float = 1.0):
    """The efficacy of every spike and the two fast weights (after each spike's write), from the tensor core."""
    gaps = np.diff(times_ms, prepend=times_ms[0])
    alpha_d = np.exp(-gaps / tau_rec)
    alpha_f = np.exp(-gaps / tau_facil) if tau_facil > 0 else (gaps <= 0).astype(float)
    alpha_d[0] = alpha_f[0] = 1.0  # nothing stored before the first spike
    # the tensor core's forget gate lies in (0, 1]: 1e-300 forgets all within float precision (τ_F = 0)
    alpha_d, alpha_f = np.maximum(alpha_d, 1e-300), np.maximum(alpha_f, 1e-300)
    G = scalar_delta_rule(np.full(len(times_ms), U), alpha_f)
    u = U + (1.0 - U) * alpha_f * np.concatenate([[0.0], G[:-1]])  # read before spike n's write
    F = scalar_delta_rule(u, alpha_d)
    R = 1.0 - alpha_d * np.concatenate([[0.0], F[:-1]])
    return A * u * R, F, G


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.strip().split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("results/stp_as_fast_weights"))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    times = poisson_train(args.seed)
    train = [make_train("poisson", times)]
    with plotting.style():
        fig = plotting.figure(9.0, 5.0)
        axes = fig.subplots(2, 2, sharex=True)
        for column, (name, (U, tau_rec, tau_facil)) in enumerate(SYNAPSES.items()):
            values = {"U": U, "tau_rec_ms": tau_rec, "tau_facil_ms": tau_facil}
            spiking = simulate_responses("tsodyks-markram", train, values)[0, :, 0]
            efficacy, F, G = fast_weight_efficacy(times, U, tau_rec, tau_facil)
            print(
                f"{name}: largest |spiking − fast-weight| efficacy difference {np.max(np.abs(spiking - efficacy)):.2e}"
            )
            top, bottom = axes[0, column], axes[1, column]
            top.vlines(times, 0, spiking, color="0.6", lw=0.8, label="spiking rule: A·u·R")
            top.plot(times, efficacy, "o", ms=3, mfc="none", color="tab:red", label="tensor delta rule")
            top.set_title(f"{name} (U = {U:g}, τ_D = {tau_rec:g} ms, τ_F = {tau_facil:g} ms)")
            top.set_ylabel("efficacy")
            bottom.step(times, F, where="post", label="depletion F = 1 − R (β = u)")
            bottom.step(times, G, where="post", label="facilitation G = (u − U)/(1 − U) (β = U)")
            bottom.set_xlabel("time (ms)")
            bottom.set_ylabel("fast weight after the write")
            bottom.set_ylim(0.0, 1.0)
        axes[0, 0].legend(frameon=False, fontsize=7)
        axes[1, 0].legend(frameon=False, fontsize=7)
    paths = plotting.save(fig, args.out / "stp_as_fast_weights")
    print("wrote " + ", ".join(str(p) for p in paths))


if __name__ == "__main__":
    main()
