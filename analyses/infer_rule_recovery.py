"""How much recording a plasticity rule needs: recovery, detection and identification versus recording length.
==============================================================================================================

Two ground truths from the plastic-coupling GLM neuron (:func:`neurofwp.networks.ground_truth.glm_neuron`),
fitted back with :func:`neurofwp.recordings.infer_rules` (no spike history, 2 starts).

**Recovery and detection** (``run``): ``N`` Poisson inputs at 20 Hz, initial weights 0.5 (log-rate
per unit coupling kernel), a 10 Hz baseline, pair STDP with A+ = 0.015 and A- = 0.009 (the weights
fall to about a sixth in 100 s), ``SEEDS`` recordings per length and number of inputs, the last
20 % held out:

* the recovery error of A-, ``|fitted - true| / true``, with A+ held at its true value (A+ and A-
  trade off along A+ tau+ - A- tau- on such data), and the relative width of its 95 % interval;
* whether plasticity is detected: the plastic model beats the static one on the held-out part
  and its likelihood-ratio p-value (training part) is below 0.01.

**Identification** (``identification``): which rule made the data, among ``stdp``, ``triplet`` and
``delta``. At constant rates the triplet rule's extra factor (the slow postsynaptic trace) hovers
around a constant and the rule fits pair STDP's data about as well as pair STDP does, so
identification needs a postsynaptic rate that changes: the design ``IDENTITY``, a cell driven up
and down by a square-wave stimulus (period 20 s, gain 1 in log rate, fitted by a one-lag stimulus
filter) with 40 inhibitory inputs at 20 Hz (w0 -0.3, which keeps every rule stable), a 40 Hz
baseline, each rule at ``IDENTITY_TRUTH``, held out the end of each of 5 segments. A recording is
identified when the generating rule has the best held-out bits per spike of the three; ``margin``
is its lead over the best other rule.

Writes ``infer_rule_recovery.nc`` and ``infer_rule_identification.nc`` into ``--out`` and the figure
``--figure`` (PNG and SVG).

The figure in ``docs/figures`` comes from the defaults with ``--workers 2`` (13 min for recovery
and detection, which run in one process, 14 min for identification in two; 2 cores):

* recovery: the 95 % interval of A- narrows as about 1/sqrt(length), to 7 %, 4 % and 2.5 % of the
  true value at 200 s (5, 10, 20 inputs); the median recovery error falls to about 1 %;
* detection (held-out gain > 0 and p < 0.01) in every recording from 50 s with 20 inputs, from
  100 s (3 of 4) with 10 and from 200 s with 5; below 50 s in none;
* identification in the driven design: 8 of 9 recordings identified at 2.5 min, 7 of 9 at 5 min,
  9 of 9 at 10 min; the triplet rule leads pair STDP by the least (0.002-0.009 bit/spike on average),
  the delta rule's lead grows with length (0.006, 0.016, 0.023 bit/spike).

Usage: python analyses/infer_rule_recovery.py [--out DIR] [--figure STEM] [--seeds N] [--inputs N ...]
[--durations S ...] [--identity-seeds N] [--identity-durations S ...] [--workers N] [--redraw DIR]
"""

from __future__ import annotations

import argparse
import contextlib
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import xarray as xr

from neurofwp import plotting
from neurofwp.errors import OutOfRangeError
from neurofwp.io import save_netcdf
from neurofwp.networks import ground_truth as gt
from neurofwp.recordings import infer_rules

DURATIONS_S = (25.0, 50.0, 100.0, 200.0, 400.0)
N_INPUTS = (5, 10, 20)
SEEDS = 4
TRUTH = {"A_plus": 0.015, "A_minus": 0.009}
SETTING = {"rate_hz": 20.0, "initial_weight": 0.5, "baseline_hz": 10.0}
FIT = {"history_lags": 0, "starts": 2, "seed": 0, "dt_ms": 1.0}

IDENTITY = {"n_inputs": 40, "rate_hz": 20.0, "w0": -0.3, "baseline_hz": 40.0, "period_s": 20.0, "gain": 1.0,
            "held_out_blocks": 5}  # fmt: skip
