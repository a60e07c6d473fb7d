"""
The spiking delta rule learns a linear readout
==============================================

A readout population driven by a teacher current learns, with the spiking ``delta`` rule,
the weights that map input rate patterns (keys) to output rates (values): the fast-weight
delta rule of the tensor core, run as a Brian2 synapse (``neurofwp.networks.delta_readout``).
The learned weights are drawn beside the expected fixed point and the tensor delta rule's
solution.
"""

import os
from pathlib import Path

import numpy as np

from neurofwp import plotting
from neurofwp.io import save_netcdf
from neurofwp.networks import delta_readout

# %%
# Parameters (``NEUROFWP_QUICK=1``: a short run, as in the docs build)
OUT = Path(os.environ.get("NEUROFWP_OUT", "results/delta_readout"))
SECONDS = 5.0 if os.environ.get("NEUROFWP_QUICK") else 60.0
SEED = 0

# %%
# Train the readout and compare its weights with the expected ones and the tensor rule's
result = delta_readout.simulate(SECONDS, seed=SEED)
with plotting.style():
    fig = plotting.figure(9, 3.4)
    left, right = fig.subplots(1, 2)
    expected = result.weight.sel(source="expected").values.ravel()
    for source, marker in (("spiking", "o"), ("tensor-delta", "x")):
        left.plot(expected, result.weight.sel(source=source).values.ravel(), marker, ms=4, label=source)
    limits = [min(expected.min(), 0.0), expected.max()]
    left.plot(limits, limits, "k--", lw=0.8)
    left.set(xlabel="expected weight (least squares)", ylabel="learned weight", title=f"{SECONDS:g} s of training")
    left.legend(frameon=False)
    targets = result.value_rate.values.ravel()
    predicted = result.predicted_rate.sel(source="spiking").values.ravel()
    right.plot(targets, predicted, "o", ms=4)
    right.plot([0, targets.max()], [0, targets.max()], "k--", lw=0.8)
    right.set(xlabel="target rate (Hz)", ylabel="readout prediction Wᵀr (Hz)", title="per pattern and output")

OUT.mkdir(parents=True, exist_ok=True)
save_netcdf(result, OUT / "delta_readout.nc")
plotting.save(fig, OUT / "delta_readout")
difference = result.weight.sel(source="spiking") - result.weight.sel(source="expected")
print(f"largest |spiking - expected| weight: {float(np.abs(difference).max()):.3g}")
fig  # noqa: B018 - shown by the docs gallery
