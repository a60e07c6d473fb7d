import subprocess
import sys

import xarray as xr
from click.testing import CliRunner

from neurofwp.cli import main


def test_demo_prints_table_and_saves_netcdf(tmp_path):
    out = tmp_path / "capacity.nc"
    result = CliRunner().invoke(main, ["demo", "--pairs", "8,64,128", "--seeds", "2", "--no-progress", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "hebbian/identity (Dk=64)" in result.output and "delta/dpfp (Dk=128)" in result.output
    lines = [line.split() for line in result.output.splitlines() if line.strip().split()[0].isdigit()]
    assert [int(row[0]) for row in lines] == [8, 64, 128]
    curve = xr.load_dataset(out)["retrieval_error"]
    assert curve.dims == ("rule", "feature_map", "seed", "n_pairs")
    # the printed numbers are the saved ones
    printed = float(lines[1][1])
    assert abs(printed - float(curve.sel(rule="hebbian", feature_map="identity", n_pairs=64).mean())) < 1e-3


def test_demo_bad_output_folder_is_one_line_and_exit_2(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "neurofwp.cli", "demo", "--out", str(tmp_path / "missing" / "x.nc")],
        capture_output=True, text=True,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [f"neurofwp: error: output folder {tmp_path / 'missing'} does not exist"]
    assert "Traceback" not in result.stderr


def test_demo_bad_pairs_is_usage_error():
    result = CliRunner().invoke(main, ["demo", "--pairs", "eight"])
    assert result.exit_code == 2
    assert "expected a list like" in result.output
