"""The comparison: any rules × any datasets, model selection, figures by structure, a report made from results."""

import base64
import re
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from click.testing import CliRunner

from neurofwp import data
from neurofwp.analysis.compare import protocols_of
from neurofwp.cli import main

# Every test here reads one module fixture (a full comparison run): keep them on one test worker.
pytestmark = pytest.mark.xdist_group("compare")

RULE_FILE = Path(__file__).parent / "rules" / "stdp-soft.toml"
USER_CSV = """protocol,pre_times_ms,post_times_ms,repeat_hz,n_repeats,dw_percent,sem_percent
pair+10ms,0,10,1,60,30,6
pair-10ms,10,0,1,60,-20,5
triplet-pre-post-pre,0;15,5,1,60,5,4
"""
USER_SIDECAR = """citation = "A. Person (2026) made-up test data"
preparation = "test preparation"
"""


@pytest.fixture(scope="module")
def comparison(tmp_path_factory):
    folder = tmp_path_factory.mktemp("results")
    (folder / "mine.csv").write_text(USER_CSV)
    (folder / "mine.toml").write_text(USER_SIDECAR)
    arguments = ["compare", "--out", str(folder), "--starts", "1", "--no-progress", "--workers", "1"]
    arguments += ["--rules", "stdp", "--rules", "triplet", "--rules", str(RULE_FILE)]
    arguments += ["--data", "bipoo1998", "--data", "sjostrom2001", "--data", "wang2005_triplets"]
    arguments += ["--data", str(folder / "mine.csv")]
    result = CliRunner().invoke(main, arguments)
    assert result.exit_code == 0, result.output
    return folder, result.output


def test_datasets_are_coordinates_and_the_triplet_rule_explains_frequency(comparison):
    folder, _ = comparison
    result = xr.load_dataset(folder / "comparison.nc")
    names = ["bipoo1998", "sjostrom2001", "wang2005_triplets", str(folder / "mine.csv")]
    assert list(result.rule.values) == ["stdp", "triplet", "stdp-soft"]  # a file rule, named by its own name
    assert list(result.dataset.values) == names and result.E.dims == ("rule", "dataset")
    assert not any(name in variable for variable in result.variables for name in ("bipoo", "sjostrom", "wang"))
    e = result.E.sel(dataset="sjostrom2001")
    assert float(e.sel(rule="triplet")) <= 0.41 and float(e.sel(rule="stdp")) == pytest.approx(10.0, abs=0.5)
    rows = protocols_of(result, "sjostrom2001")
    assert rows.sizes["protocol_name"] == 10
    np.testing.assert_allclose(rows.dw_data.values, [p.dw_percent for p in data.protocols("sjostrom2001")])
    assert "[[traces]]" in str(result.rule_definition.sel(rule="stdp-soft").values)  # what produced it
    assert "made-up test data" in str(result.citation.sel(dataset=names[-1]).values)


def test_model_selection_numbers_follow_from_e(comparison):
    """k, log L, AIC and BIC by hand from E and the SEMs; the leave-one-out error is never below E."""
    folder, _ = comparison
    result = xr.load_dataset(folder / "comparison.nc")
    cell = result.sel(rule="triplet", dataset="sjostrom2001")
    sem = np.array([p.sem_percent for p in data.protocols("sjostrom2001")])
    P, k = len(sem), 6  # the triplet rule's six default free parameters
    log_l = -0.5 * (P * float(cell.E) + np.sum(np.log(2 * np.pi * sem**2)))
    assert int(cell.k) == k and float(cell.log_likelihood) == pytest.approx(log_l, rel=1e-9)
    assert float(cell.AIC) == pytest.approx(2 * k - 2 * log_l, rel=1e-9)
    assert float(cell.BIC) == pytest.approx(k * np.log(P) - 2 * log_l, rel=1e-9)
    bipoo = result.sel(rule="stdp", dataset="bipoo1998")  # no SEM: sigma is estimated, one more parameter
    assert int(bipoo.k) == 3 and str(result.E_units.sel(dataset="bipoo1998").values) == "percent^2"
    assert (result.E_cv >= result.E * (1 - 1e-9)).all()
    np.testing.assert_allclose(np.diagonal(result.E_transfer.values, axis1=1, axis2=2), result.E.values)
    free = result.parameter_free.sel(rule="triplet", dataset="sjostrom2001").astype(bool)
    at_bound = result.parameter_at_bound.sel(rule="triplet", dataset="sjostrom2001")[free]
    low = result.parameter_ci95_low.sel(rule="triplet", dataset="sjostrom2001")[free]
    assert (np.isnan(low.values) | (at_bound.values == 0)).all()  # no interval is claimed at a bound


