"""Sweeps: cell stores, local processes vs dask.distributed, resuming after SIGKILL, sweep files."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psutil
import pytest
import xarray as xr

from neurofwp import grid, sweeps
from neurofwp.errors import NeurofwpError

PREDICT = """
kind = "predict"
rules = ["stdp", "triplet"]
datasets = ["sjostrom2001", "bipoo1998"]
[grid.stdp]
A_plus = [0.005, 0.01]
tau_plus_ms = [10.0, 20.0]
[grid.triplet]
tau_x_ms = [50.0, 101.0]
"""

FIT = """
kind = "fit"
rules = ["stdp"]
datasets = ["sjostrom2001"]
seeds = [0, 1]
starts = 2
[grid.stdp]
tau_plus_ms = [8.0, 12.0, 16.8, 25.0]
"""


def _write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text)
    return path


def test_gather_builds_named_dims_and_pads_series():
    cells = [{"a": "x", "b": 1}, {"a": "x", "b": 2}, {"a": "y", "b": 1}]
    results = [{"v": 1.0, "s": [1.0, 2.0]}, {"v": 2.0, "s": [3.0]}, {"v": 3.0, "s": []}]
    data = sweeps.gather(cells, results, series_dims={"s": "k"}, variable_attrs={"v": {"units": "ms"}})
    assert data.v.dims == ("a", "b") and data.v.attrs["units"] == "ms"
    np.testing.assert_array_equal(data.v.values, [[1.0, 2.0], [3.0, np.nan]])
    np.testing.assert_array_equal(data.s.sel(a="x", b=2).values, [3.0, np.nan])
    assert sweeps.cell_key({"model": "dpfp2-sum", "S": 20}) == "model=dpfp2-sum,S=20"
    assert sweeps.cell_key({"path": "a/b c"}) == "path=a_b_c"


def test_scheduler_names():
    assert sweeps.parse_scheduler(None) is None
    assert sweeps.parse_scheduler("local:3") == ("local", 3)
    assert sweeps.parse_scheduler("tcp://10.0.0.1:8786") == ("address", "tcp://10.0.0.1:8786")
    for bad in ("local:0", "local:x", "10.0.0.1:8786", "http://host"):
        with pytest.raises(sweeps.SweepError, match="scheduler"):
            sweeps.parse_scheduler(bad)


def test_saving_a_cell_removes_what_a_killed_write_of_it_left(tmp_path):
    folder = tmp_path / "cells"
    folder.mkdir()
    cell, other = {"rule": "a[1]"}, {"rule": "b"}
    stale = folder / f".{sweeps.cell_key(cell)}.json.x1y2.tmp"  # as atomic_path names them
    unrelated = folder / f".{sweeps.cell_key(other)}.json.x1y2.tmp"
    stale.write_text("{")
    unrelated.write_text("{")
    store = sweeps.CellStore(folder, {"seed": 0})  # a rerun opens the store the killed run left
    store.save(cell, {"v": 1.0})
    assert not stale.exists() and unrelated.exists()  # the other cell's write may still be in flight
    assert store.load(cell) == {"v": 1.0}


def test_cell_store_refuses_another_configuration_and_bad_files(tmp_path):
    store = sweeps.CellStore(tmp_path / "cells", {"seed": 0})
    store.save({"x": 1}, {"v": 2.0})
    assert sweeps.CellStore(tmp_path / "cells", {"seed": 0}).load({"x": 1}) == {"v": 2.0}
    with pytest.raises(sweeps.SweepError, match="differs in: seed"):
        sweeps.CellStore(tmp_path / "cells", {"seed": 1})
    store.path({"x": 2}).write_text("{not json")
    with pytest.raises(sweeps.SweepError, match="not a valid sweep file"):
        store.load({"x": 2})
    with pytest.raises(NeurofwpError, match="does not exist"):
        sweeps.CellStore(tmp_path / "missing" / "cells", {})
    assert not list(tmp_path.glob("**/*.tmp"))


def test_sweep_file_errors_name_the_problem(tmp_path):
    cases = {
        'kind = "predict"\nrules = ["stpd"]\ndatasets = ["bipoo1998"]': "unknown rule 'stpd'",
        'rules = ["stdp"]\ndatasets = ["nowhere.csv"]': "neither a bundled dataset",
        'rules = ["stdp"]\ndatasets = ["bipoo1998"]\n[grid.stdp]\nA_pls = [1.0]': "unknown parameter 'A_pls'",
        'rules = ["stdp"]\ndatasets = ["bipoo1998"]\n[grid.stdp]\ntau_plus_ms = [-1.0]': "must be > 0 ms",
        'rules = ["stdp"]\ndatasets = ["bipoo1998"]\nkind = "optimise"': "kind must be one of",
        'rules = ["stdp"]\ndatasets = ["bipoo1998"]\nbackend = "nest"': "backend must be one of",
        'rules = ["stdp"]\ndatasets = ["bipoo1998"]\nrule = "x"': "unknown key(s) rule",
        'rules = ["stdp"\n': "not a valid TOML file",
        'datasets = ["bipoo1998"]': "rules must be a non-empty list",
        'rules = ["stdp"]\ndatasets = ["bipoo1998"]\n[grid.triplet]\ntau_x_ms = [1.0]': "not one of the sweep's rules",
    }
    for text, message in cases.items():
        with pytest.raises(grid.SweepConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
            grid.load(_write(tmp_path, "bad.toml", text))
    with pytest.raises(grid.SweepConfigError, match="does not exist"):
        grid.load(tmp_path / "absent.toml")


def test_predict_sweep_matches_predict(tmp_path):
    from neurofwp import data, plasticity

    config = grid.load(_write(tmp_path, "p.toml", PREDICT))
    result = grid.run(config, progress=False)
    assert result.E.dims == ("rule", "dataset", "seed", "A_plus", "tau_plus_ms", "tau_x_ms")  # see test_grid.py
    np.testing.assert_array_equal(result.A_plus.values, [0.005, 0.01, np.nan])  # NaN: triplet does not sweep it
    expected = plasticity.predict("stdp", data.protocols("sjostrom2001"), {"A_plus": 0.01, "tau_plus_ms": 20.0})
    cell = result.sel(rule="stdp", A_plus=0.01, tau_plus_ms=20.0, tau_x_ms=np.nan, dataset="sjostrom2001", seed=0)
    assert float(cell.E) == expected.attrs["E"]
    np.testing.assert_array_equal(cell.dw_percent_model.values[: expected.sizes["protocol"]], expected.dw_percent_model)
    assert result.E.sel(rule="triplet").notnull().sum() == 2 * 2  # two grid points on two datasets, the rest NaN


def test_dask_cluster_equals_this_process(tmp_path):
    """A loopback LocalCluster with two worker processes gives exactly the in-process result."""
    from distributed import LocalCluster

    from neurofwp import retrieval as rt

    predict_config = grid.load(_write(tmp_path, "p.toml", PREDICT))
    fit_config = grid.load(_write(tmp_path, "f.toml", FIT.replace("seeds = [0, 1]", "seeds = [0]")))
    tiny = rt.TrainConfig(max_steps=20, batch_size=4, eval_every=10, eval_sequences=1)
    here = [grid.run(predict_config, progress=False), grid.run(fit_config, progress=False)]
    here_retrieval = rt.sweep(2, ["dpfp1-delta"], [4, 5], config=tiny, progress=False)
    with LocalCluster(n_workers=2, threads_per_worker=1, host="127.0.0.1", dashboard_address=":0") as cluster:
        address = cluster.scheduler_address
        there = [grid.run(c, scheduler=address, progress=False) for c in (predict_config, fit_config)]
        there_retrieval = rt.sweep(2, ["dpfp1-delta"], [4, 5], config=tiny, scheduler=address, progress=False)
    for a, b in zip(here, there, strict=True):
        xr.testing.assert_identical(a, b)
    xr.testing.assert_identical(here_retrieval.drop_vars("seconds"), there_retrieval.drop_vars("seconds"))


def test_scheduler_local_n_starts_and_stops_a_cluster(tmp_path, monkeypatch):
    config = grid.load(_write(tmp_path, "p.toml", PREDICT))
    xr.testing.assert_identical(grid.run(config, progress=False), grid.run(config, scheduler="local:2", progress=False))
    monkeypatch.setattr(sweeps, "CONNECT_TIMEOUT_S", 1)
    with pytest.raises(sweeps.SweepError, match="cannot reach the dask scheduler"):
        grid.run(config, scheduler="tcp://127.0.0.1:9", progress=False)


def test_local_cluster_workers_keep_the_default_allocator():
    """dask's MALLOC_TRIM_THRESHOLD_ makes large torch allocations fault their pages in every time."""
    # A lambda is pickled by value, so the worker needs no access to this test module.
    read = lambda coords: {"trim": os.environ.get("MALLOC_TRIM_THRESHOLD_"), "omp": os.environ.get("OMP_NUM_THREADS")}  # noqa: E731
    before = dict(os.environ)
    (result,) = sweeps.run(read, [{"cell": 0}], scheduler="local:1", progress=False)
    assert result == {"trim": None, "omp": "1"}  # dask's other worker settings are kept
    assert dict(os.environ) == before  # and none of them leaks into this process


