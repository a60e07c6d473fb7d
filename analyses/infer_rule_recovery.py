"""How much recording a plasticity rule needs: recovery error versus recording length and number of inputs.
==========================================================================================================

Ground truth from the plastic-coupling GLM neuron (:func:`neurofwp.networks.ground_truth.glm_neuron`):
``N`` Poisson inputs at 20 Hz, initial weights 0.5 (log-rate per unit coupling kernel), a 10 Hz
baseline, pair STDP with A+ = 0.015 and A- = 0.009 (the weights fall to about a sixth in 100 s).
For every recording length and number of inputs, ``SEEDS`` recordings are fitted back with
:func:`neurofwp.recordings.infer_rules` (no spike history, 2 starts, the last 20 % held out):

* the recovery error of A-, ``|fitted - true| / true``, with A+ held at its true value (A+ and A-
  trade off along A+ tau+ - A- tau- on such data), and the relative width of its 95 % interval;
* whether plasticity is detected: the plastic model beats the static one on the held-out part
  and its likelihood-ratio p-value (training part) is below 0.01;
* whether the rule is identified: among ``stdp``, ``triplet``, ``delta`` (default free parameters)
  and the static GLM, ``stdp`` has the best held-out bits per spike.

Writes ``infer_rule_recovery.nc`` into ``--out`` and the figure ``--figure`` (PNG and SVG).

The figure in ``docs/figures`` (``--seeds 1 --inputs 5 10``, about 10 min on 2 busy cores): the
95 % interval of A- narrows as about 1/sqrt(length), to 7 % (5 inputs) and 4 % (10 inputs) of the
true value at 200 s; plasticity is detected (held-out gain > 0 and p < 0.01) from 100 s with 10
inputs and from 200 s with 5 (held-out gains 0.09 and 0.26 bit/spike at 100 and 200 s with 10
inputs); below 1 min neither input count shows it. The recovery error of a single seed scatters
(0.4 % to 10 % from 50 s on) within the interval.

Usage: python analyses/infer_rule_recovery.py [--out DIR] [--figure STEM] [--seeds N] [--inputs N ...]
[--durations S ...]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import xarray as xr

from neurofwp import plotting
from neurofwp.errors import OutOfRangeError
from neurofwp.io import save_netcdf
from neurofwp.networks import ground_truth as gt
from neurofwp.recordings import infer_rules

DURATIONS_S = (25.0, 50.0, 100.0, 200.0)
N_INPUTS = (5, 10, 15)
SEEDS = 2
CANDIDATES = ("stdp", "triplet", "delta")  # the generating rule first
TRUTH = {"A_plus": 0.015, "A_minus": 0.009}
SETTING = {"rate_hz": 20.0, "initial_weight": 0.5, "baseline_hz": 10.0}


def run(durations=DURATIONS_S, n_inputs=N_INPUTS, seeds: int = SEEDS) -> xr.Dataset:
    shape = (len(durations), len(n_inputs), seeds)
    error, width, gain, p_value, identified = (np.full(shape, np.nan) for _ in range(5))
    for i, duration in enumerate(durations):
        for j, count in enumerate(n_inputs):
            for seed in range(seeds):
                inputs = gt.poisson_inputs(count, duration, SETTING["rate_hz"], seed=seed)
                try:
                    data = gt.glm_neuron("stdp", inputs, duration, parameters=TRUTH, baseline_hz=SETTING["baseline_hz"],
                                         initial_weight=SETTING["initial_weight"], seed=seed + 1)  # fmt: skip
                except OutOfRangeError:  # the weights ran away: no recording
                    continue
                common = {"history_lags": 0, "starts": 2, "seed": 0}
                detection = infer_rules(data.recording, list(CANDIDATES), uncertainty=False, **common)
                bits = detection.bits_per_spike
                gain[i, j, seed] = float(bits.sel(model="stdp") - bits.sel(model="static"))
                identified[i, j, seed] = float(str(bits.idxmax("model").values) == "stdp")
                p_value[i, j, seed] = float(detection.lr_p_value.sel(model="stdp"))
                fit = infer_rules(data.recording, ["stdp"], free={"stdp": ["A_minus"]},
                                  fixed={"stdp": {"A_plus": TRUTH["A_plus"]}}, **common).sel(model="stdp")  # fmt: skip
                error[i, j, seed] = abs(float(fit.A_minus) - TRUTH["A_minus"]) / TRUTH["A_minus"]
                width[i, j, seed] = float(fit.A_minus_ci95_high - fit.A_minus_ci95_low) / TRUTH["A_minus"]
            print(f"{duration:g} s, {count} inputs: error {np.nanmedian(error[i, j]):.3f}, "
                  f"identified {np.nansum(identified[i, j]):g} of {seeds}", flush=True)  # fmt: skip
    dims = ("duration", "n_inputs", "seed")
    detected = (gain > 0) & (p_value < 0.01)
    return xr.Dataset(
        {
            "recovery_error": (dims, error, {"units": "1", "long_name": "|fitted A- - true| / true (A+ fixed)"}),
            "ci95_width": (dims, width, {"units": "1", "long_name": "95 % Laplace interval width of A- / true"}),
            "held_out_gain": (dims, gain, {"units": "bit/spike", "long_name": "held-out bits/spike, stdp - static"}),
            "lr_p_value": (dims, p_value, {"units": "1", "long_name": "likelihood-ratio p-value, stdp vs static"}),
            "detected": (dims, detected.astype(np.int8), {"units": "1", "long_name": "held-out gain > 0 and p < 0.01"}),
            "identified": (dims, identified, {"units": "1", "long_name": "stdp best held out of all models"}),
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
            "candidates": list(CANDIDATES),
            "generator": "neurofwp.networks.ground_truth.glm_neuron",
        },  # fmt: skip
    )


def draw(result: xr.Dataset):
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
            axes[3].plot(minutes, row.identified.mean("seed"), "o-", color=colour)
        axes[0].set(xscale="log", xlabel="recording (min)", ylabel="|A- fitted - true| / true",
                    title="recovery error (median over seeds)")  # fmt: skip
        axes[0].legend(frameon=False)
        axes[1].set(xscale="log", xlabel="recording (min)", ylabel="95 % interval width / true",
                    title="interval width of A-")  # fmt: skip
        for ax, values in ((axes[0], result.recovery_error), (axes[1], result.ci95_width)):
            if bool((values > 0).any()):  # a log axis needs a positive value (a tiny grid may have none)
                ax.set_yscale("log")
        axes[2].axhline(0.0, color="0.5", lw=0.8)
        axes[2].set(xscale="log", xlabel="recording (min)", ylabel="bits / spike", title="held-out gain, stdp - static")
        axes[3].set(xscale="log", xlabel="recording (min)", ylabel="fraction of recordings", ylim=(-0.05, 1.05),
                    title="stdp identified (best held out)")  # fmt: skip
        ticks = minutes.values
        for ax in axes:  # the recording lengths themselves, in plain numbers
            ax.set_xticks(ticks, [f"{t:.2g}" for t in ticks])
            ax.minorticks_off()
        sns.despine(fig)
    return fig


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.strip().split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("results/infer_rule_recovery"))
    parser.add_argument("--figure", type=Path, default=Path("docs/figures/infer_rule_recovery"))
    parser.add_argument("--seeds", type=int, default=SEEDS)
    parser.add_argument("--inputs", type=int, nargs="+", default=list(N_INPUTS), help="numbers of inputs")
    parser.add_argument("--durations", type=float, nargs="+", default=list(DURATIONS_S), help="recording lengths (s)")
    parser.add_argument("--redraw", type=Path, help="draw the figure from a saved infer_rule_recovery.nc")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.redraw:
        result = xr.load_dataset(args.redraw)
    else:
        result = run(args.durations, args.inputs, seeds=args.seeds)
        save_netcdf(result, args.out / "infer_rule_recovery.nc")
    plotting.save(draw(result), args.figure)
    print(result.recovery_error.median("seed").to_pandas().round(3).to_string())
    print(result.detected.sum("seed").to_pandas().to_string())
    print(result.identified.sum("seed").to_pandas().to_string())
    print(f"wrote {args.out / 'infer_rule_recovery.nc'} and {args.figure}.png/.svg")


if __name__ == "__main__":
    main()
