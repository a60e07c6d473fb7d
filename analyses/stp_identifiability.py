"""Which protocols identify which Tsodyks–Markram parameter: recovery error versus the train set.
==============================================================================================

For each published parameter set (``make_tm_examples.SETS``) and each subset of the bundled
protocols (one regular train, several, a train with recovery probes, all), responses are
simulated, Gaussian noise of SD ``NOISE`` (a fraction of the first response) is added to
every response but the first, and U, τ_D and τ_F are fitted back (``STARTS`` starts). The
recovery error of a parameter is

    ``|fitted − true| / max(true, floor)``   (floor: 0 for U, 50 ms for the time constants),

so a τ_F of 0 is judged against 50 ms; the median over ``SEEDS`` noise draws is reported,
with the median relative width of the 95 % Laplace interval (NaN where the parameter ends at
a bound or the Hessian is singular: not identified). Writes ``stp_identifiability.nc`` and a
figure of heatmaps (synapse × protocol set, one panel per parameter).

Usage: python analyses/stp_identifiability.py [--out DIR] [--seeds N]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import xarray as xr

sys.path.insert(0, str(Path(__file__).parent))
from make_tm_examples import SETS, protocols  # noqa: E402  (the published sets and their protocols)

from neurofwp import plotting  # noqa: E402
from neurofwp.fit import fit  # noqa: E402
from neurofwp.plasticity import simulate_responses  # noqa: E402
from neurofwp.protocols import make_train  # noqa: E402

NOISE = 0.02
STARTS = 8
SEEDS = 3
PARAMETERS = ("U", "tau_rec_ms", "tau_facil_ms")
FLOOR = {"U": 0.0, "tau_rec_ms": 50.0, "tau_facil_ms": 50.0}
# protocol subsets, by the names of make_tm_examples.protocols()
PROTOCOL_SETS = {
    "5 Hz": ["5 Hz"],
    "20 Hz": ["20 Hz"],
    "100 Hz": ["100 Hz"],
    "5, 20, 100 Hz": ["5 Hz", "20 Hz", "100 Hz"],
    "20 Hz + probes": ["20 Hz + probe 250 ms", "20 Hz + probe 1000 ms", "20 Hz + probe 3000 ms"],
    "all": None,
}


def noisy_trains(trains, truth: dict[str, float], seed: int):
    """The trains with model responses (normalised to the first) plus noise, SEM = NOISE."""
    responses = simulate_responses("tsodyks-markram", trains, truth)[:, :, 0]
    generator = np.random.default_rng(seed)
    out = []
    for train, row in zip(trains, responses, strict=True):
        amplitude = row[: len(train.pre_times_ms)] / row[0]
        amplitude = amplitude + generator.normal(0.0, NOISE, amplitude.size)
        amplitude[0] = 1.0
        out.append(make_train(train.name, train.pre_times_ms, amplitude, [np.nan] + [NOISE] * (amplitude.size - 1)))
    return out


def run(synapses=tuple(SETS), protocol_sets=tuple(PROTOCOL_SETS), seeds: int = SEEDS) -> xr.Dataset:
    every = {train.name: train for train in protocols()}
    shape = (len(synapses), len(protocol_sets), len(PARAMETERS), seeds)
    error, width = np.full(shape, np.nan), np.full(shape, np.nan)
    for i, synapse in enumerate(synapses):
        U, tau_rec, tau_facil = SETS[synapse][:3]
        truth = {"U": U, "tau_rec_ms": tau_rec, "tau_facil_ms": tau_facil}
        for j, subset in enumerate(protocol_sets):
            names = PROTOCOL_SETS[subset] or list(every)
            for seed in range(seeds):
                trains = noisy_trains([every[n] for n in names], truth, seed)
                result = fit("tsodyks-markram", trains, starts=STARTS, seed=seed, show_progress=False)
                for k, name in enumerate(PARAMETERS):
                    row = result.sel(parameter=name)
                    scale = max(truth[name], FLOOR[name])
                    error[i, j, k, seed] = abs(float(row.fitted_value) - truth[name]) / scale
                    width[i, j, k, seed] = (float(row.ci95_high) - float(row.ci95_low)) / scale
        print(f"{synapse}: done", flush=True)
    coords = {"synapse": list(synapses), "protocol_set": list(protocol_sets), "parameter": list(PARAMETERS)}
    dims = ("synapse", "protocol_set", "parameter", "seed")
    return xr.Dataset(
        {
            "recovery_error": (
                dims,
                error,
                {"units": "1", "long_name": "|fitted - true| / max(true, floor)", "floor_ms": 50.0},
            ),
            "ci95_width": (dims, width, {"units": "1", "long_name": "95 % Laplace interval width / max(true, floor)"}),
        },
        coords={**coords, "seed": np.arange(seeds)},
        attrs={"noise_sd": NOISE, "starts": STARTS, "rule": "tsodyks-markram"},
    )


def draw(result: xr.Dataset):
    median = result.recovery_error.median("seed")
    with plotting.style():
        fig = plotting.figure(4.0 * len(PARAMETERS) + 0.6, 0.45 * result.sizes["synapse"] + 1.8)
        grid = fig.add_gridspec(1, len(PARAMETERS) + 1, width_ratios=[1.0] * len(PARAMETERS) + [0.05])
        axes = [fig.add_subplot(grid[0, i]) for i in range(len(PARAMETERS))]
        for ax, name in zip(axes, PARAMETERS, strict=True):
            errors = median.sel(parameter=name).values
            values = np.log10(np.clip(errors, 1e-4, 10.0))
            image = ax.imshow(values, cmap="magma_r", vmin=-4, vmax=1, aspect="auto")
            for (row, column), value in np.ndenumerate(errors):
                colour = "white" if values[row, column] > -1.5 else "black"
                ax.text(column, row, f"{value:.2g}", ha="center", va="center", fontsize=6, color=colour)
            ax.set_xticks(range(result.sizes["protocol_set"]), result.protocol_set.values, rotation=40, ha="right")
            ax.set_yticks(range(result.sizes["synapse"]), result.synapse.values if name == PARAMETERS[0] else [])
            ax.set_title(f"{name}: median recovery error")
        fig.colorbar(image, cax=fig.add_subplot(grid[0, -1]), label="log10 relative error")
    return fig


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.strip().split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("results/stp_identifiability"))
    parser.add_argument("--seeds", type=int, default=SEEDS)
    parser.add_argument("--redraw", type=Path, help="draw the figure from a saved stp_identifiability.nc")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.redraw:
        result = xr.load_dataset(args.redraw)
    else:
        result = run(seeds=args.seeds)
        result.to_netcdf(args.out / "stp_identifiability.nc")
    plotting.save(draw(result), args.out / "stp_identifiability")
    table = result.recovery_error.median("seed").to_dataframe().unstack("parameter").round(3)
    print(table.to_string())
    print(f"wrote {args.out / 'stp_identifiability.nc'} and the figure (PNG, SVG)")


if __name__ == "__main__":
    main()