def _cells(folder: Path) -> list[Path]:
    return sorted(p for p in folder.glob("*.json") if p.name != "sweep.json")


def test_sweep_resumes_after_sigkill(tmp_path):
    """Kill a real `neurofwp sweep` part-way; the rerun skips finished cells and ends with the same Dataset."""
    config_path = _write(tmp_path, "fit.toml", FIT)
    command = [sys.executable, "-m", "neurofwp", "sweep", str(config_path), "--no-progress"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    killed_dir, clean_dir = tmp_path / "killed", tmp_path / "clean"
    killed_dir.mkdir()
    process = subprocess.Popen(
        [*command, "--out", str(killed_dir)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    cells = killed_dir / "cells_fit"
    deadline = time.time() + 300
    while len(_cells(cells) if cells.exists() else []) < 2 and process.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    pool_workers = psutil.Process(process.pid).children(recursive=True)
    assert pool_workers, "the sweep runs its cells on worker processes"
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    # Orphaned pool workers notice within a second or two and exit instead of waiting forever.
    _, alive = psutil.wait_procs(pool_workers, timeout=10 * sweeps.PARENT_CHECK_S + 5)
    assert not alive, f"pool workers outlived the killed sweep: {alive}"
    done = _cells(cells)
    assert 2 <= len(done) < 8, f"the kill should land part-way (cells done: {len(done)})"
    assert not (killed_dir / "fit.nc").exists()
    for path in done:  # every stored cell is complete JSON: written to a temporary file, then renamed
        assert "E" in json.loads(path.read_text())["result"]
    stamps = {p.name: p.stat().st_mtime_ns for p in done}

    resumed = subprocess.run([*command, "--out", str(killed_dir)], env=env, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert {p.name: p.stat().st_mtime_ns for p in done} == stamps  # finished cells were not recomputed
    clean_dir.mkdir()
    clean = subprocess.run([*command, "--out", str(clean_dir)], env=env, capture_output=True, text=True)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    with xr.open_dataset(killed_dir / "fit.nc") as after_kill, xr.open_dataset(clean_dir / "fit.nc") as uninterrupted:
        xr.testing.assert_identical(after_kill.load(), uninterrupted.load())
    assert not list(tmp_path.glob("**/.*.tmp"))
