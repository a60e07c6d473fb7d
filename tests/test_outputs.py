"""What commands write: ordinary file modes, names that do not collide, progress, figures, headers."""

from __future__ import annotations

import os
import stat

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from click.testing import CliRunner

from neurofwp import recordings, sweeps
from neurofwp.cli import main
from neurofwp.io import save_json, save_netcdf


@pytest.fixture
def umask_022():
    previous = os.umask(0o022)
    yield 0o644  # 0666 & ~0022
    os.umask(previous)


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_results_have_the_mode_of_ordinary_files(tmp_path, umask_022):
    """Colleagues can read what neurofwp writes: 0666 & ~umask, as for any new file (not mkstemp's 0600)."""
    expected = umask_022
    assert _mode(save_netcdf(xr.Dataset({"x": ("t", [1.0, 2.0])}), tmp_path / "a.nc")) == expected
    assert _mode(save_json({"a": 1}, tmp_path / "a.json")) == expected
    store = sweeps.CellStore(tmp_path / "cells", {"seed": 0})
    store.save({"cell": 1}, {"v": 1.0})
    assert _mode(store.path({"cell": 1})) == expected and _mode(tmp_path / "cells" / "sweep.json") == expected
    result = CliRunner().invoke(main, ["predict", "stdp", "bipoo1998", "--out", str(tmp_path / "p.nc")])
    assert result.exit_code == 0, result.output
    assert _mode(tmp_path / "p.nc") == expected
    os.umask(0o077)  # a private umask is the user's choice, and is respected
    assert _mode(save_json({"a": 1}, tmp_path / "private.json")) == 0o600


def test_numeric_attrs_survive_a_round_trip_and_others_become_text(tmp_path):
    attrs = {"intervals": np.array([32.0, 40.0, 72.0, 80.0]), "lags": [1, 2], "flag": True, "grid": np.eye(2)}
    written = save_netcdf(xr.Dataset({"x": ("t", [1.0])}, attrs=attrs), tmp_path / "a.nc")
    loaded = xr.load_dataset(written).attrs
    np.testing.assert_array_equal(loaded["intervals"], attrs["intervals"])
    np.testing.assert_array_equal(loaded["lags"], [1, 2])
    assert loaded["flag"] == "True" and isinstance(loaded["grid"], str)  # netCDF has no bools or 2-d attrs


def _npz(path, seed: int) -> None:
    rng = np.random.default_rng(seed)
    stimulus = rng.standard_normal(8000)
    spikes = np.sort(rng.uniform(0, 8.0, 300))
    np.savez(path, spike_times_s=spikes, duration_s=8.0, stimulus=stimulus, stimulus_rate_hz=1000.0)


def test_fit_recording_names_files_after_the_recording_and_refuses_another_run(tmp_path):
    for name, seed in (("cellA", 0), ("cellB", 1)):
        _npz(tmp_path / f"{name}.npz", seed)
    out = tmp_path / "out"
    common = ["--steps", "2", "--lags", "4", "--no-progress", "--out", str(out)]
    runner = CliRunner()
    for name in ("cellA", "cellB"):
        result = runner.invoke(main, ["fit-recording", str(tmp_path / f"{name}.npz"), *common])
        assert result.exit_code == 0, result.output
    with xr.open_dataset(out / "recording_fit_cellA.nc") as a, xr.open_dataset(out / "recording_fit_cellB.nc") as b:
        assert (
            a.attrs["recording"] == "cellA" and b.attrs["recording"] == "cellB"
        )  # the second did not replace the first
    assert (out / "recording_fit_cellA.png").exists() and (out / "recording_fit_cellB.svg").exists()
    again = runner.invoke(main, ["fit-recording", str(tmp_path / "cellA.npz"), *common])  # the same run: replaced
    assert again.exit_code == 0, again.output
    other = runner.invoke(main, ["fit-recording", str(tmp_path / "cellA.npz"), *common, "--seed", "3"])
    assert other.exit_code == 2
    assert "recording_fit_cellA.nc holds the result of another run (seed 0 → 3)" in other.output
    with xr.open_dataset(out / "recording_fit_cellA.nc") as kept:
        assert int(kept.attrs["seed"]) == 0


def test_fit_recording_progress_advances_with_training_steps(monkeypatch):
    counts = {"total": None, "updates": 0}

    class Bar:
        def __init__(self, *args, total=None, **kwargs):
            counts["total"] = total

        def update(self, n=1):
            counts["updates"] += n

        def set_postfix_str(self, *args, **kwargs):
            pass

        def close(self):
            pass

    monkeypatch.setattr(recordings, "tqdm", Bar)
    rng = np.random.default_rng(0)
    recording = recordings.Recording(np.sort(rng.uniform(0, 4, 200)), 4.0, rng.standard_normal(4000), 1000.0)
    recordings.fit_recording(recording, bin_ms=2.0, lags=4, steps=7)
    assert counts == {"total": 3 * 7, "updates": 3 * 7}  # one tick per training step of each of the three models


