import io

import numpy as np
import pytest

from neurofwp import data, plasticity
from neurofwp.protocols import (
    ExtraColumnsWarning,
    MissingSEMError,
    ProtocolError,
    check_sem,
    make_protocol,
    read_csv,
    read_table,
)

HEADER = "protocol,pre_times_ms,post_times_ms,repeat_hz,n_repeats,dw_percent,sem_percent\n"


def load(text):
    return read_csv(io.StringIO(text))


def test_spike_trains_and_event_order():
    p = make_protocol("x", [0, 5], [5], repeat_hz=50, n_repeats=3)
    pre, post = p.spike_trains()
    assert np.allclose(pre, [0, 5, 20, 25, 40, 45])
    assert np.allclose(post, [5, 25, 45])
    times, kinds = p.events()
    assert list(times[:3]) == [0, 5, 5] and list(kinds[:3]) == [0, 0, 1]  # pre first at equal times


def test_bundled_datasets_load_with_citation():
    assert {"bipoo1998", "sjostrom2001"} <= set(data.list())
    sj = data.load("sjostrom2001")
    assert sj.sizes["protocol"] == 10
    assert sj.dw_percent.attrs["units"] == "percent" and "Sjostrom" in sj.attrs["citation"]
    bp = data.load("bipoo1998")
    assert bp.sizes["protocol"] == 45 and "Bi & Poo" in bp.attrs["citation"]
    assert float(bp.dt_ms[0]) == -102.9 and (bp.n_repeats == 60).all() and (bp.repeat_hz == 1).all()
    with pytest.raises(Exception, match="unknown dataset 'bipoo'"):
        data.load("bipoo")


@pytest.mark.parametrize(
    "text, message",
    [
        ("protocol,pre_times_ms,repeat_hz,n_repeats\na,0,1,1\n", "missing column.*post_times_ms"),
        (HEADER + "a,0;x,10,1,60,,\n", r"line 2, column pre_times_ms: 'x' is not a number"),
        (HEADER + "a,0,10,0,60,,\n", r"line 2, column repeat_hz: must be > 0"),
        (HEADER + "a,0,10,-5,60,,\n", r"line 2, column repeat_hz: must be > 0"),
        (HEADER + "a,0,10,1,2.5,,\n", r"line 2, column n_repeats: must be a whole number"),
        (
            HEADER + "a,0,30,50,60,,\n",
            r"line 2: repetitions overlap: spikes up to 30 ms but the period at 50 Hz is 20 ms",
        ),
        (HEADER + "a,0,10,1,60,,\na,0,20,1,60,,\n", r"line 3, column protocol: duplicate name 'a'"),
        (HEADER + "a,0,10,1,60,abc,\n", r"line 2, column dw_percent: 'abc' is not a number"),
        (HEADER + "a,0,10,1,60,5,0\n", r"line 2, column sem_percent: must be > 0"),
        (HEADER + "a,-3,10,1,60,,\n", r"line 2, column pre_times_ms: spike time -3 must be"),
        (HEADER + "a,0;0,10,1,60,,\n", r"line 2, column pre_times_ms: a neuron cannot spike twice"),
        (HEADER + "a,0,10,1\n", r"line 2: 4 fields, the header has 7"),
        (HEADER + "a,,,1,1,,\n", r"line 2: no spikes"),
        ("", "empty"),
        ("# only a comment\n", "empty"),
        (HEADER, "no protocol rows"),
        ("\x00\x01\x02binary", "not a text CSV"),
    ],
    ids=[
        "missing-column",
        "text-time",
        "zero-hz",
        "negative-hz",
        "fractional-repeats",
        "overlap",
        "duplicate",
        "text-dw",
        "zero-sem",
        "negative-time",
        "double-spike",
        "short-row",
        "no-spikes",
        "empty",
        "comment-only",
        "header-only",
        "binary",
    ],
)
def test_malformed_tables_name_row_and_column(text, message):
    with pytest.raises(ProtocolError, match=message):
        load(text)


def test_missing_file_and_binary_file(tmp_path):
    with pytest.raises(ProtocolError, match="no such file"):
        read_csv(tmp_path / "absent.csv")
    binary = tmp_path / "x.csv"
    binary.write_bytes(bytes(range(256)))
    with pytest.raises(ProtocolError, match="not a text"):
        read_csv(binary)


def test_modulator_column_and_event_order():
    (p,) = load("protocol,pre_times_ms,post_times_ms,repeat_hz,n_repeats,mod_times_ms\nm,0,0,1,2,0;5\n")
    assert p.mod_times_ms == (0.0, 5.0)
    times, kinds = p.events()
    assert list(kinds[:4]) == [2, 0, 1, 2]  # at t = 0: modulator, pre, post; then the pulse at 5 ms
    assert list(times[:4]) == [0, 0, 0, 5]


def test_comments_and_optional_columns():
    (p,) = load("# source\nprotocol,pre_times_ms,post_times_ms,repeat_hz,n_repeats\nonly,0,10,1,60\n")
    assert p.dw_percent is None and p.sem_percent is None and p.n_repeats == 60


# ----------------------------------------------------------------------------- columns beyond the schema

BASE = "protocol,pre_times_ms,post_times_ms,repeat_hz,n_repeats"


