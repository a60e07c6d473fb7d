r"""How much the efficacy of a short-term plastic synapse tells about the recent timing of its input.
=================================================================================================

Every presynaptic spike of a Tsodyks–Markram synapse (neurofwp's ``tsodyks-markram`` rule)
delivers the efficacy :math:`E_k = A\,u_k R_k`, read before the spike's own updates. The state
``(u, R)`` is rewritten by every spike and relaxes between spikes, so :math:`E_k` is a function
of the spike's past: of the interval just before it, :math:`\Delta_{k,1} = t_k - t_{k-1}` (lag 1),
and, more weakly, of the intervals before that, :math:`\Delta_{k,\ell} = t_{k-\ell+1} - t_{k-\ell}`
(lag ℓ). This script measures how much: for each synapse type and input train,

1. the mutual information :math:`I(E; \log \Delta_\ell)` in bits, and
2. the fraction of the variance of :math:`\log \Delta_\ell` that a nonparametric decoder reads
   from :math:`E` on held-out spikes (:math:`R^2`).

**Synapses** (one ``simulate_responses`` call, one parameter set each, A = 1): depressing
(U 0.5, τ_rec 800 ms, τ_F 0) and facilitating (U 0.03, τ_rec 130 ms, τ_F 530 ms) of Tsodyks,
Pawelzik & Markram (1998); the four types of Maass, Natschläger & Markram (2002): EE
(0.5/1100/50), EI (0.05/125/1200), IE (0.25/700/20), II (0.32/144/60). A static synapse
(efficacy A at every spike, so :math:`I = 0`) is the reference.

**Trains** (times on the 0.1 ms grid, ``--seconds`` long): a Poisson train at ``--rate`` Hz with
a refractory minimum of 2 ms (intervals 2 ms + exponential), and a regular train at the same
rate, spikes at (k − 1/2)/r jittered by a Gaussian of SD 5 ms (clipped to ±(period/2 − 1 ms), so
the order is kept). A perfectly regular train has one interval only: its entropy is 0, and
:math:`I(E; \Delta) \le H(\Delta) = 0`; there is nothing to decode, hence the jitter. The
jittered intervals :math:`T + j_k - j_{k-1}` of successive spikes are anticorrelated
(ρ = −1/2), so information about lag 2 there is partly information about lag 1. The spikes of
the first 5 s are left out (the synapse starts at rest, u = U, R = 1, not in its stationary
regime).

**Estimator of the mutual information.** Both variables are binned into B (default 8)
equally populated bins, at their empirical quantiles :math:`q_j` (j/B, j = 1 … B − 1): the bin of
:math:`x_i` is :math:`b(x_i) = \#\{j : q_j \le x_i\}` (tied values share a bin, so a constant
gets a single bin). The plug-in estimate from the N pairs is

.. math:: \hat I = \sum_{a,b} \hat p_{ab} \log_2 \frac{\hat p_{ab}}{\hat p_a\,\hat p_b},
    \qquad \hat p_{ab} = \frac{n_{ab}}{N},

and it is biased upwards by about :math:`(B-1)^2 / (2N\ln 2)` bits for independent variables
(Miller–Madow; Panzeri & Treves 1996). The reported value is shuffle-corrected:

.. math:: I = \hat I(x, y) - \frac1S \sum_{s=1}^{S} \hat I(x, y_{\pi_s}),

with S (default 50) random permutations :math:`\pi_s` that destroy the pairing but keep both
marginals; their SD is stored as the null's spread. With equally populated bins
:math:`I \le \log_2 B` (3 bits for B = 8), reached when the bin of one variable fixes the bin of the
other, as for any strictly monotone relation; for such a relation the correction lowers the
estimate by about :math:`(B-1)^2/(2N\ln 2)` (0.009 bits for B = 8, N = 4000). Binning on ranks
makes I invariant under monotone transforms of either variable: :math:`I(E; \log\Delta) = I(E; \Delta)`.

**Decoder.** k-nearest-neighbour regression of :math:`y = \ln(\Delta/\text{ms})` on E (in one
dimension, ties at the k-th distance included), trained on the first half of the spikes and
tested on the second half; k is chosen from (4, 8, …, 128) by leave-one-out error on the first
half. :math:`R^2 = 1 - \sum (y - \hat y)^2 / \sum (y - \bar y)^2` over the test half (:math:`\bar y`
its own mean; a decoder worse than that mean gives :math:`R^2 < 0`). kNN makes no assumption of
monotonicity (a facilitating synapse's efficacy need not be monotone in Δ).

With U = 1 and τ_F = 0 every spike releases all resources, :math:`E_k = A(1 - e^{-\Delta_{k,1}/\tau_\text{rec}})`
exactly: a strictly monotone function of the last interval (I = the bound, :math:`R^2 \approx 1`),
and independent of lag 2 and beyond (tests/test_stp_memory.py checks all three).

Writes ``stp_memory.nc`` (dims synapse, train, lag and spike; MI in bits, :math:`R^2`, the
efficacies and intervals themselves) and ``stp_memory.png``/``.svg``, and prints a table.

Usage: python analyses/stp_memory.py [--out results/stp_memory] [--seconds 200] [--rate 20] [--seed 1]
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import NamedTuple

import numpy as np
import xarray as xr

from neurofwp import plotting
from neurofwp.io import save_netcdf
from neurofwp.plasticity import simulate_responses
from neurofwp.protocols import make_train

SECONDS = 200.0  # duration of each train (s)
RATE_HZ = 20.0  # mean rate of both trains
REFRACTORY_MS = 2.0  # shortest Poisson interval
JITTER_SD_MS = 5.0  # SD of the Gaussian jitter of the regular train
WARMUP_S = 5.0  # spikes before this are left out (start from rest)
BINS = 8  # quantile bins per variable: MI <= log2(BINS) bits
SHUFFLES = 50  # permutations for the bias correction
LAGS = (1, 2, 3)  # interval ℓ spikes back: lag 1 = the interval just before the spike
NEIGHBOURS = (4, 8, 16, 32, 64, 128)  # candidate k of the kNN decoder
SEED = 1
A = 1.0  # absolute efficacy: efficacies below are in units of A
TPM1998 = "Tsodyks, Pawelzik & Markram (1998) Neural Comput 10:821"
MNM2002 = "Maass, Natschlaeger & Markram (2002) Neural Comput 14:2531"
# name: (U, tau_rec_ms, tau_facil_ms, source); the last is the static reference (not a TM synapse)
SYNAPSES = {
    "depressing": (0.5, 800.0, 0.0, TPM1998),
    "facilitating": (0.03, 130.0, 530.0, TPM1998),
    "maass_ee": (0.5, 1100.0, 50.0, MNM2002),
    "maass_ei": (0.05, 125.0, 1200.0, MNM2002),
    "maass_ie": (0.25, 700.0, 20.0, MNM2002),
    "maass_ii": (0.32, 144.0, 60.0, MNM2002),
}
STATIC = "static"
TRAINS = ("poisson", "regular")


# ---------------------------------------------------------------- trains


def poisson_train(seconds: float, rate_hz: float, rng: np.random.Generator, refractory_ms: float = REFRACTORY_MS):
    """Spike times (ms, 0.1 ms grid) of a Poisson train with a refractory minimum: intervals d + Exp(1/r − d)."""
    mean_ms = 1000.0 / rate_hz
    if mean_ms <= refractory_ms:
        raise ValueError(f"a rate of {rate_hz} Hz leaves no time beyond the {refractory_ms} ms refractory minimum")
    count = int(seconds * rate_hz * 1.2 + 10 * math.sqrt(seconds * rate_hz) + 10)
    intervals = np.round(refractory_ms + rng.exponential(mean_ms - refractory_ms, count), 1)
    intervals = np.maximum(intervals, refractory_ms)
    times = np.round(np.cumsum(intervals), 1)
    return times[times <= seconds * 1000.0]


def regular_train(seconds: float, rate_hz: float, rng: np.random.Generator, jitter_sd_ms: float = JITTER_SD_MS):
    """Spike times (ms, 0.1 ms grid) at ``(k - 1/2) / r`` (k = 1 … r·seconds) plus Gaussian jitter.

    The jitter is clipped to ±(period/2 − 1 ms): the spikes keep their order and stay inside the train.
    """
    period = 1000.0 / rate_hz
    count = int(seconds * rate_hz)
    bound = max(period / 2 - 1.0, 0.0)
    jitter = np.clip(rng.normal(0.0, jitter_sd_ms, count), -bound, bound)
    return np.round(period * (np.arange(count) + 0.5) + jitter, 1)


def intervals_before(times: np.ndarray, lag: int) -> np.ndarray:
    """For every spike k, the interval ``lag`` spikes back, ``t[k-lag+1] - t[k-lag]`` (ms); NaN where there is none.

    Not rounded to the 0.1 ms grid: intervals equal on the grid differ by float rounding exactly as
    the simulator's do, so a tie is broken the same way in the interval and in the efficacy.
    """
    times = np.asarray(times, dtype=float)
    result = np.full(len(times), np.nan)
    if len(times) > lag:
        result[lag:] = times[1 : len(times) - lag + 1] - times[: len(times) - lag]
    return result


# ---------------------------------------------------------------- estimator


def quantile_bins(values, bins: int) -> np.ndarray:
    """The bin (0 … bins − 1) of every value: the number of the empirical j/B quantiles (j = 1 … B − 1) ≤ it."""
    values = np.asarray(values, dtype=float)
    edges = np.quantile(values, np.arange(1, bins) / bins)
    return np.searchsorted(edges, values, side="right")


def plugin_information(a: np.ndarray, b: np.ndarray, bins: int) -> float:
    """Plug-in mutual information (bits) of two arrays of bin indices in 0 … bins − 1."""
    joint = np.bincount(a * bins + b, minlength=bins * bins).reshape(bins, bins) / len(a)
    pa, pb = joint.sum(axis=1), joint.sum(axis=0)
    nonzero = joint > 0
    ratio = joint[nonzero] / np.outer(pa, pb)[nonzero]
    return float(max(np.sum(joint[nonzero] * np.log2(ratio)), 0.0))


class Information(NamedTuple):
    bits: float  # shuffle-corrected estimate
    plugin_bits: float  # plug-in estimate
    null_bits: float  # mean plug-in estimate over the shuffles (the subtracted bias)
    null_sd_bits: float  # SD over the shuffles


def information(efficacy, intervals, bins: int = BINS, shuffles: int = SHUFFLES, seed: int = SEED) -> Information:
    """Shuffle-corrected mutual information (bits) between two samples, on ``bins`` quantile bins each.

    Pairs with a non-finite value are dropped. See the module docstring for the equations.
    """
    x, y = np.asarray(efficacy, dtype=float), np.asarray(intervals, dtype=float)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"efficacy and intervals must be 1-d arrays of one length, got {x.shape} and {y.shape}")
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    if len(x) < bins:
        raise ValueError(f"{len(x)} pairs are too few for {bins} bins")
    a, b = quantile_bins(x, bins), quantile_bins(y, bins)
    plugin = plugin_information(a, b, bins)
    rng = np.random.default_rng(seed)
    null = np.array([plugin_information(a, rng.permutation(b), bins) for _ in range(shuffles)])
    bias = float(null.mean()) if shuffles else 0.0
    spread = float(null.std(ddof=1)) if shuffles > 1 else math.nan
    return Information(plugin - bias, plugin, bias, spread)


# ---------------------------------------------------------------- decoder


def _knn_mean(xs: np.ndarray, csum: np.ndarray, queries: np.ndarray, k: int):
    """Sum and count of the training targets within the k-th nearest distance of each query (ties included)."""
    n = len(xs)
    position = np.searchsorted(xs, queries)
    starts = position[:, None] + np.arange(-k, 1)[None, :]  # windows [s, s + k) of k consecutive sorted points
    valid = (starts >= 0) & (starts + k <= n)
    first = xs[np.clip(starts, 0, n - 1)]
    last = xs[np.clip(starts + k - 1, 0, n - 1)]
    radius = np.maximum(queries[:, None] - first, last - queries[:, None])
    radius = np.where(valid, radius, np.inf).min(axis=1)
    tolerance = 1e-12 * max(float(np.abs(xs).max()), 1e-300)
    lo = np.searchsorted(xs, queries - radius - tolerance, side="left")
    hi = np.searchsorted(xs, queries + radius + tolerance, side="right")
    return csum[hi] - csum[lo], hi - lo


def decoding_r2(efficacy, intervals, neighbours=NEIGHBOURS) -> tuple[float, int]:
    """Held-out R² of ``ln(intervals)`` decoded from ``efficacy`` by kNN regression, and the k chosen.

    Trained on the first half of the (finite) pairs, tested on the second; k is the candidate with
    the smallest leave-one-out squared error on the first half.
    """
    x, y = np.asarray(efficacy, dtype=float), np.asarray(intervals, dtype=float)
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], np.log(y[keep])
    half = len(x) // 2
    order = np.argsort(x[:half], kind="stable")
    xs, ys = x[:half][order], y[:half][order]
    csum = np.concatenate([[0.0], np.cumsum(ys)])
    candidates = [k for k in neighbours if k + 1 < half]
    if not candidates:
        raise ValueError(f"{len(x)} pairs are too few for a decoder with k >= {min(neighbours)}")
    errors = []
    for k in candidates:  # leave-one-out: k + 1 neighbours of a training point include itself
        total, count = _knn_mean(xs, csum, xs, k + 1)
        errors.append(np.mean(((total - ys) / (count - 1) - ys) ** 2))
    k = candidates[int(np.argmin(errors))]
    test_x, test_y = x[half:], y[half:]
    total, count = _knn_mean(xs, csum, test_x, k)
    residual = np.sum((test_y - total / count) ** 2)
    spread = np.sum((test_y - test_y.mean()) ** 2)
    return (float(1.0 - residual / spread) if spread > 0 else math.nan), k


# ---------------------------------------------------------------- simulation and analysis


def efficacies(trains: list[np.ndarray]) -> np.ndarray:
    """Efficacy of every spike, ``[train, spike, synapse]`` (NaN-padded), synapses in the order of SYNAPSES + static.

    The Tsodyks–Markram types run as parameter sets of one ``simulate_responses`` call; the static
    synapse delivers A at every spike.
    """
    protocols = [make_train(f"train {i}", times) for i, times in enumerate(trains)]
    values = {
        name: np.array([parameters[i] for parameters in SYNAPSES.values()])
        for i, name in enumerate(("U", "tau_rec_ms", "tau_facil_ms"))
    }
    responses = simulate_responses("tsodyks-markram", protocols, {**values, "A": A})
    static = np.where(np.isfinite(responses[:, :, :1]), A, np.nan)
    return np.concatenate([responses, static], axis=2)


def run(seconds: float = SECONDS, rate_hz: float = RATE_HZ, seed: int = SEED) -> xr.Dataset:
    """Simulate both trains through every synapse and measure the information; see the module docstring."""
    if seconds * 1000.0 <= WARMUP_S * 1000.0 + 10 * 1000.0 / rate_hz:
        raise ValueError(f"--seconds {seconds} leaves too few spikes after the {WARMUP_S} s warm-up")
    poisson_rng, regular_rng = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(2))
    trains = [poisson_train(seconds, rate_hz, poisson_rng), regular_train(seconds, rate_hz, regular_rng)]
    responses = efficacies(trains)
    names = [*SYNAPSES, STATIC]
    kept = [times >= WARMUP_S * 1000.0 for times in trains]  # warm-up 5 s >> max(LAGS) spikes
    length = max(int(mask.sum()) for mask in kept)
    efficacy = np.full((len(TRAINS), length, len(names)), np.nan)
    isi = np.full((len(TRAINS), len(LAGS), length), np.nan)
    spike_time = np.full((len(TRAINS), length), np.nan)
    for t, (times, mask) in enumerate(zip(trains, kept, strict=True)):
        n = int(mask.sum())
        efficacy[t, :n] = responses[t, : len(times)][mask]
        spike_time[t, :n] = times[mask]
        for j, lag in enumerate(LAGS):
            isi[t, j, :n] = intervals_before(times, lag)[mask]

    shape = (len(names), len(TRAINS), len(LAGS))
    mi, plugin, null_sd, r2, k_chosen = (np.full(shape, np.nan) for _ in range(5))
    for s in range(len(names)):
        for t in range(len(TRAINS)):
            for j in range(len(LAGS)):
                result = information(efficacy[t, :, s], isi[t, j], seed=seed)
                mi[s, t, j], plugin[s, t, j], null_sd[s, t, j] = result.bits, result.plugin_bits, result.null_sd_bits
                r2[s, t, j], k_chosen[s, t, j] = decoding_r2(efficacy[t, :, s], isi[t, j])

    parameters = np.array([SYNAPSES[n][:3] if n in SYNAPSES else (np.nan,) * 3 for n in names], dtype=float)
    dims = ("synapse", "train", "lag")
    last = isi[:, 0]
    cv = [float(np.nanstd(row) / np.nanmean(row)) for row in last]
    dataset = xr.Dataset(
        {
            "mi": (dims, mi, {"units": "bit", "long_name": "I(efficacy; log interval), shuffle-corrected"}),
            "mi_plugin": (dims, plugin, {"units": "bit", "long_name": "I(efficacy; log interval), plug-in"}),
            "mi_null_sd": (dims, null_sd, {"units": "bit", "long_name": "SD of the plug-in MI over shuffles"}),
            "r2": (dims, r2, {"units": "1", "long_name": "held-out R^2 of ln(interval) decoded from the efficacy"}),
            "decoder_k": (dims, k_chosen.astype(int), {"units": "1", "long_name": "neighbours of the kNN decoder"}),
            "efficacy": (
                ("train", "spike", "synapse"),
                efficacy,
                {"units": "1", "long_name": "efficacy A*u*R of each spike after the warm-up, in units of A"},
            ),
            "interval_ms": (
                ("train", "lag", "spike"),
                isi,
                {"units": "ms", "long_name": "the interval `lag` spikes back (lag 1: just before the spike)"},
            ),
            "spike_time_ms": (("train", "spike"), spike_time, {"units": "ms"}),
        },
        coords={
            "synapse": names,
            "train": list(TRAINS),
            "lag": ("lag", list(LAGS), {"units": "1", "long_name": "intervals back from the spike"}),
            "U": ("synapse", parameters[:, 0], {"units": "1", "long_name": "utilisation at rest (NaN: static)"}),
            "tau_rec_ms": ("synapse", parameters[:, 1], {"units": "ms"}),
            "tau_facil_ms": ("synapse", parameters[:, 2], {"units": "ms", "long_name": "0: no facilitation"}),
            "source": ("synapse", [SYNAPSES[n][3] if n in SYNAPSES else "reference" for n in names]),
            "n_spikes": ("train", [int(mask.sum()) for mask in kept], {"units": "1", "long_name": "after warm-up"}),
            "interval_cv": ("train", cv, {"units": "1", "long_name": "CV of the intervals"}),
        },
        attrs={
            "title": "information the short-term plastic efficacy holds about recent input intervals",
            "rule": "tsodyks-markram",
            "seconds": seconds,
            "rate_hz": rate_hz,
            "refractory_ms": REFRACTORY_MS,
            "jitter_sd_ms": JITTER_SD_MS,
            "warmup_s": WARMUP_S,
            "bins": BINS,
            "shuffles": SHUFFLES,
            "upper_bound_bits": math.log2(BINS),
            "seed": seed,
            "A": A,
            "estimator": (
                f"plug-in MI on {BINS} equally populated (quantile) bins of each variable minus its mean over "
                f"{SHUFFLES} shuffles; decoder: kNN regression of ln(interval) on efficacy, k by leave-one-out on "
                "the first half of the spikes, R^2 on the second half"
            ),
            "written_by": "analyses/stp_memory.py",
        },
    )
    return dataset


# ---------------------------------------------------------------- output


def table(dataset: xr.Dataset) -> str:
    """A fixed-width table: MI (bits) and R² per synapse and train, lags 1 and 2 (and more if present)."""
    lags = [int(lag) for lag in dataset.lag.values]
    header = f"{'synapse':<13} {'U':>5} {'tau_rec':>7} {'tau_F':>6}"
    for train in dataset.train.values:
        header += "  " + "  ".join(f"{f'{train[:3]} I{lag}':>8} {'R2':>5}" for lag in lags)
    lines = [header, "-" * len(header)]
    for synapse in dataset.synapse.values:
        row = dataset.sel(synapse=synapse)
        U, tau_rec, tau_f = (float(row[c]) for c in ("U", "tau_rec_ms", "tau_facil_ms"))
        line = (
            f"{synapse:<13} {U:>5.2f} {tau_rec:>7.0f} {tau_f:>6.0f}"
            if math.isfinite(U)
            else f"{synapse:<13}" + " " * 21
        )
        for train in dataset.train.values:
            cells = row.sel(train=train)
            line += "  " + "  ".join(
                f"{float(cells.mi.sel(lag=lag)):>8.3f} {float(cells.r2.sel(lag=lag)):>5.2f}" for lag in lags
            )
        lines.append(line)
    counts = ", ".join(
        f"{t}: {int(n)} spikes (CV {float(c):.2f})"
        for t, n, c in zip(dataset.train.values, dataset.n_spikes.values, dataset.interval_cv.values, strict=True)
    )
    lines.append(
        f"I in bits (bound log2 {int(dataset.attrs['bins'])} = {dataset.attrs['upper_bound_bits']:.0f}); {counts}"
    )
    return "\n".join(lines)


def draw(dataset: xr.Dataset, stem: Path) -> list[Path]:
    """Left: relative efficacy against the last interval (Poisson train); middle: MI; right: R² (lag 1)."""
    names = list(dataset.synapse.values)
    x = np.arange(len(names))
    colours = {"poisson": "tab:blue", "regular": "tab:orange"}
    with plotting.style():
        fig = plotting.figure(13.0, 3.6)
        scatter, bars, decoding = fig.subplots(1, 3, gridspec_kw={"width_ratios": [1.0, 1.3, 1.3]})
        poisson = dataset.sel(train="poisson")
        for synapse, colour in (("depressing", "tab:red"), ("facilitating", "tab:green")):
            relative = poisson.efficacy.sel(synapse=synapse) / (dataset.A * poisson.U.sel(synapse=synapse))
            interval = poisson.interval_ms.sel(lag=1)
            mi = float(poisson.mi.sel(synapse=synapse, lag=1))
            scatter.scatter(interval, relative, s=3, alpha=0.3, color=colour, lw=0, label=f"{synapse} ({mi:.2f} bit)")
        scatter.set(xscale="log", yscale="log", xlabel="last interval (ms)", ylabel="efficacy / first response (A·U)")
        scatter.set_title(f"Poisson train, {dataset.rate_hz:g} Hz", fontsize="medium")
        scatter.legend(markerscale=4, frameon=False, fontsize="small")
        width = 0.38
        for offset, train in ((-width / 2, "poisson"), (width / 2, "regular")):
            cells = dataset.sel(train=train)
            label = "Poisson" if train == "poisson" else f"regular ± {dataset.jitter_sd_ms:g} ms"
            bars.bar(x + offset, cells.mi.sel(lag=1), width, color=colours[train], label=f"{label}, lag 1")
            bars.scatter(
                x + offset,
                cells.mi.sel(lag=2),
                marker="_",
                s=120,
                color="k",
                zorder=3,
                label="lag 2" if train == "poisson" else None,
            )
            decoding.bar(x + offset, cells.r2.sel(lag=1), width, color=colours[train], label=label)
        bars.axhline(dataset.upper_bound_bits, color="0.5", ls="--", lw=0.8)
        bars.set(ylabel="I(efficacy; log interval) (bit)", ylim=(0, dataset.upper_bound_bits * 1.05))
        bars.legend(frameon=False, fontsize="small")
        decoding.set(ylabel="held-out R² of log interval (kNN)", ylim=(min(0.0, float(dataset.r2.min())), 1.02))
        for axis in (bars, decoding):
            axis.set_xticks(
                x,
                [n.replace("maass_", "MNM ").upper() if n.startswith("maass") else n for n in names],
                rotation=35,
                ha="right",
            )
        return plotting.save(fig, stem)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.strip().split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("results/stp_memory"), help="output folder (created)")
    parser.add_argument("--seconds", type=float, default=SECONDS, help="duration of each train (s)")
    parser.add_argument("--rate", type=float, default=RATE_HZ, help="mean rate of both trains (Hz)")
    parser.add_argument("--seed", type=int, default=SEED)
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    dataset = run(args.seconds, args.rate, args.seed)
    path = save_netcdf(dataset, args.out / "stp_memory.nc")
    figures = draw(dataset, args.out / "stp_memory")
    print(table(dataset))
    print(f"wrote {path}, " + ", ".join(str(f) for f in figures))
    return 0


if __name__ == "__main__":
    main()
