import io

import numpy as np
import pytest

from neurofwp import data
from neurofwp.protocols import ProtocolError, make_protocol, read_csv

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
    assert data.list() == ["bipoo1998", "sjostrom2001"]
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