def test_figures_follow_the_protocols_and_the_report_follows_the_results(comparison):
    folder, output = comparison
    for stem in (
        "data_bipoo1998",
        "data_sjostrom2001",
        "data_wang2005_triplets",
        "model_vs_data",
        "error_heatmap",
        "delta_aic",
        "parameters",
        "transfer_0",
        "capacity",
    ):
        png = (folder / f"{stem}.png").read_bytes()
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000, stem
        assert (folder / f"{stem}.svg").read_text().lstrip().startswith("<?xml")
    result = xr.load_dataset(folder / "comparison.nc")
    assert list(result.structure.values) == ["window", "frequency", "protocols", "protocols"]
    page = (folder / "report.html").read_text()
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    assert len(images) >= 10 and all(base64.b64decode(i)[:4] == b"\x89PNG" for i in images)
    assert "http" not in page.replace("http-equiv", "")
    markdown = (folder / "report.md").read_text()
    # Only what was compared is named: no built-in rule or bundled dataset that was not part of it.
    for absent in ("modulated STDP", "gated STDP", "sjostrom2001_synchronous", "wang2005_quadruplets"):
        assert absent not in markdown, absent
    assert "soft-bound" in markdown and "ΔAIC" in markdown
    assert "E (E_cv), ΔAIC" in output and "soft-bound" in output