IDENTITY_TRUTH = {
    "stdp": {"A_plus": 0.015, "A_minus": 0.006},
    "triplet": {"A3_plus": 0.0065, "A2_minus": 0.0071},  # Pfister & Gerstner (2006), visual cortex, minimal
    "delta": {"eta": 0.02},
}
IDENTITY_FREE = {"stdp": ["A_plus", "A_minus"], "triplet": ["A3_plus", "A2_minus"], "delta": ["eta"]}
IDENTITY_DURATIONS_S = (150.0, 300.0, 600.0)
IDENTITY_SEEDS = 3


def run(durations=DURATIONS_S, n_inputs=N_INPUTS, seeds: int = SEEDS) -> xr.Dataset:
    shape = (len(durations), len(n_inputs), seeds)
    error, width, gain, p_value = (np.full(shape, np.nan) for _ in range(4))
    for i, duration in enumerate(durations):
        for j, count in enumerate(n_inputs):
            for seed in range(seeds):
                inputs = gt.poisson_inputs(count, duration, SETTING["rate_hz"], seed=seed)
                try:
                    data = gt.glm_neuron("stdp", inputs, duration, parameters=TRUTH, baseline_hz=SETTING["baseline_hz"],
                                         initial_weight=SETTING["initial_weight"], seed=seed + 1)  # fmt: skip
                except OutOfRangeError:  # the weights ran away: no recording
                    continue
                common = {key: FIT[key] for key in ("history_lags", "starts", "seed")}
                detection = infer_rules(data.recording, ["stdp"], uncertainty=False, **common)
                bits = detection.bits_per_spike
                gain[i, j, seed] = float(bits.sel(model="stdp") - bits.sel(model="static"))
                p_value[i, j, seed] = float(detection.lr_p_value.sel(model="stdp"))
                fit = infer_rules(data.recording, ["stdp"], free={"stdp": ["A_minus"]},
                                  fixed={"stdp": {"A_plus": TRUTH["A_plus"]}}, **common).sel(model="stdp")  # fmt: skip
                error[i, j, seed] = abs(float(fit.A_minus) - TRUTH["A_minus"]) / TRUTH["A_minus"]
                width[i, j, seed] = float(fit.A_minus_ci95_high - fit.A_minus_ci95_low) / TRUTH["A_minus"]
            print(f"{duration:g} s, {count} inputs: error {np.nanmedian(error[i, j]):.3f}", flush=True)
    dims = ("duration", "n_inputs", "seed")
    detected = (gain > 0) & (p_value < 0.01)
    return xr.Dataset(
        {
            "recovery_error": (dims, error, {"units": "1", "long_name": "|fitted A- - true| / true (A+ fixed)"}),
            "ci95_width": (dims, width, {"units": "1", "long_name": "95 % Laplace interval width of A- / true"}),
            "held_out_gain": (dims, gain, {"units": "bit/spike", "long_name": "held-out bits/spike, stdp - static"}),
            "lr_p_value": (dims, p_value, {"units": "1", "long_name": "likelihood-ratio p-value, stdp vs static"}),
            "detected": (dims, detected.astype(np.int8), {"units": "1", "long_name": "held-out gain > 0 and p < 0.01"}),
        },
        coords={
            "duration": ("duration", list(durations), {"units": "s"}),
            "n_inputs": list(n_inputs),
            "seed": np.arange(seeds),
        },  # fmt: skip
        attrs={
            "rule": "stdp",
            **{f"true_{k}": v for k, v in TRUTH.items()},
            **SETTING,
            "held_out": 0.2,
            "generator": "neurofwp.networks.ground_truth.glm_neuron",
        },  # fmt: skip
    )


def identity_recording(rule: str, duration_s: float, seed: int = 0):
    """A recording of the ``IDENTITY`` design, made by ``rule`` at its ``IDENTITY_TRUTH``."""
    inputs = gt.poisson_inputs(IDENTITY["n_inputs"], duration_s, IDENTITY["rate_hz"], seed=seed)
    return gt.glm_neuron(
        rule, inputs, duration_s, parameters=IDENTITY_TRUTH[rule], baseline_hz=IDENTITY["baseline_hz"],
        initial_weight=IDENTITY["w0"], dt_ms=FIT["dt_ms"], seed=seed + 1,
        stimulus=gt.square_wave(duration_s, IDENTITY["period_s"]), stimulus_gain=IDENTITY["gain"],
    )  # fmt: skip


