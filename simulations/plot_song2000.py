"""
STDP in a network: Song, Miller & Abbott (2000)
===============================================

1000 Poisson inputs onto one leaky integrate-and-fire neuron through pair-STDP synapses
(Brian2, ``neurofwp.networks.song2000``; the command line's ``neurofwp simulate song2000``).
Competition between the synapses drives the weights to a bimodal distribution.
"""

import os
from pathlib import Path

from neurofwp.io import save_netcdf
from neurofwp.networks import song2000

# %%
# Parameters (``NEUROFWP_QUICK=1``: a short run, as in the docs build)
OUT = Path(os.environ.get("NEUROFWP_OUT", "results/song2000"))
SECONDS = 2.0 if os.environ.get("NEUROFWP_QUICK") else 100.0
SEED = 0

# %%
# Run and save
result = song2000.simulate(SECONDS, seed=SEED, show_progress=False)
OUT.mkdir(parents=True, exist_ok=True)
save_netcdf(result, OUT / "song2000.nc")
song2000.figure(result, str(OUT / "song2000"))
print(
    f"{SECONDS:g} s simulated; bimodality of the final weights: {song2000.bimodality(result.final_weight.values):.2f}"
)
