"""Long Brian2 simulations checkpoint their state and resume to the same result."""

from __future__ import annotations

import dataclasses

import pytest
import xarray as xr

from neurofwp.networks import song2000

SMALL = song2000.Song2000Config(
    n_inputs=100, record_every_s=0.25, g_max=0.1
)  # 100 inputs need 10x the conductance to fire


@pytest.mark.slow  # compiles its own song2000 network: ~80 s on a fresh machine, 5 s with a warm Brian2 cache
def test_resumed_run_equals_uninterrupted_run(tmp_path):
    checkpoint = tmp_path / "song.ckpt"
    uninterrupted = song2000.simulate(2.0, seed=3, config=SMALL, show_progress=False)
    # an "interrupted" run: stops at 1 s, leaving its checkpoint ...
    first = song2000.simulate(
        1.0, seed=3, config=SMALL, checkpoint=checkpoint, checkpoint_every_s=0.5, show_progress=False
    )
    assert checkpoint.exists() and float(first.time[-1]) < 1.0
    # ... and the rerun continues from it instead of starting over
    resumed = song2000.simulate(
        2.0, seed=3, config=SMALL, checkpoint=checkpoint, checkpoint_every_s=0.5, show_progress=False
    )
    xr.testing.assert_identical(resumed, uninterrupted)
    assert uninterrupted.rate.sum() > 0  # the neuron fired, so the comparison is not of empty records
    assert not list(tmp_path.glob(".*.tmp"))


def test_checkpoint_of_another_run_is_refused(tmp_path):
    # The default network: its compiled code is shared with test_song2000 (a fresh machine compiles it once).
    config = song2000.Song2000Config()
    checkpoint = tmp_path / "song.ckpt"
    song2000.simulate(0.5, seed=1, config=config, checkpoint=checkpoint, show_progress=False)
    with pytest.raises(song2000.CheckpointError, match="differs in: seed"):
        song2000.simulate(1.0, seed=2, config=config, checkpoint=checkpoint, show_progress=False)
    with pytest.raises(song2000.CheckpointError, match="differs in: g_max"):
        song2000.simulate(
            1.0, seed=1, config=dataclasses.replace(config, g_max=0.02), checkpoint=checkpoint, show_progress=False
        )
    with pytest.raises(song2000.OutOfRangeError, match="beyond the requested duration"):
        song2000.simulate(0.25, seed=1, config=config, checkpoint=checkpoint, show_progress=False)
    checkpoint.write_bytes(b"not a pickle")
    with pytest.raises(song2000.CheckpointError, match="cannot be read"):
        song2000.simulate(1.0, seed=1, config=config, checkpoint=checkpoint, show_progress=False)
    with pytest.raises(song2000.OutOfRangeError, match="checkpoint interval"):
        song2000.simulate(1.0, config=config, checkpoint=tmp_path / "x", checkpoint_every_s=0, show_progress=False)


@pytest.mark.slow
def test_cli_resume_in_a_new_process_matches(tmp_path):
    """`neurofwp simulate --checkpoint-every` killed part-way: the rerun (a new process) ends with the same result."""
    import os
    import signal
    import subprocess
    import sys
    import time

    def command(out, duration):
        return [sys.executable, "-m", "neurofwp", "simulate", "song2000", "--duration", duration, "--out", str(out),
                "--checkpoint-every", "0.5s", "--no-progress"]  # fmt: skip

    resumed, clean = tmp_path / "resumed", tmp_path / "clean"
    resumed.mkdir()
    clean.mkdir()
    process = subprocess.Popen(command(resumed, "3s"), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    checkpoint = resumed / "song2000.checkpoint"
    deadline = time.time() + 300
    while not checkpoint.exists() and process.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert checkpoint.exists() and not (resumed / "song2000.nc").exists()
    for folder in (resumed, clean):
        finished = subprocess.run(command(folder, "3s"), capture_output=True, text=True)
        assert finished.returncode == 0, finished.stderr
    with xr.open_dataset(resumed / "song2000.nc") as a, xr.open_dataset(clean / "song2000.nc") as b:
        xr.testing.assert_identical(a.load(), b.load())
