"""The runnable experiments in simulations/: each runs with short settings and writes netCDF and a figure."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

ROOT = Path(__file__).parents[1]
SCRIPTS = sorted((ROOT / "simulations").glob("plot_*.py"))


def run(script: Path, out: Path) -> str:
    environment = {**os.environ, "NEUROFWP_QUICK": "1", "NEUROFWP_OUT": str(out), "MPLBACKEND": "Agg"}
    result = subprocess.run(
        [sys.executable, str(script)], cwd=out, env=environment, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_every_simulation_is_covered():
    assert {p.stem for p in SCRIPTS} == {"plot_stp_trains", "plot_song2000", "plot_delta_readout", "plot_infer_rule"}


def test_stp_trains_match_the_recursion_by_hand(tmp_path):
    run(ROOT / "simulations" / "plot_stp_trains.py", tmp_path)
    result = xr.load_dataset(tmp_path / "stp_trains.nc")
    assert {f"stp_trains.{e}" for e in ("png", "svg")} <= {p.name for p in tmp_path.iterdir()}
    # the depressing synapse (U 0.5, τ_D 800 ms, no facilitation): 10 spikes at 20 Hz, then a probe d ms later
    U, tau = 0.5, 800.0
    R = 1.0  # before the first spike
    for _ in range(9):  # R before spikes 2..10
        R = 1.0 - (1.0 - R * (1.0 - U)) * np.exp(-50.0 / tau)
    after_tenth = R * (1.0 - U)
    for delay in (50, 1000, 4000):
        expected = 1.0 - (1.0 - after_tenth) * np.exp(-delay / tau)  # probe response / first = R (u = U both times)
        got = float(result.response.sel(protocol=f"probe {delay} ms", synapse="depressing (TPM 1998)", spike=11))
        assert got == pytest.approx(expected, rel=1e-12)


def test_song2000_network_runs_short(tmp_path):
    output = run(ROOT / "simulations" / "plot_song2000.py", tmp_path)
    result = xr.load_dataset(tmp_path / "song2000.nc")
    weights = result.final_weight.values
    assert np.all((weights >= 0) & (weights <= 1)) and weights.std() > 0  # bounded STDP moved the weights
    assert "bimodality" in output and (tmp_path / "song2000.png").is_file()


def test_delta_readout_moves_towards_the_expected_weights(tmp_path):
    """5 s of training (the quick setting) from w = 0: the weights have moved most of the way to the
    least-squares solution (measured: correlation 0.79, distance 0.59 of the initial one)."""
    run(ROOT / "simulations" / "plot_delta_readout.py", tmp_path)
    result = xr.load_dataset(tmp_path / "delta_readout.nc")
    learned = result.weight.sel(source="spiking").values.ravel()
    expected = result.weight.sel(source="expected").values.ravel()
    assert np.corrcoef(learned, expected)[0, 1] > 0.6
    assert np.linalg.norm(learned - expected) < 0.8 * np.linalg.norm(expected)  # the start, w = 0, is at 1.0
    assert (tmp_path / "delta_readout.png").is_file()


def test_infer_rule_writes_recordings_truth_and_inference(tmp_path):
    """Short ground truths (GLM and Brian2 LIF neurons): the recordings read back, the truth and the
    inference are netCDF over the expected dimensions, and the figure is there."""
    from neurofwp.recordings import load_npz, load_nwb

    output = run(ROOT / "simulations" / "plot_infer_rule.py", tmp_path)
    for generator in ("glm", "lif"):
        truth = xr.load_dataset(tmp_path / f"ground_truth_{generator}.nc")
        inference = xr.load_dataset(tmp_path / f"inference_{generator}.nc")
        assert truth.weight.dims == ("time", "synapse") and truth.attrs["rule"] == "stdp"
        assert list(inference.model.values) == ["stdp", "static"]
        assert inference.weight.dims == ("model", "input", "time")
        npz = load_npz(tmp_path / f"ground_truth_{generator}.npz")
        nwb = load_nwb(tmp_path / f"ground_truth_{generator}.nwb", 0)
        assert (
            np.array_equal(npz.spike_times_s, nwb.spike_times_s)
            and len(npz.input_spike_times_s) == truth.sizes["synapse"]
        )
    assert (tmp_path / "infer_rule.png").is_file() and "held-out bits/spike" in output
