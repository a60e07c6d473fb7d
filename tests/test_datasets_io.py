"""Data sources by name or path, and what the netCDF of predict and fit records about them."""

import numpy as np
import pytest
import xarray as xr

from neurofwp import data, plasticity
from neurofwp.data import UnknownDatasetError
from neurofwp.errors import NeurofwpError, UnknownNameError
from neurofwp.fit import fit
from neurofwp.io import save_netcdf
from neurofwp.protocols import ProtocolError, ProtocolTable

ROWS = (
    "protocol,pre_times_ms,post_times_ms,repeat_hz,n_repeats,dw_percent\npair,0,10,1,60,20\ntriplet,0;20,10,1,60,35\n"
)


def test_a_bundled_name_gives_its_protocols_name_and_citation():
    table = data.resolve("sjostrom2001")
    assert isinstance(table, ProtocolTable) and len(table) == 10
    assert table.name == "sjostrom2001" and table.citation == data.citation("sjostrom2001")
    assert table.citation.startswith("Sjostrom, Turrigiano & Nelson (2001)")
    assert list(table) == data.protocols("sjostrom2001")


def test_an_unknown_name_lists_the_bundled_datasets(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UnknownDatasetError) as caught:
        data.resolve("sjostrom")
    bundled = ", ".join(data.list())
    assert bundled.startswith("bipoo1998, ") and ", sjostrom2001, " in bundled
    assert str(caught.value) == f"unknown dataset 'sjostrom'; bundled: {bundled}; or give a CSV path"
    assert isinstance(caught.value, UnknownNameError) and isinstance(caught.value, NeurofwpError)


@pytest.mark.parametrize("source", ["absent.csv", "folder/absent", "sjostrom2001.csv"])
def test_a_missing_path_says_the_file_is_missing(tmp_path, monkeypatch, source):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ProtocolError, match=f"{source}: no such file"):
        data.resolve(source)


def test_a_csv_path_is_named_by_its_path_and_cited_by_its_comment_header(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mine.csv").write_text("# Doe et al. (2024), Fig. 2\n#   slices, 32 C\n" + ROWS)
    table = data.resolve("mine.csv")
    assert table.name == "mine.csv" and table.citation == "Doe et al. (2024), Fig. 2\nslices, 32 C"
    (tmp_path / "plain").write_text(ROWS)  # an existing file needs no suffix
    plain = data.resolve("plain")
    assert plain.name == "plain" and plain.citation == "" and len(plain) == 2
    assert data.resolve(tmp_path / "plain").name == str(tmp_path / "plain")


def test_predict_netcdf_records_the_dataset_and_numeric_spike_times(tmp_path):
    result = plasticity.predict("stdp", data.resolve("sjostrom2001"))
    saved = xr.load_dataset(save_netcdf(result, tmp_path / "predict.nc"))
    assert saved.attrs["dataset"] == "sjostrom2001" and saved.attrs["citation"] == data.citation("sjostrom2001")
    assert saved.pre_times_ms.dims == ("protocol", "pre_spike") and saved.pre_times_ms.attrs["units"] == "ms"
    assert saved.pre_times_ms.dtype == np.float64
    np.testing.assert_array_equal(saved.post_times_ms.sel(protocol="pair+10ms@10Hz").values, [10.0])


def test_a_user_csv_is_recorded_by_path_and_keywords_override(tmp_path):
    csv = tmp_path / "mine.csv"
    csv.write_text(ROWS)  # no comment header: no citation attr
    result = plasticity.predict("stdp", data.resolve(str(csv)))
    saved = xr.load_dataset(save_netcdf(result, tmp_path / "mine.nc"))
    assert saved.attrs["dataset"] == str(csv) and "citation" not in saved.attrs
    np.testing.assert_array_equal(saved.pre_times_ms.values, [[0.0, np.nan], [0.0, 20.0]])
    named = plasticity.predict("stdp", data.protocols("bipoo1998"), dataset="bi-poo", citation="Bi & Poo 1998")
    assert named.attrs["dataset"] == "bi-poo" and named.attrs["citation"] == "Bi & Poo 1998"
    assert "dataset" not in plasticity.predict("stdp", data.protocols("bipoo1998")).attrs  # a plain list: unnamed


def test_fit_records_the_dataset_and_citation(tmp_path):
    result = fit("stdp", data.resolve("bipoo1998"), starts=1, max_iterations=3, show_progress=False)
    saved = xr.load_dataset(save_netcdf(result, tmp_path / "fit.nc"))
    assert saved.attrs["dataset"] == "bipoo1998" and saved.attrs["citation"].startswith("Bi & Poo (1998)")
    assert saved.attrs["free"] == "A_plus A_minus"  # the fit's own attrs are still there
