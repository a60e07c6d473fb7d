"""Analysis scripts under analyses/ run on real result files and compute what they claim."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from neurofwp import retrieval as rt
from neurofwp.io import save_netcdf

ROOT = Path(__file__).resolve().parents[1]


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "analyses" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_capacity_is_the_largest_s_before_the_first_failure():
    analysis = _load("retrieval_vs_paper")
    sizes = np.array([60, 20, 40, 80])
    assert analysis.capacity(sizes, np.array([0.2, 0.0, 0.001, 0.0]), 0.01) == 40  # 80 passes, but after a failure
    assert analysis.capacity(sizes, np.array([0.0, 0.0, 0.0, 0.0]), 0.01) == 80
    assert analysis.capacity(sizes, np.array([0.5, 0.5, 0.5, 0.5]), 0.01) == 0
    assert np.isnan(analysis.capacity(sizes, np.full(4, np.nan), 0.01))
    reference = rt.paper_reference(1)
    linear = reference[reference.model == "linear-sum"]
    assert analysis.capacity(linear.S.values, linear.best_eval_loss.values, 0.01) == 40  # the paper: 40-60


def test_retrieval_vs_paper_report(tmp_path):
    analysis = _load("retrieval_vs_paper")
    tiny = rt.TrainConfig(max_steps=20, batch_size=4, eval_every=10, eval_sequences=1)
    result = rt.sweep(1, ["linear-sum"], [4, 6], config=tiny, progress=False)
    save_netcdf(result, tmp_path / "retrieval_setting1.nc")
    assert analysis.main([str(tmp_path)]) == 0
    report = (tmp_path / "retrieval_vs_paper.md").read_text()
    assert "## Setting 1" in report and "| linear (ELU+1), sum (d_dot=64) | 4–6 |" in report
    assert report.strip().endswith("| 40 |")  # the paper's capacity of the linear sum model
    assert (tmp_path / "retrieval_vs_paper_setting1.png").stat().st_size > 0
    with pytest.raises(SystemExit):
        analysis.main([])
    assert analysis.main([str(tmp_path / "empty")]) == 2


def test_comparison_figures_rebuild_from_the_saved_file(tmp_path, capsys):
    from neurofwp.analysis.compare import compare

    result = compare(
        ["stdp", "triplet"],
        ["sjostrom2001", "sjostrom2001_synchronous"],
        starts=1,
        cross_validate=False,
        capacity_pairs=(8, 16),
        show_progress=False,
    )
    save_netcdf(result, tmp_path / "comparison.nc")
    analysis = _load("comparison_figures")
    out = tmp_path / "subset"
    assert analysis.main([str(tmp_path / "comparison.nc"), "--out", str(out), "--datasets", "sjostrom2001"]) == 0
    assert (out / "data_sjostrom2001.png").stat().st_size > 10_000 and (out / "report.html").exists()
    assert not (out / "data_sjostrom2001_synchronous.png").exists()
    assert "sjostrom2001_synchronous" not in (out / "report.md").read_text()
    printed = capsys.readouterr().out
    assert "triplet" in printed and "dAIC" in printed
    assert analysis.main([str(tmp_path / "comparison.nc"), "--rules", "delta"]) == 2
