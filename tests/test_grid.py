"""Sweep-file results are indexed by the grid: rule, dataset, seed and one dim per swept parameter."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from neurofwp import data, grid, plasticity
from neurofwp.errors import UnknownNameError
from neurofwp.io import save_netcdf

pytestmark = pytest.mark.xdist_group("grid")  # one run of the two-rule sweep (module fixture) for its tests

ONE_RULE = """
kind = "predict"
rules = ["stdp"]
datasets = ["bipoo1998"]
[grid.stdp]
tau_plus_ms = [20.0, 10.0]
tau_minus_ms = [33.7, 25.0]
"""

# stdp and triplet sweep different parameters, and share one (tau_plus_ms) with different values.
TWO_RULES = """
kind = "predict"
rules = ["stdp", "triplet"]
datasets = ["sjostrom2001", "bipoo1998"]
[grid.stdp]
A_plus = [0.005, 0.01]
tau_plus_ms = [10.0, 16.8]
[grid.triplet]
tau_x_ms = [50.0, 101.0]
tau_plus_ms = [16.8, 30.0]
"""

FIT = """
kind = "fit"
rules = ["stdp", "triplet"]
datasets = ["sjostrom2001"]
seeds = [0, 1]
starts = 1
[grid.stdp]
tau_plus_ms = [10.0, 20.0]
[grid.triplet]
tau_x_ms = [50.0]
"""


def _run(folder: Path, text: str) -> xr.Dataset:
    path = folder / "sweep.toml"
    path.write_text(text)
    return grid.run(grid.load(path), progress=False)


@pytest.fixture(scope="module")
def two_rules(tmp_path_factory) -> xr.Dataset:
    return _run(tmp_path_factory.mktemp("two_rules"), TWO_RULES)


def test_predict_sweep_is_indexed_by_its_parameters(tmp_path):
    result = _run(tmp_path, ONE_RULE)
    assert result.E.dims == ("rule", "dataset", "seed", "tau_plus_ms", "tau_minus_ms")
    assert "point" not in result.dims
    assert list(result.tau_plus_ms.values) == [10.0, 20.0]  # sorted
    assert result.tau_plus_ms.attrs["units"] == "ms"
    assert result.in_grid.all()  # one rule sweeping everything: a full grid, no NaN labels
    protocols = data.protocols("bipoo1998")
    for tau_plus, tau_minus in itertools.product([10.0, 20.0], [25.0, 33.7]):
        expected = plasticity.predict("stdp", protocols, {"tau_plus_ms": tau_plus, "tau_minus_ms": tau_minus})
        cell = result.sel(tau_plus_ms=tau_plus, tau_minus_ms=tau_minus).squeeze()
        assert float(cell.E) == expected.attrs["E"]
        np.testing.assert_array_equal(
            cell.dw_percent_model.values[: expected.sizes["protocol"]], expected.dw_percent_model
        )
    assert grid.parameters(result) == ["tau_plus_ms", "tau_minus_ms"]


def test_two_rules_with_different_grids_share_one_file(two_rules, tmp_path):
    result = two_rules
    assert result.E.dims == ("rule", "dataset", "seed", "A_plus", "tau_plus_ms", "tau_x_ms")
    # every value any rule sweeps; NaN last where some rule does not sweep the parameter
    np.testing.assert_array_equal(result.A_plus.values, [0.005, 0.01, np.nan])
    np.testing.assert_array_equal(result.tau_plus_ms.values, [10.0, 16.8, 30.0])
    np.testing.assert_array_equal(result.tau_x_ms.values, [50.0, 101.0, np.nan])
    assert int(result.in_grid.sum()) == 4 + 4
    assert result.E.notnull().sum() == 8 * 2  # per dataset: exactly the grid points, the rest NaN
    assert result.E.where(~result.in_grid).isnull().all()

    protocols = data.protocols("sjostrom2001")
    stdp = plasticity.predict("stdp", protocols, {"A_plus": 0.01, "tau_plus_ms": 10.0})
    triplet = plasticity.predict("triplet", protocols, {"tau_x_ms": 101.0, "tau_plus_ms": 30.0})
    at = {"dataset": "sjostrom2001", "seed": 0}
    triplet_cell = {"rule": "triplet", "A_plus": np.nan, "tau_plus_ms": 30.0, "tau_x_ms": 101.0, **at}  # NaN: not swept
    assert float(result.E.sel(rule="stdp", A_plus=0.01, tau_plus_ms=10.0, tau_x_ms=np.nan, **at)) == stdp.attrs["E"]
    assert float(result.E.sel(triplet_cell)) == triplet.attrs["E"]
    # both rules at a shared value of a shared parameter
    shared = result.E.sel(tau_plus_ms=16.8, **at)
    assert shared.sel(rule="stdp").notnull().sum() == 2 and shared.sel(rule="triplet").notnull().sum() == 2

    path = save_netcdf(result, tmp_path / "sweep.nc")
    with xr.open_dataset(path) as reopened:
        reopened = reopened.load()
    xr.testing.assert_identical(reopened, result)
    assert reopened.in_grid.dtype == bool
    assert float(reopened.E.sel(triplet_cell)) == triplet.attrs["E"]
    assert grid.best(reopened) == grid.best(result)

    own = grid.select(reopened, "triplet")  # one rule's own grid: no NaN labels, no other rule's values
    assert own.E.dims == ("dataset", "seed", "tau_plus_ms", "tau_x_ms")
    assert list(own.tau_plus_ms.values) == [16.8, 30.0] and list(own.tau_x_ms.values) == [50.0, 101.0]
    assert own.E.notnull().all()
    assert float(own.E.sel(tau_plus_ms=30.0, tau_x_ms=101.0, **at)) == triplet.attrs["E"]
    assert grid.select(reopened, "stdp").E.dims == ("dataset", "seed", "A_plus", "tau_plus_ms")
    with pytest.raises(UnknownNameError, match="'delta'"):
        grid.select(reopened, "delta")


def _lowest_by_hand(result: xr.Dataset) -> tuple[float, dict]:
    """Every entry of E, one by one: the lowest number and its labels (the first one on ties)."""
    lowest, where = math.inf, {}
    for index in itertools.product(*(range(n) for n in result.E.shape)):
        value = float(result.E.values[index])
        if not math.isnan(value) and value < lowest:
            lowest, where = value, {d: result[d].values[i] for d, i in zip(result.E.dims, index, strict=True)}
    return lowest, where


SWEPT = {"stdp": ["A_plus", "tau_plus_ms"], "triplet": ["tau_plus_ms", "tau_x_ms"]}  # as in TWO_RULES


def test_best_is_the_lowest_e_at_the_coordinates_of_its_rule(two_rules):
    lowest, where = _lowest_by_hand(two_rules)
    at = grid.best(two_rules)
    # the rule's own parameters only; a prediction has no seed
    swept = SWEPT[str(where["rule"])]
    assert at == {"rule": where["rule"], "dataset": where["dataset"], **{p: where[p] for p in swept}}
    assert list(at) == ["rule", "dataset", *swept]
    assert all(type(at[p]) is float for p in swept) and type(at["rule"]) is str
    full = {**at, "seed": 0, **{p: np.nan for p in grid.parameters(two_rules) if p not in at}}
    assert float(two_rules.E.sel(full)) == lowest == float(two_rules.E.min())

    # NaN is skipped, wherever it is: hide the lowest entry and the next one wins
    hidden = two_rules.copy(deep=True)
    hidden["E"].loc[full] = np.nan
    second, where = _lowest_by_hand(hidden)
    assert second >= lowest and where
    swept = SWEPT[str(where["rule"])]
    assert grid.best(hidden) == {"rule": where["rule"], "dataset": where["dataset"], **{p: where[p] for p in swept}}
    hidden["E"][:] = np.nan
    assert grid.best(hidden) == {}


def test_fit_sweep_keeps_the_fitted_parameters(tmp_path):
    result = _run(tmp_path, FIT)
    assert result.E.dims == ("rule", "dataset", "seed", "tau_plus_ms", "tau_x_ms")
    stdp = result.sel(rule="stdp", dataset="sjostrom2001", tau_x_ms=np.nan)
    np.testing.assert_array_equal(stdp.param_tau_plus_ms.values, [[10.0, 20.0, np.nan]] * 2)  # held at the grid value
    assert stdp.param_A_plus.sel(tau_plus_ms=[10.0, 20.0]).notnull().all()  # fitted
    triplet = result.sel(rule="triplet", dataset="sjostrom2001", tau_plus_ms=np.nan, tau_x_ms=50.0)
    assert (triplet.param_tau_x_ms == 50.0).all() and (triplet.param_tau_plus_ms == 16.8).all()  # not swept: default
    assert triplet.param_A3_plus.notnull().all() and result.param_A3_plus.sel(rule="stdp").isnull().all()
    at = grid.best(result)
    assert list(at)[:3] == ["rule", "dataset", "seed"]  # the seed of the random starts matters in a fit
    assert float(result.E.min()) == _lowest_by_hand(result)[0]
    assert at["seed"] == int(_lowest_by_hand(result)[1]["seed"])


def test_grid_files_that_cannot_be_a_grid_are_refused(tmp_path, monkeypatch):
    path = tmp_path / "bad.toml"
    path.write_text('rules = ["stdp"]\ndatasets = ["bipoo1998"]\n[grid.stdp]\ntau_plus_ms = [10.0, 20, 10]\n')
    with pytest.raises(grid.SweepConfigError, match="tau_plus_ms lists 10 twice"):
        grid.load(path)
    path.write_text(TWO_RULES)
    assert grid.load(path)  # 2 rules x 2 datasets x 3 x 3 x 3 entries
    monkeypatch.setattr(grid, "MAX_RESULT_ENTRIES", 2 * 2 * 3 * 3 * 3 - 1)
    with pytest.raises(grid.SweepConfigError, match="108 entries per variable for 16 cells"):
        grid.load(path)


def test_a_dataset_with_sem_on_some_rows_is_refused_when_the_file_loads(tmp_path):
    (tmp_path / "mixed.csv").write_text(
        "protocol,pre_times_ms,post_times_ms,repeat_hz,n_repeats,dw_percent,sem_percent\n"
        "a,0,10,1,60,20,5\n"
        "b,10,0,1,60,-10,\n"
    )
    config = tmp_path / "s.toml"
    config.write_text('kind = "predict"\nrules = ["stdp"]\ndatasets = ["mixed.csv"]\n')
    with pytest.raises(grid.SweepConfigError, match=r"s\.toml: dataset 'mixed\.csv': .*line 3 \(protocol 'b'\)"):
        grid.load(config)


def test_a_rule_file_is_a_rule_of_a_sweep_file(tmp_path):
    """A rule file named in a sweep file (relative to it) sweeps like a built-in; editing the file is a new sweep."""
    import shutil

    from neurofwp import sweeps
    from neurofwp.plasticity import load_rule

    shutil.copy(Path(__file__).parent / "rules" / "stdp-soft.toml", tmp_path / "soft.toml")
    config = tmp_path / "s.toml"
    config.write_text(
        'kind = "predict"\nrules = ["soft.toml"]\ndatasets = ["sjostrom2001"]\n'
        "[grid.stdp-soft]\nA_minus = [0.005, 0.02]\n"
    )
    loaded = grid.load(config)
    result = grid.run(loaded, progress=False, store=str(tmp_path / "cells"))
    rule = load_rule(tmp_path / "soft.toml")
    expected = plasticity.predict(rule, data.protocols("sjostrom2001"), {"A_minus": 0.02}).attrs["E"]
    assert float(result.E.sel(rule="stdp-soft", dataset="sjostrom2001", A_minus=0.02)) == expected
    text = (tmp_path / "soft.toml").read_text().replace("default = 0.01\n", "default = 0.02\n", 1)
    (tmp_path / "soft.toml").write_text(text)
    with pytest.raises(sweeps.SweepError, match="differs in: rules"):
        sweeps.CellStore(tmp_path / "cells", grid.load(config).fingerprint())