def test_one_map_of_all_rules_puts_the_fits_beside_the_fast_weight_capacity(comparison):
    """capacity over rule in comparison.nc is the capacity of each rule as a fast-weight write rule
    (neurofwp.analysis.capacity on the comparison's S grid, seeds 0-2); the map figure and the report's table
    and sentence are made from it and from the fits."""
    from neurofwp.analysis.capacity import capacity
    from neurofwp.plasticity import resolve_rule

    folder, _ = comparison
    result = xr.load_dataset(folder / "comparison.nc")
    rules = [resolve_rule(r) for r in ("stdp", "triplet", str(RULE_FILE))]
    pairs = (8, 16, 32, 48, 64, 96, 128, 192, 256)
    expected = capacity(rules, n_pairs=pairs, seeds=range(3), unreadable="nan")
    np.testing.assert_array_equal(result.capacity.values, expected.values)
    assert result.capacity.dims == ("rule",) and result.capacity.attrs["units"] == "1"
    assert list(result.capacity_reason.values) == list(expected.reason.values)
    png = (folder / "rule_map.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    markdown = (folder / "report.md").read_text()
    assert "## Map of the rules: biology and fast-weight capacity" in markdown
    row = next(
        line
        for line in markdown.splitlines()
        if line.startswith("| Hebbian (pair STDP) | ") and len(line.split("|")) == 9
    )
    stdp_capacity = float(result.capacity.sel(rule="stdp"))
    assert f"| {stdp_capacity:g} |" in row
    assert "Map of the rules:" in markdown or "No fast-weight capacity" in markdown


@pytest.fixture(scope="module")
def stp_comparison(tmp_path_factory):
    """Pair STDP and Tsodyks-Markram on one weight-change and one train-response dataset."""
    folder = tmp_path_factory.mktemp("stp")
    arguments = ["compare", "--out", str(folder), "--starts", "1", "--no-progress", "--workers", "1"]
    arguments += ["--rules", "stdp", "--rules", "tsodyks-markram"]
    arguments += ["--data", "sjostrom2001_synchronous", "--data", "pvbc_hc7"]
    result = CliRunner().invoke(main, arguments)
    assert result.exit_code == 0, result.output
    return folder, result.output


def test_short_term_plasticity_is_compared_on_train_responses_only(stp_comparison):
    from neurofwp.analysis.compare import observations_of
    from neurofwp.fit import fit

    folder, _ = stp_comparison
    result = xr.load_dataset(folder / "comparison.nc")
    fitted = result.fitted.astype(bool).to_pandas()
    assert fitted.loc["stdp"].to_dict() == {"sjostrom2001_synchronous": True, "pvbc_hc7": False}
    assert fitted.loc["tsodyks-markram"].to_dict() == {"sjostrom2001_synchronous": False, "pvbc_hc7": True}
    assert np.isnan(result.E.values[~fitted.values]).all() and np.isfinite(result.E.values[fitted.values]).all()
    assert list(result.structure.values) == ["protocols", "trains"]
    assert str(result.E_units.sel(dataset="pvbc_hc7").values) == "amplitude^2"  # normalised, no SEM
    # weight-change rows only in `protocol`, measured responses in `observation`
    assert set(result.protocol_dataset.values) == {"sjostrom2001_synchronous"}
    assert set(result.observation_dataset.values) == {"pvbc_hc7"}
    # transfer only within a kind: nothing predicted across weight changes and trains
    assert np.isnan(result.E_transfer.sel(dataset="pvbc_hc7", predicted="sjostrom2001_synchronous")).all()

    # the train cell against an independent fit of the same data, seed and starts
    independent = fit("tsodyks-markram", data.resolve("pvbc_hc7"), starts=1, seed=0, show_progress=False)
    cell = result.sel(rule="tsodyks-markram", dataset="pvbc_hc7")
    assert float(cell.E) == pytest.approx(independent.attrs["E"], rel=1e-9)
    for key in ("k", "AIC", "BIC"):
        assert float(cell[key]) == pytest.approx(independent.attrs[key], rel=1e-9)
    assert str(cell.cv_method.values) == "refit" and float(cell.E_cv) >= float(cell.E) * (1 - 1e-9)
    rows = observations_of(result, "pvbc_hc7")
    expected = [
        float(independent.amplitude_model.sel(protocol=str(p), spike=int(s)))
        for p, s in zip(rows.observation_protocol.values, rows.observation_spike.values, strict=True)
    ]
    measured = [
        float(independent.amplitude.sel(protocol=str(p), spike=int(s)))
        for p, s in zip(rows.observation_protocol.values, rows.observation_spike.values, strict=True)
    ]
    np.testing.assert_allclose(rows.amplitude_model.sel(rule="tsodyks-markram").values, expected, rtol=1e-9)
    np.testing.assert_allclose(rows.amplitude_data.values, measured)
    assert rows.observation_spike.values.min() == 2  # normalised: the first response is not an observation
    assert np.isfinite(rows.amplitude_cv.sel(rule="tsodyks-markram").values).all()
    assert np.isnan(rows.amplitude_model.sel(rule="stdp").values).all()
    times = [
        data.resolve("pvbc_hc7")[list(independent.protocol.values).index(p)].pre_times_ms[s - 1]
        for p, s in zip(rows.observation_protocol.values, rows.observation_spike.values, strict=True)
    ]
    np.testing.assert_allclose(rows.observation_time_ms.values, times)


def test_short_term_plasticity_figures_and_report(stp_comparison):
    folder, _ = stp_comparison
    for stem in ("data_pvbc_hc7", "data_sjostrom2001_synchronous", "model_vs_data", "error_heatmap", "parameters"):
        png = (folder / f"{stem}.png").read_bytes()
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000, stem
    markdown = (folder / "report.md").read_text()
    assert "pvbc_hc7 (3 trains, 30 measured responses" in markdown and "held-out trains" in markdown
    assert not re.search(r"\bnan\b", markdown, re.IGNORECASE)  # a skipped cell is left out, not printed
    for absent in ("triplet", "bipoo1998", "gated STDP", "modulated STDP", "wang2005"):  # not compared: not named
        assert absent not in markdown.split("## Figures")[0], absent


def test_a_selection_without_a_rule_that_can_explain_the_data_is_refused():
    from neurofwp.analysis.compare import DEFAULT_RULES, compare, explains
    from neurofwp.analysis.structure import classify
    from neurofwp.errors import NeurofwpError
    from neurofwp.plasticity import resolve_rule

    with pytest.raises(NeurofwpError, match="train responses need a rule with a response"):
        compare(["stdp", "triplet"], ["pvbc_hc7"], show_progress=False)
    with pytest.raises(NeurofwpError, match="weight changes a rule that changes w"):
        compare(["tsodyks-markram"], ["sjostrom2001_synchronous"], show_progress=False)
    # the default comparison covers every bundled measured dataset, train responses included
    assert "tsodyks-markram" in DEFAULT_RULES and "pvbc_hc7" in data.measured()
    rules = [resolve_rule(r) for r in DEFAULT_RULES]
    for name in data.measured():
        assert any(explains(rule, data.resolve(name)) for rule in rules), name
    assert classify(data.resolve("pvbc_hc7")).kind == "trains"