def identify(rule: str, duration_s: float, seed: int = 0) -> xr.DataArray:
    """Held-out bits per spike of every candidate rule and the static GLM on an ``IDENTITY`` recording of
    ``rule``."""
    data = identity_recording(rule, duration_s, seed)
    result = infer_rules(data.recording, list(IDENTITY_FREE), free=IDENTITY_FREE, uncertainty=False,
                         stimulus_lags=1, held_out_blocks=IDENTITY["held_out_blocks"], **FIT)  # fmt: skip
    return result.bits_per_spike


def identification(durations=IDENTITY_DURATIONS_S, seeds: int = IDENTITY_SEEDS, workers: int = 1) -> xr.Dataset:
    """Every rule's recordings of every length and seed, fitted by every rule (``workers`` processes)."""
    rules = list(IDENTITY_TRUTH)
    models = [*rules, "static"]
    cells = [(i, j, seed) for i in range(len(rules)) for j in range(len(durations)) for seed in range(seeds)]
    bits = np.full((len(rules), len(durations), seeds, len(models)), np.nan)
    arguments = zip(*[(rules[i], durations[j], seed) for i, j, seed in cells], strict=True)
    with ProcessPoolExecutor(workers) if workers > 1 else contextlib.nullcontext() as pool:
        fits = (pool.map if pool else map)(identify, *arguments)
        for (i, j, seed), held_out in zip(cells, fits, strict=True):
            bits[i, j, seed] = held_out.sel(model=models).values
            print(f"{rules[i]} data, {durations[j]:g} s, seed {seed}: held-out bits/spike "
                  f"{dict(zip(models, np.round(bits[i, j, seed], 4).tolist(), strict=True))}", flush=True)  # fmt: skip
    held_out = xr.DataArray(
        bits, dims=("rule", "duration", "seed", "model"),
        coords={"rule": rules, "duration": ("duration", list(durations), {"units": "s"}), "seed": np.arange(seeds),
                "model": models},
        attrs={"units": "bit/spike", "long_name": "held-out bits per spike over a homogeneous rate"},
    )  # fmt: skip
    plastic = held_out.sel(model=rules)
    own = xr.concat([plastic.sel(rule=r, model=r, drop=True) for r in rules], dim="rule")
    others = xr.concat([plastic.sel(rule=r).drop_sel(model=r).max("model") for r in rules], dim="rule")
    return xr.Dataset(
        {
            "bits_per_spike": held_out,
            "identified": (own > others).astype(float).assign_attrs(units="1", long_name="the generating rule is best"),
            "margin": (own - others).assign_attrs(units="bit/spike", long_name="generating rule - best other rule"),
        },
        attrs={"design": "IDENTITY", **{f"identity_{k}": v for k, v in IDENTITY.items()},
               **{f"true_{r}_{k}": v for r, values in IDENTITY_TRUTH.items() for k, v in values.items()},
               "generator": "neurofwp.networks.ground_truth.glm_neuron"},
    )  # fmt: skip


