import subprocess
import sys

import xarray as xr
from click.testing import CliRunner

from neurofwp.cli import main


def test_demo_prints_table_and_saves_netcdf(tmp_path):
    out = tmp_path / "capacity.nc"
    result = CliRunner().invoke(
        main, ["demo", "--pairs", "8,64,128", "--seeds", "2", "--no-progress", "--out", str(out)]
    )
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
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"neurofwp: error: output folder {tmp_path / 'missing'} does not exist"
    ]
    assert "Traceback" not in result.stderr


def test_demo_bad_pairs_is_usage_error():
    result = CliRunner().invoke(main, ["demo", "--pairs", "eight"])
    assert result.exit_code == 2
    assert "expected a list like" in result.output


def test_predict_command_writes_dataset(tmp_path):
    out = tmp_path / "pred.nc"
    result = CliRunner().invoke(
        main, ["predict", "triplet", "sjostrom2001", "--param", "A3_plus=6.5e-3", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert "E = 0.4084" in result.output
    saved = xr.load_dataset(out)
    assert set(saved.data_vars) >= {"dw_percent_model", "dw_percent", "sem_percent"}
    assert saved.attrs["param_A3_plus"] == 6.5e-3 and saved.attrs["backend"] == "torch"


def test_predict_bad_input_is_one_line_and_exit_2(tmp_path):
    csv = tmp_path / "p.csv"
    csv.write_text("protocol,pre_times_ms,post_times_ms,repeat_hz,n_repeats\na,0,10,0,60\n")
    cases = [
        (["predict", "hebb", "sjostrom2001"], "unknown rule 'hebb'"),
        (["predict", "stdp", "sjostrom2001", "--param", "tau_plus_ms=-5"], "tau_plus_ms must be > 0"),
        (["predict", "stdp", "sjostrom2001", "--param", "A_plus=nan"], "A_plus must be finite"),
        (["predict", "stdp", "sjostrom2001", "--param", "A_plsu=1"], "unknown parameter of rule 'stdp' 'A_plsu'"),
        (["predict", "stdp", str(csv)], "line 2, column repeat_hz: must be > 0"),
        (["predict", "stdp", str(tmp_path / "missing.csv")], "no such file"),
        (["predict", "stdp", "sjostrom2001", "--backend", "brian2", "--param", "tau_minus_ms=0"], "must be > 0"),
    ]
    for args, message in cases:
        result = subprocess.run([sys.executable, "-m", "neurofwp.cli", *args], capture_output=True, text=True)
        assert result.returncode == 2, (args, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and message in lines[0] and "Traceback" not in result.stderr, (args, result.stderr)
