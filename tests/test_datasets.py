"""Datasets as files: a protocol CSV plus its TOML sidecar, discovered, checked and traced to their sources."""

import csv
import math
import shutil
import statistics
import warnings
from importlib import resources
from pathlib import Path

import numpy as np
import pytest

from neurofwp import data
from neurofwp.data import BUNDLED_REQUIRED, DataSourceTypeError, MetadataError
from neurofwp.errors import DTypeError, UnknownNameError
from neurofwp.protocols import ExtraColumnsWarning

ROWS = "protocol,pre_times_ms,post_times_ms,repeat_hz,n_repeats,dw_percent,sem_percent\npair,0,10,1,60,20,4\n"
SIDECAR = """
citation = "Doe et al. (2024) J Made Up 1:1, Fig. 2"
description = "one pairing protocol"
preparation = "mouse barrel cortex L4-L2/3, acute slices"
measure = "dw_percent: change of the EPSP slope, percent"
source = "Table 1 of the paper"
method = "typed from the table"
independent_sources = 1
"""


def package_folder() -> Path:
    with resources.as_file(resources.files("neurofwp.data")) as folder:
        return Path(folder)


@pytest.fixture
def folder(tmp_path, monkeypatch):
    """A copy of the bundled datasets in a folder that stands in for the package's."""
    copy = tmp_path / "bundled"
    copy.mkdir()
    for path in package_folder().iterdir():
        if path.suffix in (".csv", ".toml"):
            shutil.copy(path, copy / path.name)
    monkeypatch.setattr(data, "_folder", lambda: copy)
    return copy


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open() as f:
        return list(csv.DictReader(line for line in f if not line.startswith("#")))


# ----------------------------------------------------------------------------- discovery


def test_a_dataset_added_as_files_only_is_listed_and_loads(folder):
    (folder / "doe2024.csv").write_text("# Doe et al. (2024)\n" + ROWS)
    (folder / "doe2024.toml").write_text(SIDECAR)
    assert "doe2024" in data.list() and data.list() == sorted(data.list())
    loaded = data.load("doe2024")
    assert loaded.attrs["dataset"] == "doe2024" and loaded.attrs["citation"].startswith("Doe et al. (2024) J Made Up")
    assert loaded.attrs["preparation"] == "mouse barrel cortex L4-L2/3, acute slices"
    assert float(loaded.dw_percent.sel(protocol="pair")) == 20.0
    row = next(r for r in data.summary() if r.name == "doe2024")
    assert (row.protocols, row.description) == (1, "one pairing protocol")
    assert data.citation("doe2024") == "Doe et al. (2024) J Made Up 1:1, Fig. 2"


def test_a_csv_without_sidecar_is_not_a_dataset(folder):
    (folder / "notes.csv").write_text("a,b\n1,2\n")
    assert "notes" not in data.list()
    assert "schlag2021_retrieval" not in data.list()  # retrieval logs, not protocols
    assert (package_folder() / "schlag2021_retrieval.csv").is_file()


def test_the_bundled_list_comes_from_the_package_files():
    names = {p.stem for p in package_folder().glob("*.toml")}
    assert data.list() == sorted(names)
    assert {"bipoo1998", "sjostrom2001", "sjostrom2001_synchronous", "wang2005_quadruplets"} <= names


@pytest.mark.parametrize("name", data.list())
def test_every_bundled_dataset_has_its_metadata_and_loads(name):
    meta = data.info(name)
    for key in BUNDLED_REQUIRED:
        value = getattr(meta, key)
        assert value not in ("", None), (name, key)
    assert meta.independent_sources >= 1
    if meta.independent_sources >= 2:
        assert meta.agreement
    loaded = data.load(name)
    assert loaded.sizes["protocol"] == len(data.protocols(name)) >= 1
    if "amplitude" in loaded:  # train responses: one per presynaptic spike
        assert np.array_equal(np.isfinite(loaded.amplitude), np.isfinite(loaded.pre_times_ms))
    else:
        assert "dw_percent" in loaded and np.isfinite(loaded.dw_percent).all()
    for key in ("citation", "preparation", "measure", "source", "method"):
        assert loaded.attrs[key] == getattr(meta, key)
    for column, text in meta.columns.items():
        assert loaded[column].attrs["description"] == text
    with warnings.catch_warnings():
        warnings.simplefilter("error", ExtraColumnsWarning)  # every extra column of a bundled table is described
        data.resolve(name)