def draw(result: xr.Dataset, identified: xr.Dataset):
    import seaborn as sns

    with plotting.style():
        fig = plotting.figure(14, 3.2)
        axes = fig.subplots(1, 4)
        minutes = result.duration / 60.0
        for k, count in enumerate(result.n_inputs.values):
            colour = f"C{k}"
            row = result.sel(n_inputs=count)
            axes[0].plot(minutes, row.recovery_error.median("seed"), "o-", color=colour, label=f"{count} inputs")
            axes[1].plot(minutes, row.ci95_width.median("seed"), "o-", color=colour)
            axes[2].plot(minutes, row.held_out_gain.mean("seed"), "o-", color=colour)
        axes[0].set(xscale="log", xlabel="recording (min)", ylabel="|A- fitted - true| / true",
                    title="stdp: recovery error of A- (median)")  # fmt: skip
        axes[0].legend(frameon=False)
        axes[1].set(xscale="log", xlabel="recording (min)", ylabel="95 % interval width / true",
                    title="interval width of A-")  # fmt: skip
        for ax, values in ((axes[0], result.recovery_error), (axes[1], result.ci95_width)):
            if bool((values > 0).any()):  # a log axis needs a positive value (a tiny grid may have none)
                ax.set_yscale("log")
        axes[2].axhline(0.0, color="0.5", lw=0.8)
        axes[2].set(xscale="log", xlabel="recording (min)", ylabel="bits / spike", title="held-out gain, stdp - static")
        ticks = minutes.values
        for ax in axes[:3]:  # the recording lengths themselves, in plain numbers
            ax.set_xticks(ticks, [f"{t:.2g}" for t in ticks])
            ax.minorticks_off()
        ax = axes[3]  # the lead of the generating rule, per recording (dots) and on average (line)
        id_minutes = identified.duration / 60.0
        for k, rule in enumerate(identified.rule.values):
            margin = identified.margin.sel(rule=rule)
            count = int(identified.identified.sel(rule=rule).sum())
            ax.plot(id_minutes, margin.mean("seed"), "o-", color=f"C{k + 3}",
                    label=f"{rule} data ({count} of {int(margin.count())} identified)")  # fmt: skip
            for seed in margin.seed.values:
                ax.plot(id_minutes, margin.sel(seed=seed), ".", color=f"C{k + 3}", alpha=0.5, ms=4)
        ax.axhline(0.0, color="0.5", lw=0.8)
        ax.set(xscale="log", xlabel="recording (min)", ylabel="bits / spike",
               title=f"lead of the generating rule ({int(identified.identity_n_inputs)} inputs)")  # fmt: skip
        ax.set_xticks(id_minutes.values, [f"{t:.2g}" for t in id_minutes.values])
        ax.minorticks_off()
        top = float(identified.margin.max())
        if np.isfinite(top) and top > 0:  # room above the dots for the legend
            ax.set_ylim(top=1.7 * top)
        ax.legend(frameon=False, fontsize=7, loc="upper left")
        sns.despine(fig)
    return fig


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.strip().split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("results/infer_rule_recovery"))
    parser.add_argument("--figure", type=Path, default=Path("docs/figures/infer_rule_recovery"))
    parser.add_argument("--seeds", type=int, default=SEEDS)
    parser.add_argument("--inputs", type=int, nargs="+", default=list(N_INPUTS), help="numbers of inputs")
    parser.add_argument("--durations", type=float, nargs="+", default=list(DURATIONS_S), help="recording lengths (s)")
    parser.add_argument("--identity-seeds", type=int, default=IDENTITY_SEEDS)
    parser.add_argument("--identity-durations", type=float, nargs="+", default=list(IDENTITY_DURATIONS_S),
                        help="recording lengths of the identification design (s)")  # fmt: skip
    parser.add_argument("--workers", type=int, default=1, help="processes for the identification's fits")
    parser.add_argument("--redraw", type=Path, help="draw the figure from the results saved in this folder")
    args = parser.parse_args(argv)
    if args.redraw:
        result = xr.load_dataset(args.redraw / "infer_rule_recovery.nc")
        identified = xr.load_dataset(args.redraw / "infer_rule_identification.nc")
    else:
        result = run(args.durations, args.inputs, seeds=args.seeds)
        identified = identification(args.identity_durations, seeds=args.identity_seeds, workers=args.workers)
        args.out.mkdir(parents=True, exist_ok=True)
        save_netcdf(result, args.out / "infer_rule_recovery.nc")
        save_netcdf(identified, args.out / "infer_rule_identification.nc")
    plotting.save(draw(result, identified), args.figure)
    print(result.recovery_error.median("seed").to_pandas().round(3).to_string())
    print(result.detected.sum("seed").to_pandas().to_string())
    print("identified (recordings):")
    print(identified.identified.sum("seed").to_pandas().to_string())
    print(f"wrote {args.figure}.png/.svg" if args.redraw else f"wrote {args.out} and {args.figure}.png/.svg")


if __name__ == "__main__":
    main()
