"""
Short-term plasticity: responses of published synapses to trains
=================================================================

The Tsodyks–Markram rule (``neurofwp rules tsodyks-markram``) with the parameter sets of
Tsodyks, Pawelzik & Markram (1998) and Maass, Natschläger & Markram (2002), driven by regular
trains at 5–100 Hz and a recovery probe; responses normalised to the first of each train.
"""

import os
from pathlib import Path

import numpy as np
import xarray as xr

from neurofwp import plotting
from neurofwp.io import save_netcdf
from neurofwp.plasticity import simulate_responses
from neurofwp.protocols import make_train

# %%
# Parameters
OUT = Path(os.environ.get("NEUROFWP_OUT", "results/stp_trains"))
RATES_HZ = (5, 10, 20, 50, 100)
SPIKES = 10
PROBE_DELAYS_MS = (50, 100, 200, 500, 1000, 2000, 4000)
SYNAPSES = {  # U, tau_rec_ms, tau_facil_ms
    "depressing (TPM 1998)": (0.5, 800.0, 0.0),
    "facilitating (TPM 1998)": (0.03, 130.0, 530.0),
    "EE (MNM 2002)": (0.5, 1100.0, 50.0),
    "EI (MNM 2002)": (0.05, 125.0, 1200.0),
    "IE (MNM 2002)": (0.25, 700.0, 20.0),
    "II (MNM 2002)": (0.32, 144.0, 60.0),
}

# %%
# Trains and recovery probes (a 20 Hz train, then one probe after each delay)
trains = [make_train(f"{rate} Hz", np.round(np.arange(SPIKES) * 1000.0 / rate, 1)) for rate in RATES_HZ]
probes = [make_train(f"probe {d} ms", [*np.arange(SPIKES) * 50.0, (SPIKES - 1) * 50.0 + d]) for d in PROBE_DELAYS_MS]
values = {
    name: np.array([s[i] for s in SYNAPSES.values()]) for i, name in enumerate(["U", "tau_rec_ms", "tau_facil_ms"])
}
responses = simulate_responses("tsodyks-markram", trains + probes, values)  # [protocols, spikes, synapses]
normalised = responses / responses[:, :1]

result = xr.Dataset(
    {
        "response": (
            ("protocol", "spike", "synapse"),
            normalised,
            {"units": "1", "long_name": "response normalised to the first of the train"},
        )
    },
    coords={
        "protocol": [p.name for p in trains + probes],
        "spike": np.arange(1, normalised.shape[1] + 1),
        "synapse": list(SYNAPSES),
        **{
            name: ("synapse", value, {"units": "ms" if name.endswith("_ms") else "1"}) for name, value in values.items()
        },
    },
    attrs={"rule": "tsodyks-markram"},
)

# %%
# Train responses by rate (one panel per synapse), and recovery after a 20 Hz train
with plotting.style():
    fig = plotting.figure(11, 8)
    layout = [["0", "1", "2"], ["3", "4", "5"], ["recovery", "recovery", "recovery"]]
    axes = fig.subplot_mosaic(layout, height_ratios=[1, 1, 0.8])
    for index, synapse in enumerate(SYNAPSES):
        ax = axes[str(index)]
        for rate in RATES_HZ:
            train_response = result.response.sel(protocol=f"{rate} Hz", synapse=synapse)[:SPIKES]
            ax.plot(np.arange(1, SPIKES + 1), train_response, marker="o", ms=3, label=f"{rate} Hz")
        ax.set(title=synapse, xlabel="spike", ylabel="response / first")
        probe = result.response.sel(synapse=synapse, spike=SPIKES + 1)
        recovered = [float(probe.sel(protocol=f"probe {d} ms")) for d in PROBE_DELAYS_MS]
        axes["recovery"].semilogx(PROBE_DELAYS_MS, recovered, marker="o", ms=3, label=synapse)
    axes["0"].legend(frameon=False, fontsize=6)
    axes["recovery"].set(
        xlabel="probe delay after the 10th spike of a 20 Hz train (ms)", ylabel="probe response / first"
    )
    axes["recovery"].legend(frameon=False, fontsize=6, ncol=2)

OUT.mkdir(parents=True, exist_ok=True)
save_netcdf(result, OUT / "stp_trains.nc")
plotting.save(fig, OUT / "stp_trains")
fig  # noqa: B018 - shown by the docs gallery
