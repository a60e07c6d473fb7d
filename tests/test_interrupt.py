"""Ctrl-C: a sweep stops within seconds, keeps its finished cells, leaves no worker behind, and resumes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest
from click.testing import CliRunner

from neurofwp import cli, sweeps

#: Seconds within which an interrupted sweep must have exited (workers stopped, message printed).
PROMPT_S = 5.0

# Cell 0 is quick; the others run far longer than PROMPT_S, so only stopping them counts as prompt.
TASK_MODULE = """
import os, time

def nap(coords):
    seconds = 0.2 if coords["cell"] == 0 else 60.0
    time.sleep(seconds * float(os.environ.get("NAP_SCALE", "1")))
    return {"slept": seconds}
"""

DRIVER = """
import sys
from neurofwp import sweeps
import naps

if __name__ == "__main__":
    store = sweeps.CellStore(sys.argv[1], {"task": "nap"})
    try:
        sweeps.run(naps.nap, [{"cell": i} for i in range(4)], store=store, workers=2, progress=False)
    except sweeps.SweepInterrupted as interrupt:
        print(interrupt, flush=True)
        sys.exit(130)
    print("complete", flush=True)
"""


def _saved(folder: Path) -> list[Path]:
    return sorted(p for p in folder.glob("*.json") if p.name != "sweep.json") if folder.exists() else []


def _interrupt_when_saved(process: subprocess.Popen, cells: Path, count: int, timeout_s: float = 300) -> float:
    """Wait until ``count`` cells are saved, then SIGINT the process group (as Ctrl-C does); return the time."""
    deadline = time.monotonic() + timeout_s
    while len(_saved(cells)) < count:
        assert process.poll() is None, process.communicate()[0]
        assert time.monotonic() < deadline, "no cell finished in time"
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGINT)
    return time.monotonic()


def _assert_no_children_left(children: list[psutil.Process]) -> None:
    _, alive = psutil.wait_procs(children, timeout=1)
    # An exited child of the exited sweep stays a zombie until a reaper collects it (not every container has one).
    running = [p for p in alive if _status(p) not in (psutil.STATUS_ZOMBIE, None)]
    assert not running, f"worker processes outlived the interrupted sweep: {running}"


def _status(process: psutil.Process) -> str | None:
    try:
        return process.status()
    except psutil.NoSuchProcess:
        return None


def test_interrupted_pool_sweep_stops_at_once_and_resumes(tmp_path):
    (tmp_path / "naps.py").write_text(textwrap.dedent(TASK_MODULE))
    (tmp_path / "driver.py").write_text(textwrap.dedent(DRIVER))
    cells = tmp_path / "cells"
    env = {**os.environ, "PYTHONPATH": str(tmp_path), "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, str(tmp_path / "driver.py"), str(cells)]
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               start_new_session=True)  # fmt: skip
    started = _interrupt_when_saved(process, cells, 1)
    children = psutil.Process(process.pid).children(recursive=True)
    output, _ = process.communicate(timeout=60)
    elapsed = time.monotonic() - started
    assert elapsed < PROMPT_S, f"exit {elapsed:.1f} s after the interrupt: {output}"
    assert process.returncode == 130, output
    assert f"interrupted: 1 of 4 cells saved in {cells}; rerun the same command to continue" in output
    assert "Traceback" not in output, output
    _assert_no_children_left(children)
    (kept,) = _saved(cells)
    assert json.loads(kept.read_text())["coords"] == {"cell": 0}
    stamp = kept.stat().st_mtime_ns

    rerun = subprocess.run(command, env={**env, "NAP_SCALE": "0.01"}, capture_output=True, text=True, timeout=120)
    assert rerun.returncode == 0 and "complete" in rerun.stdout, rerun.stdout + rerun.stderr
    assert len(_saved(cells)) == 4 and kept.stat().st_mtime_ns == stamp  # resumed, cell 0 not recomputed


def test_interrupt_is_one_line_and_status_130(monkeypatch, tmp_path):
    """The command line reports what the sweep kept, not click's bare "Aborted!"."""
    store = sweeps.CellStore(tmp_path / "cells", {})

    def interrupted(*args, **kwargs):
        raise sweeps.SweepInterrupted(3, 8, store)

    from neurofwp import grid

    monkeypatch.setattr(grid, "run", interrupted)
    config = tmp_path / "s.toml"
    config.write_text('kind = "predict"\nrules = ["stdp"]\ndatasets = ["bipoo1998"]\n')
    result = CliRunner().invoke(cli.main, ["sweep", str(config), "--out", str(tmp_path / "out"), "--no-progress"])
    assert result.exit_code == cli.INTERRUPTED_STATUS
    lines = [line for line in result.output.splitlines() if line.startswith("neurofwp:")]
    assert lines == [f"neurofwp: interrupted: 3 of 8 cells saved in {store.folder}; rerun the same command to continue"]
    assert "Aborted" not in result.output


SLOW_FIT = """
kind = "fit"
rules = ["triplet"]
datasets = ["sjostrom2001"]
starts = 2
[grid.triplet]
tau_x_ms = [20.0, 50.0, 101.0, 150.0]
"""


@pytest.mark.slow
@pytest.mark.parametrize("parallel", [["--workers", "2"], ["--scheduler", "local:2"]], ids=["processes", "dask"])
def test_ctrl_c_stops_a_real_sweep(tmp_path, parallel):
    """SIGINT to `neurofwp sweep`'s process group while two workers fit: prompt exit, cells kept, rerun resumes."""
    config = tmp_path / "fits.toml"
    config.write_text(SLOW_FIT)
    out = tmp_path / "out"
    command = [sys.executable, "-m", "neurofwp", "sweep", str(config), "--out", str(out), "--no-progress", *parallel]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               start_new_session=True)  # fmt: skip
    cells = out / "cells_fits"
    started = _interrupt_when_saved(process, cells, 1)
    children = psutil.Process(process.pid).children(recursive=True)
    output, _ = process.communicate(timeout=120)
    elapsed = time.monotonic() - started
    # dask's nanny gives a busy worker 4 s before it kills it; a process pool stops in well under a second.
    assert elapsed < PROMPT_S + (3 if "--scheduler" in parallel else 0), f"exit after {elapsed:.1f} s: {output}"
    assert process.returncode == 130, output
    saved = _saved(cells)
    assert 1 <= len(saved) < 4
    assert f"interrupted: {len(saved)} of 4 cells saved in {cells}; rerun the same command to continue" in output
    assert "Traceback" not in output and "leaked" not in output, output
    _assert_no_children_left(children)
    stamps = {p.name: p.stat().st_mtime_ns for p in saved}

    rerun = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert len(_saved(cells)) == 4 and (out / "fits.nc").exists()
    assert {p.name: p.stat().st_mtime_ns for p in saved} == stamps