def test_summary_rows_are_what_neurofwp_data_prints():
    rows = data.summary()
    assert [r.name for r in rows] == data.list()
    wang = next(r for r in rows if r.name == "wang2005_quadruplets")
    assert wang.protocols == 15 and wang.citation.startswith("Wang, Gerkin, Nauen & Bi (2005)")
    assert wang.preparation == data.info("bipoo1998").preparation  # same preparation, spelt the same
    assert data.info("sjostrom2001").preparation == data.info("sjostrom2001_synchronous").preparation


# ----------------------------------------------------------------------------- names and paths


def test_a_user_csv_reads_its_sidecar(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mine.csv").write_text("# header comment\n" + ROWS)
    (tmp_path / "mine.toml").write_text('citation = "Roe (2020), Fig. 1"\npreparation = "rat CA1, slices"\n')
    assert data.resolve("mine.csv").citation == "Roe (2020), Fig. 1"  # the sidecar wins over the comment
    assert data.citation("mine.csv") == "Roe (2020), Fig. 1" and data.description("mine.csv") == ""
    assert data.info(tmp_path / "mine.csv").preparation == "rat CA1, slices"
    assert data.load("mine.csv").attrs["preparation"] == "rat CA1, slices"
    assert len(data.protocols("mine.csv")) == 1
    (tmp_path / "plain.csv").write_text("# Plain (2019)\n" + ROWS)  # no sidecar: the comment header
    assert data.citation("plain.csv") == "Plain (2019)" and data.info("plain.csv").sidecar is None


def test_described_columns_do_not_warn_and_others_do(tmp_path):
    table = tmp_path / "cells.csv"
    table.write_text("protocol,pre_times_ms,post_times_ms,repeat_hz,n_repeats,n_cells,temp_c\np,0,10,1,60,3,32\n")
    (tmp_path / "cells.toml").write_text('citation = "X (2000)"\n[columns]\nn_cells = "cells averaged"\n')
    with pytest.warns(ExtraColumnsWarning, match=r"cells.csv: extra columns kept as protocol metadata: temp_c$"):
        loaded = data.load(table)
    assert loaded.n_cells.attrs["description"] == "cells averaged" and float(loaded.n_cells[0]) == 3.0


def test_a_source_that_is_not_text_or_a_path_is_an_unknown_dataset():
    with pytest.raises(DataSourceTypeError, match=r"unknown dataset \['bipoo1998'\]: a data source is") as caught:
        data.load(["bipoo1998"])
    assert isinstance(caught.value, UnknownNameError) and isinstance(caught.value, DTypeError)


# ----------------------------------------------------------------------------- metadata errors


@pytest.mark.parametrize(
    "text,message",
    [
        ('preparation = "rat CA1"\n', r"mine.toml: missing key\(s\) 'citation' \(a sidecar needs citation\)"),
        ('citaton = "X"\n', r"mine.toml: unknown key 'citaton'; did you mean 'citation'\?"),
        ('citation = "X"\nfigure = "2"\n', r"mine.toml: unknown key 'figure'; known keys: citation, "),
        ("citation = 1998\n", r"mine.toml, key 'citation': must be non-empty text, got 1998"),
        ('citation = "  "\n', r"mine.toml, key 'citation': must be non-empty text"),
        ('citation = "X"\nindependent_sources = "two"\n', r"mine.toml, key 'independent_sources': must be a whole"),
        ('citation = "X"\nindependent_sources = 2\n', r"mine.toml: missing key 'agreement' \(independent_sources = 2"),
        ('citation = "X"\n[columns]\nn_cells = "n"\n', r"mine.toml, key 'columns.n_cells': .*mine.csv has no such"),
        ('citation = "X\n', r"mine.toml: not valid TOML"),
    ],
)
def test_a_bad_user_sidecar_is_one_error_naming_file_and_key(tmp_path, text, message):
    (tmp_path / "mine.csv").write_text(ROWS)
    (tmp_path / "mine.toml").write_text(text)
    with pytest.raises(MetadataError, match=message):
        data.resolve(tmp_path / "mine.csv")


def test_a_bundled_sidecar_needs_every_provenance_key(folder):
    (folder / "doe2024.csv").write_text(ROWS)
    without = "\n".join(line for line in SIDECAR.splitlines() if not line.startswith("preparation"))
    (folder / "doe2024.toml").write_text(without)
    assert "doe2024" in data.list()
    with pytest.raises(MetadataError, match=r"doe2024.toml: missing key\(s\) 'preparation' \(a bundled dataset's"):
        data.load("doe2024")


def test_a_bundled_sidecar_without_its_csv_is_an_error(folder):
    (folder / "orphan.toml").write_text(SIDECAR)
    with pytest.raises(MetadataError, match=r"orphan.toml: a dataset sidecar without its CSV \(orphan.csv"):
        data.list()


# ----------------------------------------------------------------------------- provenance of the numbers

RAW = package_folder() / "raw" / "wang2005_quadruplets_cells.csv"


def test_wang2005_rows_are_the_documented_aggregation_of_the_per_cell_values():
    cells = sorted(read_rows(RAW), key=lambda r: float(r["T_ms"]))
    assert len(cells) == 60 and [int(r["source_line"]) for r in read_rows(RAW)] == list(range(81, 141))
    groups, current = [], [cells[0]]  # sorted by T; a new group where neighbours differ by more than 2 ms
    for cell in cells[1:]:
        if float(cell["T_ms"]) - float(current[-1]["T_ms"]) > 2.0:
            groups.append(current)
            current = []
        current.append(cell)
    groups.append(current)
    kept = [g for g in groups if len(g) >= 2]
    assert (len(kept), sum(map(len, kept)), len(groups) - len(kept)) == (15, 51, 9)
    protocols = {p.name: p for p in data.protocols("wang2005_quadruplets")}
    assert len(protocols) == 15
    for group in kept:
        T = round(statistics.mean(float(c["T_ms"]) for c in group), 1)
        dw = [float(c["dw_percent"]) for c in group]
        p = protocols[f"quad T={T:+.1f}ms"]
        assert p.dw_percent == pytest.approx(statistics.mean(dw), abs=0.005)
        assert p.sem_percent == pytest.approx(statistics.stdev(dw) / math.sqrt(len(dw)), abs=0.005)
        assert p.metadata["n_cells"] == str(len(group)) and float(p.metadata["T_ms"]) == T
        assert sorted(p.metadata["source_lines"].split(";")) == sorted(c["source_line"] for c in group)
        # T between the pairs' midpoints; post-pre first for T > 0, pre-post first for T < 0
        pre, post = ((5, T), (0, T + 5)) if T > 0 else ((0, -T + 5), (5, -T))
        assert p.pre_times_ms == pytest.approx(pre) and p.post_times_ms == pytest.approx(post)
        assert (p.repeat_hz, p.n_repeats) == (1.0, 60)


def test_wang2005_triplets_are_the_per_cell_means_in_the_decoded_spike_order():
    cells = read_rows(package_folder() / "raw" / "wang2005_triplets_cells.csv")
    assert [int(r["source_line"]) for r in cells] == list(range(47, 81))
    groups: dict[tuple, list[dict[str, str]]] = {}
    for cell in cells:
        key = (int(cell["pre_spk_num"]), int(cell["post_spk_num"]), float(cell["dt1"]), float(cell["dt2"]))
        groups.setdefault(key, []).append(cell)
    protocols = {p.name: p for p in data.protocols("wang2005_triplets")}
    assert len(groups) == 4 and len(protocols) == 8
    for (n_pre, _, dt1, dt2), group in groups.items():
        # 2 pre + 1 post: pre spikes at t_post + dt1, t_post + dt2; 1 pre + 2 post: post at t_pre - dt1, t_pre - dt2
        pre, post = (sorted([dt1, dt2]), [0.0]) if n_pre == 2 else ([0.0], sorted([-dt1, -dt2]))
        first = min(pre + post)
        pre, post = [t - first for t in pre], [t - first for t in post]
        kind = "pre-post-pre" if n_pre == 2 else "post-pre-post"
        spikes = sorted(pre + post)
        p = protocols[f"{kind} {spikes[1] - spikes[0]:g}+{spikes[2] - spikes[1]:g}ms"]
        assert p.pre_times_ms == pytest.approx(pre) and p.post_times_ms == pytest.approx(post)
        dw = [float(c["dw_percent"]) for c in group]
        assert p.dw_percent == pytest.approx(statistics.mean(dw), abs=0.005)
        assert p.sem_percent == pytest.approx(statistics.stdev(dw) / math.sqrt(len(dw)), abs=0.005)
        assert p.metadata["n_cells"] == str(len(group))
        assert p.metadata["source_lines"].split(";") == [c["source_line"] for c in group]


def test_sjostrom2001_synchronous_is_dt_zero_with_the_papers_induction():
    protocols = data.protocols("sjostrom2001_synchronous")
    induction = {p.name: (p.repeat_hz, p.n_repeats, len(p.pre_times_ms)) for p in protocols}
    assert induction == {
        "sync0ms@0.1Hz": (0.1, 50, 1),
        "sync0ms@20Hz": (0.1, 15, 5),
        "sync0ms@40Hz": (0.1, 15, 5),
        "sync0ms@100Hz": (0.1, 15, 5),
    }
    for p, hz in zip(protocols[1:], (20, 40, 100), strict=True):
        assert p.pre_times_ms == p.post_times_ms and np.allclose(np.diff(p.pre_times_ms), 1000 / hz)
    # the lab's source data (percent of baseline) minus 100
    lab = [(91.01, 13.91), (76.08, 9.94), (92.89, 3.84), (124.46, 6.36)]
    assert [p.dw_percent for p in protocols] == pytest.approx([mean - 100 for mean, _ in lab])
    assert [p.sem_percent for p in protocols] == pytest.approx([sem for _, sem in lab])


def test_a_dataset_added_as_files_shows_up_in_the_data_command_and_the_comparison(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from neurofwp.analysis.compare import compare
    from neurofwp.cli import main

    only = tmp_path / "bundled"
    only.mkdir()
    (only / "doe2024.csv").write_text(
        "protocol,pre_times_ms,post_times_ms,repeat_hz,n_repeats,dw_percent,sem_percent\n"
        "pair+10,0,10,1,60,25,5\npair-10,10,0,1,60,-15,4\npair+30,0,30,1,60,8,3\n"
    )
    (only / "doe2024.toml").write_text(SIDECAR)
    monkeypatch.setattr(data, "_folder", lambda: only)
    listing = CliRunner().invoke(main, ["data"])
    assert listing.exit_code == 0 and "doe2024  (3 protocols; mouse barrel cortex" in listing.output
    result = compare(["stdp"], starts=1, cross_validate=False, capacity_pairs=(8,), show_progress=False)
    assert list(result.dataset.values) == ["doe2024"] and int(result.n_protocols.sel(dataset="doe2024")) == 3
    assert str(result.preparation.sel(dataset="doe2024").values) == "mouse barrel cortex L4-L2/3, acute slices"
