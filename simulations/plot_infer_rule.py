"""
Inferring a plasticity rule from spikes: ground truth first
===========================================================

Poisson inputs drive one neuron through pair-STDP synapses with known amplitudes. Two
neurons make the spikes: the plastic-coupling GLM neuron (10 inputs), the very model that
:func:`neurofwp.recordings.infer_rules` fits (``neurofwp.networks.ground_truth.glm_neuron``),
and a conductance-based LIF neuron in Brian2 (``lif_neuron``: 50 inputs, depression-dominated
STDP whose conductances fall by a quarter in two minutes), for which the GLM is only an
approximation: its couplings are log-rate kernels, so the LIF's amplitudes are not comparable
with the inferred ones, but the course of the weights is. Each recording is written as NWB and
NPZ (what ``neurofwp infer-rule`` reads) with its truth as netCDF; the inference fits ``stdp``,
``triplet``, ``delta`` and the static GLM with the end of each of five segments held out (the
quick settings of the docs build: the last 20 %), and compares them there. The figure shows the
true and inferred weights and each rule's held-out gain over the static GLM.
"""

import os
from pathlib import Path

from neurofwp.io import save_netcdf
from neurofwp.networks import ground_truth as gt
from neurofwp.recordings import infer_rules

# %%
# Parameters (``NEUROFWP_QUICK=1``: short recordings and one candidate rule, as in the docs build)
OUT = Path(os.environ.get("NEUROFWP_OUT", "results/infer_rule"))
QUICK = bool(os.environ.get("NEUROFWP_QUICK"))
GLM_SECONDS = 15.0 if QUICK else 200.0
LIF_SECONDS = 3.0 if QUICK else 120.0
RULE, TRUTH = "stdp", {"A_plus": 0.015, "A_minus": 0.009}
GLM = {"n_inputs": 10, "rate_hz": 20.0, "initial_weight": 0.5, "baseline_hz": 10.0}
LIF = {"n_inputs": 50, "rate_hz": 15.0, "initial_weight": 0.08, "truth": {"A_plus": 0.0003, "A_minus": 0.0003}}
CANDIDATES = {"stdp": ["A_plus", "A_minus"]} if QUICK else {
    "stdp": ["A_plus", "A_minus"], "triplet": ["A3_plus", "A2_minus"], "delta": ["eta"]}  # fmt: skip
DT_MS = 1.0  # Euler step of the clock-driven delta rule
HELD_OUT_BLOCKS = 1 if QUICK else 5
SEED = 0

# %%
# Ground truth: the GLM neuron and the LIF neuron (Brian2)
OUT.mkdir(parents=True, exist_ok=True)
inputs = gt.poisson_inputs(GLM["n_inputs"], GLM_SECONDS, GLM["rate_hz"], seed=SEED)
lif_inputs = gt.poisson_inputs(LIF["n_inputs"], LIF_SECONDS, LIF["rate_hz"], seed=SEED)
truths = {
    "GLM neuron": gt.glm_neuron(RULE, inputs, GLM_SECONDS, parameters=TRUTH, baseline_hz=GLM["baseline_hz"],
                                initial_weight=GLM["initial_weight"], dt_ms=DT_MS, seed=SEED),
    "LIF neuron (Brian2)": gt.lif_neuron(RULE, lif_inputs, LIF_SECONDS, parameters=LIF["truth"],
                                         initial_weight=LIF["initial_weight"],
                                         config=gt.LIFConfig(w_max=1.0)),  # no clipping
}  # fmt: skip
for truth in truths.values():
    stem = OUT / f"ground_truth_{truth.truth.attrs['generator']}"
    gt.write_nwb(truth, stem.with_suffix(".nwb"))
    gt.write_npz(truth, stem.with_suffix(".npz"))
    gt.write_truth(truth, stem.with_suffix(".nc"))

# %%
# Inference: every candidate rule and the static GLM, compared on the held-out blocks
inferences = {}
for label, truth in truths.items():
    inferences[label] = infer_rules(truth.recording, list(CANDIDATES), free=CANDIDATES, history_lags=0, starts=2,
                                    seed=SEED, dt_ms=DT_MS, held_out_blocks=HELD_OUT_BLOCKS)  # fmt: skip
    save_netcdf(inferences[label], OUT / f"inference_{truth.truth.attrs['generator']}.nc")
gt.figure(truths, inferences, str(OUT / "infer_rule"))
for label, result in inferences.items():
    bits = ", ".join(f"{m} {b:.3f}" for m, b in zip(result.model.values, result.bits_per_spike.values, strict=True))
    print(f"{label}: held-out bits/spike: {bits}")
    row = result.sel(model=RULE)
    if label != "GLM neuron":  # conductances, not log-rate couplings: compare the course of the weights
        inferred = row.weight.mean("input")
        true = truths[label].truth.weight.mean("synapse")
        print(f"  mean weight at the end / start: true {float(true[-1] / true[0]):.2f}, "
              f"inferred {float(inferred[-1] / inferred[0]):.2f}")  # fmt: skip
        continue
    for name in CANDIDATES[RULE]:
        true = TRUTH[name]
        print(f"  {name}: true {true:g}, inferred {float(row[name]):.4g} "
              f"[{float(row[name + '_ci95_low']):.4g}, {float(row[name + '_ci95_high']):.4g}]")  # fmt: skip
