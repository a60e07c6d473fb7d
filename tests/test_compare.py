import base64
import re

import pytest
import xarray as xr
from click.testing import CliRunner

from neurofwp.cli import main

# Every test here reads one module fixture (a full comparison run): keep them on one test worker.
pytestmark = pytest.mark.xdist_group("compare")


@pytest.fixture(scope="module")
def comparison(tmp_path_factory):
    folder = tmp_path_factory.mktemp("results")
    result = CliRunner().invoke(main, ["compare", "--out", str(folder), "--starts", "1", "--no-progress"])
    assert result.exit_code == 0, result.output
    return folder, result.output


def test_comparison_dataset(comparison):
    folder, _ = comparison
    result = xr.load_dataset(folder / "comparison.nc")
    assert result.E.dims == ("rule", "dataset")
    assert list(result.rule.values) == ["stdp", "delta", "stdp-modulated", "triplet"]
    e = result.E.sel(dataset="sjostrom2001")
    assert float(e.sel(rule="triplet")) <= 0.41  # the biological reference explains the frequency data
    assert float(e.sel(rule="stdp")) == pytest.approx(10.0, abs=0.5)  # the additive pair rule cannot
    assert float(e.sel(rule="triplet")) == float(e.min())
    assert result.window_curve.dims == ("rule", "dt_ms") and result.window_curve.attrs["units"] == "percent"
    capacity = result.retrieval_error
    assert (capacity.sel(fast_rule="delta") <= capacity.sel(fast_rule="hebbian")).all()
    assert (capacity.sel(fast_rule="delta-fitted-beta") <= capacity.sel(fast_rule="delta") + 1e-12).all()


def test_figures_and_report(comparison):
    folder, output = comparison
    for stem in ("window", "frequency", "model_vs_data", "error_heatmap", "capacity"):
        png = (folder / f"{stem}.png").read_bytes()
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
        assert (folder / f"{stem}.svg").read_text().lstrip().startswith("<?xml")
    page = (folder / "report.html").read_text()
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    assert len(images) == 5 and all(base64.b64decode(i)[:4] == b"\x89PNG" for i in images)
    assert (
        "<table>" in page and "triplet (biological reference)" in page and "http" not in page.replace("http-equiv", "")
    )
    markdown = (folder / "report.md").read_text()
    assert "| rule | bipoo1998 | sjostrom2001 |" in markdown and "![window](window.png)" in markdown
    assert "fit error E" in output