def test_demo_header_describes_the_scale_it_prints():
    result = CliRunner().invoke(main, ["demo", "--pairs", "8,256", "--d-key", "16", "--seeds", "1", "--no-progress"])
    assert result.exit_code == 0, result.output
    header, scale, columns, *rows = result.output.splitlines()
    assert "mean over 1 seed" in header and not header.endswith("seeds")
    values = [float(x) for row in rows for x in row.split()[1:]]
    assert max(values) > 1  # Hebbian cross-talk at S = 256 >> Dk: worse than recalling nothing
    assert "above 1" in scale and "1 = as far off as recalling nothing" in scale


def test_retrieval_reference_points_are_visible():
    """A paper reference with one point (setting 2, dpfp2-sum at S = 20) is drawn with a marker."""
    from neurofwp.retrieval.figure import draw

    result = xr.Dataset(
        {"best_eval_loss": (("model", "S"), [[0.001, 0.2]])}, coords={"model": ["dpfp2-sum"], "S": [20, 40]}
    )
    reference = pd.DataFrame({"model": ["dpfp2-sum"], "S": [20], "best_eval_loss": [0.097]})
    (line,) = [line for line in draw(result, reference).axes[0].lines if line.get_gid() == "reference:dpfp2-sum"]
    assert list(line.get_xdata()) == [20] and line.get_marker() not in (None, "", "None", " ")


def test_help_lists_rules_and_datasets_and_results_name_their_data(tmp_path):
    from neurofwp import data
    from neurofwp.plasticity.rules import RULES

    runner = CliRunner()
    for command in ("predict", "fit"):
        text = runner.invoke(main, [command, "--help"]).output
        assert all(name in text for name in [*RULES, *data.list()]), text
    wrong = runner.invoke(main, ["predict", "stdp", "sjostrom"])
    assert wrong.exit_code == 2
    assert "unknown dataset 'sjostrom'; bundled: " + ", ".join(data.list()) + "; or give a CSV path" in wrong.output
    result = runner.invoke(main, ["predict", "stdp", "bipoo1998", "--out", str(tmp_path / "p.nc")])
    assert result.exit_code == 0, result.output
    with xr.open_dataset(tmp_path / "p.nc") as saved:
        assert saved.attrs["dataset"] == "bipoo1998" and "Bi" in saved.attrs["citation"]
        times = saved.post_times_ms
        assert times.attrs["units"] == "ms" and np.issubdtype(times.dtype, np.floating)
        first = data.protocols("bipoo1998")[0]
        np.testing.assert_allclose(times.isel(protocol=0).dropna("post_spike").values, first.post_times_ms)


def test_figures_leave_the_callers_matplotlib_alone(tmp_path):
    """A notebook keeps its backend and style: figures are bare Figures, seaborn's theme applies inside only."""
    script = f"""
import matplotlib
matplotlib.use("pdf")
import numpy as np, pandas as pd, xarray as xr
before = dict(matplotlib.rcParams)
from neurofwp import plotting, recordings
from neurofwp.analysis import figures
from neurofwp.retrieval.figure import figure
result = xr.Dataset({{"best_eval_loss": (("model", "S"), [[0.001, 0.2]])}},
                    coords={{"model": ["dpfp2-sum"], "S": [20, 40]}})
paths = figure(result, r"{tmp_path}/retrieval")
fit = xr.Dataset({{"bits_per_spike": ("model", [0.1, 0.2]), "rate": (("model", "time"), np.ones((2, 400))),
                  "spike_count": ("time", np.arange(400) % 7 == 0)}},
                 coords={{"model": ["ln", "delta-fwp"], "time": np.arange(400) * 0.002}}, attrs={{"test_start_s": 0.2}})
paths += recordings.figure(fit, r"{tmp_path}/fit")
import matplotlib.pyplot as plt
assert matplotlib.get_backend() == "pdf", matplotlib.get_backend()
changed = [k for k, v in matplotlib.rcParams.items() if str(before.get(k)) != str(v)]
assert not changed, changed
assert plt.get_fignums() == [], plt.get_fignums()
print(len(paths))
"""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "4" and (tmp_path / "fit.svg").exists() and (tmp_path / "retrieval.png").exists()