@pytest.mark.parametrize(
    "header, row, column, known",
    [
        (BASE + ",dw_percent,sem", "a,0,10,1,60,5,1", "sem", "sem_percent"),
        (BASE + ",dw", "a,0,10,1,60,5", "dw", "dw_percent"),
        (BASE.replace("post_times_ms", "post_time_ms"), "a,0,10,1,60", "post_time_ms", "post_times_ms"),
        (BASE + ",dw_percent,SEM", "a,0,10,1,60,5,1", "SEM", "sem_percent"),  # case
        (BASE + ",dw_mean,dw_sd", "a,0,10,1,60,5,1", "dw_mean", "dw_percent"),  # same first word
        (BASE.replace("n_repeats", "nrepeats"), "a,0,10,1,60", "nrepeats", "n_repeats"),  # typo
    ],
)
def test_a_column_close_to_a_known_one_is_an_error_naming_both(tmp_path, header, row, column, known):
    path = tmp_path / "mine.csv"
    path.write_text(f"{header}\n{row}\n")
    with pytest.raises(ProtocolError, match=rf"mine\.csv, line 1: unknown column '{column}'; did you mean '{known}'\?"):
        read_csv(path)


def test_other_extra_columns_are_kept_as_metadata_and_named_once(tmp_path):
    path = tmp_path / "mine.csv"
    path.write_text(f"{BASE},dw_percent,cell,temperature_c\na,0,10,1,60,5,c01,22.5\nb,0;5,10,1,60,-3,c02,\n")
    with pytest.warns(
        ExtraColumnsWarning, match=r"mine\.csv: extra columns kept as protocol metadata: cell, temperature_c"
    ):
        table = read_table(path)
    assert table.extra_columns == ("cell", "temperature_c")
    assert table[0].metadata == {"cell": "c01", "temperature_c": "22.5"} and table[1].metadata["temperature_c"] == ""
    dataset = data.to_dataset(table)
    assert list(dataset.cell.values) == ["c01", "c02"]  # text stays text
    assert dataset.temperature_c.values[0] == 22.5 and np.isnan(
        dataset.temperature_c.values[1]
    )  # numbers, NaN if empty
    # a column already present is not "misspelt": a second column starting with its word is metadata
    with pytest.warns(ExtraColumnsWarning, match="dw_percent_sd"):
        (p,) = load(f"{BASE},dw_percent,dw_percent_sd\na,0,10,1,60,5,2\n")
    assert p.metadata == {"dw_percent_sd": "2"}


@pytest.mark.parametrize(
    "text, message",
    [
        (f"{BASE},dt_ms\na,0,10,1,60,10\n", r"line 1: column name 'dt_ms' is used by neurofwp's results"),
        (f"{BASE},a/b\na,0,10,1,60,1\n", r"line 1: column name 'a/b' cannot be stored in netCDF"),
        (f"{BASE},\na,0,10,1,60,7\n", r"line 2: field 6 holds '7' but its column has no name"),
    ],
    ids=["reserved", "slash", "unnamed-with-value"],
)
def test_extra_columns_that_cannot_be_kept_are_errors(text, message):
    with pytest.raises(ProtocolError, match=message):
        load(text)


def test_an_empty_unnamed_column_is_a_trailing_comma():
    (p,) = load(f"{BASE},\na,0,10,1,60,\n")
    assert p.metadata == {} and p.n_repeats == 60


# ----------------------------------------------------------------------------- rows with and without an SEM

PARTIAL_SEM = HEADER + "a,0,10,1,60,5,1\nb,0,20,1,60,3,\nc,0,30,1,60,,\nd,10,0,1,60,-4,\n"


def test_rows_without_an_sem_among_rows_with_one_are_named():
    protocols = load(PARTIAL_SEM)
    # c has no dw_percent, so it needs no SEM; b and d are named by line and protocol
    message = (
        r"missing in 2 of 3 protocols with a dw_percent: "
        r"<stream>, line 3 \(protocol 'b'\), <stream>, line 5 \(protocol 'd'\)"
    )
    with pytest.raises(MissingSEMError, match=message):
        check_sem(protocols)
    with pytest.raises(MissingSEMError, match=message):  # E would otherwise lose its SEM weights silently
        plasticity.predict("stdp", protocols)
    assert check_sem(protocols[:1]) is True and check_sem([protocols[2]]) is False


# ----------------------------------------------------------------------------- spike times in the Dataset


def test_spike_times_are_numbers_padded_with_nan():
    protocols = [
        make_protocol("a", [0, 5], [10], repeat_hz=1, n_repeats=2),
        make_protocol("b", [3], [], repeat_hz=1, n_repeats=2, mod_times_ms=[1]),
    ]
    dataset = data.to_dataset(protocols)
    assert dataset.pre_times_ms.dims == ("protocol", "pre_spike") and dataset.pre_times_ms.attrs["units"] == "ms"
    np.testing.assert_array_equal(dataset.pre_times_ms.values, [[0.0, 5.0], [3.0, np.nan]])
    np.testing.assert_array_equal(dataset.post_times_ms.values, [[10.0], [np.nan]])
    np.testing.assert_array_equal(dataset.mod_times_ms.values, [[np.nan], [1.0]])
    assert dataset.mod_times_ms.dims == ("protocol", "mod_pulse")
