import numpy as np
import pytest
import xarray as xr
from click.testing import CliRunner

from neurofwp.cli import main
from neurofwp.networks import song2000


def middle_third(weights) -> float:
    weights = np.asarray(weights)
    return float(np.mean((weights > 1 / 3) & (weights < 2 / 3)))


def test_stdp_competition_drives_weights_to_the_bounds():
    """Song et al. (2000): from a uniform start on [0, g_max], STDP empties the middle of the weight
    distribution and piles weights up at both bounds. 20 s of the standard network show the trend."""
    result = song2000.simulate(20.0, seed=0, show_progress=False)
    start, end = result.weight.isel(time=0).values, result.final_weight.values
    assert middle_third(start) == pytest.approx(1 / 3, abs=0.04)  # uniform start
    assert middle_third(end) < 0.29
    assert song2000.bimodality(end) > song2000.bimodality(start) + 0.05
    assert np.mean(end < 0.1) > 0.1 and np.mean(end > 0.9) > 0.1  # both modes populated
    assert result.rate.attrs["units"] == "Hz" and result.time.attrs["units"] == "s"
    assert 5 < float(result.rate[-5:].mean()) < 60  # the output rate stays physiological


@pytest.mark.slow
def test_song2000_standard_parameters_100s():
    result = song2000.simulate(100.0, seed=0, show_progress=False)
    end = result.final_weight.values
    assert middle_third(end) < 0.22
    assert song2000.bimodality(end) > 0.6


def test_simulate_command_writes_netcdf_and_figures(tmp_path):
    result = CliRunner().invoke(
        main, ["simulate", "song2000", "--duration", "500ms", "--no-progress", "--out", str(tmp_path)]
    )
    assert result.exit_code == 0, result.output
    ds = xr.load_dataset(tmp_path / "song2000.nc")
    assert set(ds.data_vars) == {"weight", "rate", "final_weight"}
    assert ds.attrs["rule"] == "stdp" and ds.attrs["duration_s"] == 0.5
    assert (tmp_path / "song2000.png").stat().st_size > 0 and (tmp_path / "song2000.svg").exists()
    bad = CliRunner().invoke(
        main, ["simulate", "song2000", "--duration", "-1s", "--no-progress", "--out", str(tmp_path)]
    )
    assert bad.exit_code == 2 and "duration must be > 0" in bad.output
