"""A battery of bad inputs, through the Python API and the command line.

Every case must give one clear message that names the problem: a
:class:`~neurofwp.errors.NeurofwpError` subclass in Python, and on the command line exit
status 2 with a single ``neurofwp: error: ...`` line and no traceback. A failed run writes
no output file.
"""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
import torch

from neurofwp import data, plasticity, recordings
from neurofwp.errors import DTypeError, NeurofwpError, NonFiniteError, OutOfRangeError, ShapeError, UnknownNameError
from neurofwp.fit import fit
from neurofwp.io import OutputPathError, atomic_path, check_writable, save_json, save_netcdf
from neurofwp.protocols import ProtocolError, make_protocol, read_csv
from neurofwp.recordings import RecordingError
from neurofwp.tensor import FastWeightLayer, delta_rule, delta_step, feature_maps, hebbian_rule

HEADER = "protocol,pre_times_ms,post_times_ms,repeat_hz,n_repeats,dw_percent,sem_percent\n"
GOOD_ROW = "a,0,10,1,60,5,1\n"
ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


def raises(error: type[Exception], match: str, call) -> None:
    """``call()`` raises ``error`` (a NeurofwpError) whose message matches ``match``."""
    assert issubclass(error, NeurofwpError)
    with pytest.raises(error, match=match) as caught:
        call()
    assert isinstance(caught.value, NeurofwpError)
    assert "\n" not in str(caught.value), "one line"


# --------------------------------------------------------------------------- tensor rules


def tensors(dtype=torch.float32, T=6):
    g = torch.Generator().manual_seed(0)
    q = torch.randn(2, T, 3, 4, generator=g, dtype=torch.float64).to(dtype)
    k = torch.nn.functional.normalize(torch.randn(2, T, 3, 4, generator=g, dtype=torch.float64), dim=-1).to(dtype)
    v = torch.randn(2, T, 3, 5, generator=g, dtype=torch.float64).to(dtype)
    beta = torch.rand(2, T, 3, generator=g, dtype=torch.float64).to(dtype)
    return q, k, v, beta


def with_value(x: torch.Tensor, value: float) -> torch.Tensor:
    """A copy of ``x`` with one element set to ``value``."""
    x = x.clone()
    x[(0, 1, 2, 0)[: x.ndim]] = value
    return x


q, k, v, beta = tensors()
TENSOR_CASES = [
    # wrong ndim / shapes
    ("q-3-dims", lambda: hebbian_rule(q[0], k, v), ShapeError, r"q must have 4 dims \[B, T, H, Dk\], got 3 dims"),
    ("v-5-dims", lambda: hebbian_rule(q, k, v[None]), ShapeError, r"v must have 4 dims"),
    ("k-other-width", lambda: hebbian_rule(q, k[..., :3], v), ShapeError, "q and k must have the same shape"),
    ("v-other-length", lambda: delta_rule(q, k, v[:, :2], beta), ShapeError, "v must share"),
    ("beta-2-dims", lambda: delta_rule(q, k, v, beta[..., 0]), ShapeError, r"beta must have 3 dims \[B, T, H\]"),
    ("beta-other-heads", lambda: delta_rule(q, k, v, beta[..., :2]), ShapeError, r"beta must have shape \[B, T, H\]"),
    ("decay-wrong-shape", lambda: hebbian_rule(q, k, v, decay=beta[:1]), ShapeError, "decay must have shape"),
    (
        "state-swapped",
        lambda: delta_rule(q, k, v, beta, initial_state=torch.zeros(2, 3, 5, 4)),
        ShapeError,
        r"initial_state must have shape \[B, H, Dk, Dv\] = \(2, 3, 4, 5\)",
    ),
    ("step-layout", lambda: delta_step(q, k[:, 0], v[:, 0], beta[:, 0]), ShapeError, "q of one step must have layout"),
    # wrong dtypes and types
    ("int64", lambda: hebbian_rule(q.long(), k.long(), v.long()), DTypeError, "torch.int64; supported dtypes"),
    ("float16", lambda: hebbian_rule(q.half(), k.half(), v.half()), DTypeError, "torch.float16"),
    ("complex", lambda: hebbian_rule(q.cfloat(), k, v), DTypeError, "complex64"),
    ("mixed-dtypes", lambda: hebbian_rule(q, k, v.double()), DTypeError, "v has dtype torch.float64 but q has"),
    ("numpy-input", lambda: hebbian_rule(q.numpy(), k, v), DTypeError, "q must be a torch.Tensor"),
    ("beta-none", lambda: delta_rule(q, k, v, None), DTypeError, "beta must be a torch.Tensor"),
    ("beta-int", lambda: delta_rule(q, k, v, beta.long()), DTypeError, "beta has dtype torch.int64"),
    ("state-list", lambda: delta_rule(q, k, v, beta, initial_state=[[0.0]]), DTypeError, "initial_state must be a"),
    ("chunk-float", lambda: hebbian_rule(q, k, v, chunk_size=8.0), DTypeError, "chunk_size must be an int"),
    ("scale-text", lambda: hebbian_rule(q, k, v, scale="1"), DTypeError, "scale must be a real number"),
    # NaN / inf
    ("nan-q", lambda: hebbian_rule(with_value(q, float("nan")), k, v), NonFiniteError, "q holds 1 non-finite"),
    ("inf-k", lambda: delta_rule(q, with_value(k, float("inf")), v, beta), NonFiniteError, "k holds 1 non-finite"),
    ("-inf-v", lambda: hebbian_rule(q, k, with_value(v, -float("inf")), mode="recurrent"), NonFiniteError, "v holds"),
    ("nan-beta", lambda: delta_rule(q, k, v, with_value(beta, float("nan"))), NonFiniteError, "beta holds 1"),
    (
        "nan-decay",
        lambda: hebbian_rule(q, k, v, decay=with_value(torch.full_like(beta, 0.9), float("nan"))),
        NonFiniteError,
        "decay holds 1",
    ),
    (
        "nan-state",
        lambda: delta_rule(q, k, v, beta, initial_state=torch.full((2, 3, 4, 5), float("nan"))),
        NonFiniteError,
        "initial_state holds 120",
    ),
    ("nan-scale", lambda: hebbian_rule(q, k, v, scale=float("nan")), NonFiniteError, "scale must be finite"),
    # out of range
    (
        "beta-negative",
        lambda: delta_rule(q, k, v, with_value(beta, -0.5)),
        OutOfRangeError,
        r"beta must lie in \[0, 2\]",
    ),
    ("beta-above-2", lambda: delta_rule(q, k, v, with_value(beta, 2.5)), OutOfRangeError, r"beta must lie in \[0, 2\]"),
    (
        "decay-zero",
        lambda: hebbian_rule(q, k, v, decay=torch.zeros_like(beta)),
        OutOfRangeError,
        r"decay must lie in \(0, 1\]",
    ),
    ("decay-negative", lambda: hebbian_rule(q, k, v, decay=-beta), OutOfRangeError, r"decay must lie in \(0, 1\]"),
    (
        "decay-above-1",
        lambda: delta_rule(q, k, v, beta, decay=1 + beta),
        OutOfRangeError,
        r"decay must lie in \(0, 1\]",
    ),
    ("chunk-zero", lambda: delta_rule(q, k, v, beta, chunk_size=0), OutOfRangeError, "chunk_size must be >= 1"),
    ("chunk-negative", lambda: hebbian_rule(q, k, v, chunk_size=-4), OutOfRangeError, "chunk_size must be >= 1"),
    # unknown names
    (
        "mode",
        lambda: hebbian_rule(q, k, v, mode="fused"),
        UnknownNameError,
        "unknown mode 'fused'; choose one of: chunk",
    ),
    ("mode-none", lambda: delta_rule(q, k, v, beta, mode=None), UnknownNameError, "unknown mode None"),
    ("feature-map", lambda: feature_maps.get("relu"), UnknownNameError, "unknown feature map 'relu'; choose one of"),
    ("feature-map-none", lambda: feature_maps.get(None), UnknownNameError, "unknown feature map None"),
    ("dpfp-nu-zero", lambda: feature_maps.get("dpfp", nu=0), OutOfRangeError, "DPFP order nu must be an int >= 1"),
    ("favor-no-dim", lambda: feature_maps.get("favor+"), ShapeError, "favor\\+ needs input_dim"),
    (
        "favor-wrong-dim",
        lambda: feature_maps.get("favor+", 4)(torch.randn(2, 5)),
        ShapeError,
        "drawn for inputs of size 4",
    ),
    ("layer-rule", lambda: FastWeightLayer(16, num_heads=2, rule="oja"), UnknownNameError, "unknown rule 'oja'"),
    (
        "layer-map",
        lambda: FastWeightLayer(16, num_heads=2, feature_map="relu"),
        UnknownNameError,
        "unknown feature map",
    ),
    ("layer-heads", lambda: FastWeightLayer(16, num_heads=0), OutOfRangeError, "num_heads must be an int >= 1"),
    (
        "layer-input-width",
        lambda: FastWeightLayer(16, num_heads=2)(torch.randn(1, 3, 8)),
        ShapeError,
        r"expects x of layout \[B, T, d_model\] with d_model=16",
    ),
]


@pytest.mark.parametrize("call, error, message", [c[1:] for c in TENSOR_CASES], ids=[c[0] for c in TENSOR_CASES])
def test_tensor_api(call, error, message):
    raises(error, message, call)


# --------------------------------------------------------------------------- spiking rules and fits

SJOSTROM = data.protocols("sjostrom2001")
PAIR = [make_protocol("pair", [0], [10], 1, 3, dw_percent=5.0, sem_percent=1.0)]
OFF_GRID = [make_protocol("off-grid", [0.05], [10], 1, 2, dw_percent=1.0)]

PLASTICITY_CASES = [
    ("unknown-rule", lambda: plasticity.simulate("hebb", PAIR), UnknownNameError, "unknown rule 'hebb'; choose one"),
    ("rule-not-a-name", lambda: plasticity.simulate(["stdp"], PAIR), UnknownNameError, r"unknown rule \['stdp'\]"),
    ("unknown-backend", lambda: plasticity.simulate("stdp", PAIR, backend="nest"), UnknownNameError, "backend 'nest'"),
    (
        "unknown-parameter",
        lambda: plasticity.simulate("stdp", PAIR, {"A_plsu": 0.1}),
        UnknownNameError,
        "unknown parameter of rule 'stdp' 'A_plsu'; choose one of: A_plus",
    ),
    (
        "parameter-nan",
        lambda: plasticity.simulate("stdp", PAIR, {"A_plus": np.nan}),
        NonFiniteError,
        "A_plus must be finite",
    ),
    (
        "parameter-inf",
        lambda: plasticity.predict("triplet", PAIR, {"A3_plus": np.inf}),
        NonFiniteError,
        "A3_plus must be",
    ),
    (
        "parameter-text",
        lambda: plasticity.simulate("stdp", PAIR, {"A_plus": "big"}),
        DTypeError,
        "A_plus must be a number",
    ),
    ("parameter-empty", lambda: plasticity.simulate("stdp", PAIR, {"A_plus": []}), ShapeError, "A_plus has no values"),
    (
        "parameter-2d",
        lambda: plasticity.simulate("stdp", PAIR, {"A_plus": np.ones((2, 2))}),
        ShapeError,
        "scalar or 1-d",
    ),
    (
        "parameters-not-a-mapping",
        lambda: plasticity.simulate("stdp", PAIR, [0.1, 0.2]),
        DTypeError,
        "parameters must be a mapping",
    ),
    (
        "tau-zero",
        lambda: plasticity.simulate("stdp", PAIR, {"tau_plus_ms": 0}),
        OutOfRangeError,
        "tau_plus_ms must be > 0",
    ),
    (
        "tau-negative-brian2",
        lambda: plasticity.simulate("stdp", PAIR, {"tau_minus_ms": -5.0}, backend="brian2"),
        OutOfRangeError,
        "tau_minus_ms must be > 0",
    ),
    (
        "tau-negative-tensor",
        lambda: plasticity.simulate("triplet", PAIR, {"tau_y_ms": torch.tensor([10.0, -1.0])}),
        OutOfRangeError,
        "tau_y_ms must be > 0",
    ),
    (
        "dt-zero",
        lambda: plasticity.simulate("delta", PAIR, dt_ms=0.0),
        OutOfRangeError,
        "dt_ms must be a finite number > 0",
    ),
    ("dt-negative", lambda: plasticity.predict("delta", PAIR, dt_ms=-0.1), OutOfRangeError, "dt_ms must be a finite"),
    ("dt-nan", lambda: plasticity.simulate("delta", PAIR, dt_ms=np.nan), OutOfRangeError, "dt_ms must be a finite"),
    ("dt-text", lambda: plasticity.simulate("delta", PAIR, dt_ms="0.1"), DTypeError, "dt_ms must be a number"),
    (
        "dt-above-tau",
        lambda: plasticity.simulate("delta", PAIR, {"tau_plus_ms": 0.05}),
        OutOfRangeError,
        "dt_ms = 0.1 must be smaller than every trace time constant",
    ),
    (
        "off-grid-brian2",
        lambda: plasticity.simulate("delta", OFF_GRID, backend="brian2"),
        ProtocolError,
        "spike at 0.05 ms is not on the 0.1 ms time grid",
    ),
    ("no-protocols", lambda: plasticity.simulate("stdp", []), ProtocolError, "no protocols to simulate"),
    ("protocols-text", lambda: plasticity.simulate("stdp", "sjostrom2001"), DTypeError, "list of Protocol objects"),
    (
        "one-protocol",
        lambda: plasticity.simulate("stdp", PAIR[0]),
        DTypeError,
        "list of Protocol objects.*got Protocol",
    ),
    ("protocol-dicts", lambda: plasticity.predict("stdp", [{"a": 1}]), DTypeError, r"protocols\[0\] is a dict"),
    # fits
    ("fit-unknown-rule", lambda: fit("oja", PAIR, show_progress=False), UnknownNameError, "unknown rule 'oja'"),
    ("fit-free-unknown", lambda: fit("stdp", PAIR, free=["A_plsu"], show_progress=False), UnknownNameError, "A_plsu"),
    (
        "fit-free-and-fixed",
        lambda: fit("stdp", PAIR, free=["A_plus"], fixed={"A_plus": 0.1}),
        NeurofwpError,
        "both free",
    ),
    ("fit-fixed-nan", lambda: fit("stdp", PAIR, fixed={"A_plus": np.nan}), NonFiniteError, "A_plus must be finite"),
    ("fit-starts-zero", lambda: fit("stdp", PAIR, starts=0), OutOfRangeError, "starts must be an int >= 1"),
    ("fit-seed-negative", lambda: fit("stdp", PAIR, seed=-1), OutOfRangeError, "seed must be an int >= 0"),
    ("fit-seed-text", lambda: fit("stdp", PAIR, seed="0"), DTypeError, "seed must be an int"),
    ("fit-iterations", lambda: fit("stdp", PAIR, max_iterations=0), OutOfRangeError, "max_iterations must be an int"),
    ("fit-dt", lambda: fit("delta", PAIR, dt_ms=0), OutOfRangeError, "dt_ms must be a finite number > 0"),
    ("fit-bound-reversed", lambda: fit("stdp", PAIR, bounds={"A_plus": (1, 0)}), OutOfRangeError, "low < high"),
    ("fit-bound-nan", lambda: fit("stdp", PAIR, bounds={"A_plus": (np.nan, 1)}), OutOfRangeError, "must be finite"),
    (
        "fit-bound-scalar",
        lambda: fit("stdp", PAIR, bounds={"A_plus": 1.0}),
        DTypeError,
        r"pair of numbers \(low, high\)",
    ),
    ("fit-bound-triple", lambda: fit("stdp", PAIR, bounds={"A_plus": (0, 1, 2)}), DTypeError, "pair of numbers"),
    ("fit-bound-unknown", lambda: fit("stdp", PAIR, bounds={"A_plsu": (0, 1)}), UnknownNameError, "A_plsu"),
    ("fit-bound-not-free", lambda: fit("stdp", PAIR, bounds={"tau_plus_ms": (1, 50)}), NeurofwpError, "not a free"),
    (
        "fit-tau-bound-negative",
        lambda: fit("stdp", PAIR, free=["tau_plus_ms"], bounds={"tau_plus_ms": (-1, 10)}),
        OutOfRangeError,
        "lower bound of time constant tau_plus_ms must be > 0 ms",
    ),
    (
        "fit-no-data",
        lambda: fit("stdp", [make_protocol("x", [0], [10], 1, 3)], show_progress=False),
        ProtocolError,
        "has no dw_percent",
    ),
    ("fit-off-grid", lambda: fit("delta", OFF_GRID, backend="brian2"), ProtocolError, "not on the 0.1 ms time grid"),
    ("dataset-unknown", lambda: data.protocols("bipoo"), UnknownNameError, "unknown dataset 'bipoo'; bundled: "),
    ("dataset-not-a-name", lambda: data.load(["bipoo1998"]), UnknownNameError, "unknown dataset"),
]


@pytest.mark.parametrize(
    "call, error, message", [c[1:] for c in PLASTICITY_CASES], ids=[c[0] for c in PLASTICITY_CASES]
)
def test_plasticity_and_fit_api(call, error, message):
    raises(error, message, call)


# --------------------------------------------------------------------------- protocols

PROTOCOL_CASES = [
    ("hz-zero", dict(repeat_hz=0), r"column repeat_hz: must be > 0"),
    ("hz-negative", dict(repeat_hz=-2), r"column repeat_hz: must be > 0"),
    ("hz-nan", dict(repeat_hz=float("nan")), r"column repeat_hz: nan is not finite"),
    ("hz-inf", dict(repeat_hz=float("inf")), r"column repeat_hz: inf is not finite"),
    ("hz-text", dict(repeat_hz="fast"), r"column repeat_hz: 'fast' is not a number"),
    ("hz-none", dict(repeat_hz=None), r"column repeat_hz: expected a number, got None"),
    ("hz-underflow", dict(repeat_hz=1e-320), r"Hz is too small"),
    ("repeats-zero", dict(n_repeats=0), r"column n_repeats: must be a whole number >= 1, got 0"),
    ("repeats-fraction", dict(n_repeats=2.5), r"column n_repeats: must be a whole number >= 1"),
    ("repeats-bool", dict(n_repeats=True), r"column n_repeats: expected a number"),
    ("repeats-huge", dict(n_repeats=10**15), r"at most 1e\+12 ms is supported"),
    ("too-many-events", dict(pre_times_ms=list(range(0, 900, 10)), repeat_hz=1, n_repeats=200_000), "events"),
    ("time-negative", dict(pre_times_ms=[-1.0]), r"column pre_times_ms: spike time -1.0 must be a finite number >= 0"),
    ("time-nan", dict(post_times_ms=[float("nan")]), r"column post_times_ms: spike time nan must be a finite"),
    ("time-inf", dict(pre_times_ms=[float("inf")]), r"spike time inf must be a finite"),
    ("time-text", dict(pre_times_ms=["x"]), r"column pre_times_ms: spike time 'x' is not a number"),
    ("times-none", dict(pre_times_ms=None), r"column pre_times_ms: expected a sequence of spike times"),
    ("times-scalar", dict(post_times_ms=10), r"column post_times_ms: expected a sequence"),
    ("times-nested", dict(pre_times_ms=[[0, 1]]), r"spike time \[0, 1\] is not a number"),
    ("times-0d-array", dict(pre_times_ms=np.array(5.0)), r"column pre_times_ms: expected a sequence"),
    ("twice-at-once", dict(pre_times_ms=[3, 3]), r"a neuron cannot spike twice"),
    ("no-spikes", dict(pre_times_ms=[], post_times_ms=[]), r"no spikes"),
    ("overlap", dict(post_times_ms=[30], repeat_hz=50, n_repeats=3), r"repetitions overlap"),
    ("too-long", dict(post_times_ms=[1e13], n_repeats=1), r"at most 1e\+12 ms"),
    ("dw-nan", dict(dw_percent=float("nan")), r"column dw_percent: nan is not finite"),
    ("dw-text", dict(dw_percent="lots"), r"column dw_percent: 'lots' is not a number"),
    ("sem-zero", dict(dw_percent=1.0, sem_percent=0.0), r"column sem_percent: must be > 0"),
    ("sem-negative", dict(dw_percent=1.0, sem_percent=-1.0), r"column sem_percent: must be > 0"),
    ("sem-inf", dict(dw_percent=1.0, sem_percent=float("inf")), r"column sem_percent: inf is not finite"),
]


@pytest.mark.parametrize("change, message", [c[1:] for c in PROTOCOL_CASES], ids=[c[0] for c in PROTOCOL_CASES])
def test_make_protocol(change, message):
    arguments = dict(name="p", pre_times_ms=[0], post_times_ms=[10], repeat_hz=1, n_repeats=5) | change
    raises(ProtocolError, f"protocol 'p'.*{message}", lambda: make_protocol(**arguments))


CSV_CASES = [
    ("missing-columns", "protocol,pre_times_ms\na,0\n", r"line 1: missing column\(s\) post_times_ms, repeat_hz"),
    ("text-in-numbers", HEADER + "a,0,10,one,60,5,1\n", r"line 2, column repeat_hz: 'one' is not a number"),
    ("text-in-times", HEADER + "a,0;x,10,1,60,5,1\n", r"line 2, column pre_times_ms: 'x' is not a number"),
    ("nan-value", HEADER + "a,0,10,1,60,nan,1\n", r"line 2, column dw_percent: nan is not finite"),
    ("inf-value", HEADER + "a,0,10,inf,60,5,1\n", r"line 2, column repeat_hz: inf is not finite"),
    ("nan-time", HEADER + "a,nan,10,1,60,5,1\n", r"line 2, column pre_times_ms: spike time nan"),
    ("zero-frequency", HEADER + "a,0,10,0,60,5,1\n", r"line 2, column repeat_hz: must be > 0"),
    ("negative-frequency", HEADER + "a,0,10,-1,60,5,1\n", r"line 2, column repeat_hz: must be > 0"),
    ("short-row", HEADER + "a,0,10\n", r"line 2: 3 fields, the header has 7"),
    ("long-row", HEADER + "a,0,10,1,60,5,1,9\n", r"line 2: 8 fields, the header has 7"),
    ("duplicate-column", "protocol,pre_times_ms,post_times_ms,repeat_hz,n_repeats,n_repeats\na,0,1,1,1,2\n", "twice"),
    ("duplicate-name", HEADER + GOOD_ROW + GOOD_ROW, r"line 3, column protocol: duplicate name 'a'"),
    ("empty", "", r"empty \(no header and no rows\)"),
    ("blank-lines", "\n  \n\t\n", r"empty"),
    ("comments-only", "# a citation\n# nothing else\n", r"empty"),
    ("header-only", HEADER, r"has a header but no protocol rows"),
    ("huge-field", HEADER + "a," + "1" * 200_000 + ",10,1,1,5,1\n", r"line 2: not a valid CSV line"),
]


@pytest.mark.parametrize("text, message", [c[1:] for c in CSV_CASES], ids=[c[0] for c in CSV_CASES])
def test_malformed_csv_file(tmp_path, text, message):
    path = tmp_path / "protocols.csv"
    path.write_text(text, encoding="utf-8")
    raises(ProtocolError, f"{re.escape(str(path))}.*{message}", lambda: read_csv(path))
    raises(ProtocolError, message, lambda: read_csv(io.StringIO(text)))  # the same from a stream


BINARY_CASES = [
    ("all-bytes", bytes(range(256)), "not a text"),
    (
        "nul-bytes",
        (HEADER + GOOD_ROW).encode().replace(b"60", b"6\x000"),
        r"not a text CSV file \(contains NUL bytes\)",
    ),
    ("latin-1", (HEADER + "a,0,10,1,60,5,1 \xb1 0.5\n").encode("latin-1"), r"not a text \(UTF-8\) CSV file"),
    ("gzip", b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03", "not a text"),
    ("png-header", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "not a text"),
]


@pytest.mark.parametrize("content, message", [c[1:] for c in BINARY_CASES], ids=[c[0] for c in BINARY_CASES])
def test_binary_csv_file(tmp_path, content, message):
    path = tmp_path / "protocols.csv"
    path.write_bytes(content)
    raises(ProtocolError, message, lambda: read_csv(path))
    raises(ProtocolError, message, lambda: read_csv(io.BytesIO(content)))


def test_csv_source_that_is_not_a_file(tmp_path):
    raises(ProtocolError, "no such file", lambda: read_csv(tmp_path / "absent.csv"))
    raises(ProtocolError, "is a folder, not a CSV file", lambda: read_csv(tmp_path))
    raises(DTypeError, "read_csv takes a file path or an open file, got int", lambda: read_csv(3))
    raises(DTypeError, "got NoneType", lambda: read_csv(None))


def test_byte_order_mark_and_binary_stream_are_read():
    """Not errors: a UTF-8 byte-order mark (spreadsheet export) and a binary stream of valid UTF-8."""
    (p,) = read_csv(io.StringIO("\ufeff" + HEADER + GOOD_ROW))
    assert p.name == "a" and p.sem_percent == 1.0
    (p,) = read_csv(io.BytesIO((HEADER + GOOD_ROW).encode()))
    assert p.n_repeats == 60


# --------------------------------------------------------------------------- recordings


def write_nwb(path: Path, units=(), stimulus=None) -> Path:
    from pynwb import NWBHDF5IO, NWBFile, TimeSeries

    nwb = NWBFile(session_description="test", identifier=path.stem, session_start_time=datetime.now(UTC))
    if stimulus is not None:
        nwb.add_stimulus(TimeSeries(name="sound", data=stimulus, unit="a.u.", rate=1000.0))
    for times in units:
        nwb.add_unit(spike_times=times)
    with NWBHDF5IO(str(path), "w") as handle:
        handle.write(nwb)
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Bad recording files, written once."""
    folder = tmp_path_factory.mktemp("recordings")
    rng = np.random.default_rng(0)
    spikes = np.sort(rng.uniform(0, 5, 100))
    stimulus = rng.standard_normal(5000)
    out = {
        "no-units": write_nwb(folder / "no_units.nwb", stimulus=stimulus),
        "no-inputs": write_nwb(folder / "one_unit.nwb", units=[spikes]),
        "two-units": write_nwb(folder / "two_units.nwb", units=[spikes, spikes[:50]]),
        "folder": folder,
    }
    (folder / "junk.nwb").write_bytes(b"not an HDF5 file")
    out["junk-nwb"] = folder / "junk.nwb"
    import h5py

    with h5py.File(folder / "plain.nwb", "w") as handle:
        handle["x"] = np.zeros(3)
    out["hdf5-not-nwb"] = folder / "plain.nwb"
    base = dict(spike_times_s=spikes, duration_s=5.0, stimulus=stimulus, stimulus_rate_hz=1000.0)
    arrays = {
        "npz-missing": dict(spikes=spikes),
        "npz-nan-spikes": base | dict(spike_times_s=np.append(spikes, np.nan)),
        "npz-nan-stimulus": base | dict(stimulus=np.full(100, np.inf)),
        "npz-zero-rate": base | dict(stimulus_rate_hz=0.0),
        "npz-negative-duration": base | dict(duration_s=-5.0),
        "npz-duration-array": base | dict(duration_s=np.ones(2)),
        "npz-text-spikes": base | dict(spike_times_s=np.array(["a"])),
        "npz-2d-spikes": base | dict(spike_times_s=np.zeros((3, 3))),
        "npz-3d-stimulus": base | dict(stimulus=np.zeros((9, 2, 2))),
        "npz-no-inputs": dict(spike_times_s=spikes, duration_s=5.0),
    }
    for name, content in arrays.items():
        np.savez(folder / f"{name}.npz", **content)
        out[name] = folder / f"{name}.npz"
    np.savez(folder / "objects.npz", spike_times_s=np.array([spikes, spikes[:3]], dtype=object), duration_s=5.0)
    out["npz-objects"] = folder / "objects.npz"
    (folder / "junk.npz").write_bytes(b"PK\x03\x04 not a zip")
    out["junk-npz"] = folder / "junk.npz"
    (folder / "data.csv").write_text(HEADER + GOOD_ROW)
    out["csv"] = folder / "data.csv"
    return out


RECORDING_CASES = [
    ("no-units", None, r"no Units table with spike times"),
    ("no-inputs", None, r"no inputs \(neither a stimulus nor other neurons' spikes\)"),
    ("two-units", 7, r"no unit with id 7; ids are \[0, 1\]"),
    ("two-units", "first", r"a unit is chosen by its integer id, got 'first'"),
    ("two-units", "1.5", r"integer id, got '1.5'"),
    ("junk-nwb", None, r"not a readable NWB file"),
    ("hdf5-not-nwb", None, r"not a readable NWB file"),
    ("npz-missing", None, r"missing array 'spike_times_s'"),
    ("npz-nan-spikes", None, r"spike times hold NaN or inf"),
    ("npz-nan-stimulus", None, r"the stimulus holds NaN or inf"),
    ("npz-zero-rate", None, r"a stimulus needs a finite sampling rate > 0 Hz"),
    ("npz-negative-duration", None, r"duration must be a finite number > 0 s"),
    ("npz-duration-array", None, r"duration_s must be a single number"),
    ("npz-text-spikes", None, r"spike times must be numbers"),
    ("npz-2d-spikes", None, r"spike times must be a 1-d array"),
    ("npz-3d-stimulus", None, r"the stimulus must be \[samples\] or \[samples, channels\]"),
    ("npz-no-inputs", None, r"no inputs"),
    ("npz-objects", None, r"array 'spike_times_s' cannot be read"),
    ("npz-missing", 1, r"a unit can be chosen in NWB files only"),
    ("junk-npz", None, r"not a readable .npz file"),
    ("csv", None, r"unknown recording format '.csv'; use .nwb or .npz"),
    ("folder", None, r"is a folder, not a recording file"),
]


@pytest.mark.parametrize(
    "name, unit, message", RECORDING_CASES, ids=[f"{c[0]}-unit-{c[1]}" if c[1] else c[0] for c in RECORDING_CASES]
)
def test_recording_files(files, name, unit, message):
    raises(RecordingError, message, lambda: recordings.load(files[name], unit))


def test_recording_sources_and_fit_options(tmp_path):
    raises(RecordingError, "no such file", lambda: recordings.load(tmp_path / "absent.nwb"))
    raises(RecordingError, "a recording source is a path", lambda: recordings.load(None))
    raises(RecordingError, "a unit can be chosen in NWB files only", lambda: recordings.load("grasshopper1", 2))
    rng = np.random.default_rng(0)
    recording = recordings.Recording(np.sort(rng.uniform(0, 5, 200)), 5.0, rng.standard_normal(5000), 1000.0)
    options = dict(steps=2, show_progress=False)
    cases = [
        (dict(steps=0), OutOfRangeError, "steps must be >= 1"),
        (dict(steps="10"), DTypeError, "steps must be an int"),
        (dict(learning_rate=float("nan")), OutOfRangeError, "learning_rate must be a finite number > 0"),
        (dict(learning_rate=-1e-3), OutOfRangeError, "learning_rate must be a finite number > 0"),
        (dict(bin_ms=0.0), OutOfRangeError, "bin_ms must be > 0"),
        (dict(bin_ms=-2.0), OutOfRangeError, "bin_ms must be > 0"),
        (dict(bin_ms=float("nan")), OutOfRangeError, "bin_ms must be > 0"),
        (dict(bin_ms="2"), DTypeError, "bin_ms must be a number"),
        (dict(bin_ms=1e-9), OutOfRangeError, "design matrix too large"),
        (dict(lags=0), OutOfRangeError, "lags must be an int >= 1"),
        (dict(models=("glm",)), UnknownNameError, "unknown recording model 'glm'"),
        (dict(models=()), OutOfRangeError, "models is empty"),
        (dict(likelihood="gauss"), UnknownNameError, "unknown likelihood 'gauss'"),
        (dict(train_fraction=1.0), OutOfRangeError, r"train_fraction must lie in \[0.1, 0.95\]"),
        (dict(seed="0"), DTypeError, "seed must be an int"),
    ]
    for change, error, message in cases:
        raises(error, message, lambda change=change: recordings.fit_recording(recording, **(options | change)))
    raises(DTypeError, "fit_recording takes a Recording", lambda: recordings.fit_recording({"spikes": []}, **options))


# --------------------------------------------------------------------------- output paths


def test_output_path_in_missing_folder_writes_nothing(tmp_path):
    target = tmp_path / "missing" / "result.nc"
    raises(OutputPathError, f"output folder {tmp_path / 'missing'} does not exist", lambda: check_writable(target))
    raises(OutputPathError, "does not exist", lambda: save_netcdf(data.load("sjostrom2001"), target))
    raises(OutputPathError, "does not exist", lambda: save_json({"a": 1}, target.with_suffix(".json")))
    assert not (tmp_path / "missing").exists()
    raises(OutputPathError, "is a folder; give a file name", lambda: check_writable(tmp_path))


def test_output_path_below_a_file(tmp_path):
    (tmp_path / "file").write_text("x")
    raises(OutputPathError, "does not exist", lambda: check_writable(tmp_path / "file" / "result.nc"))


def test_read_only_output_folder_as_reported_by_os_access(tmp_path, monkeypatch):
    """The permission check as the code does it (os.access), so that it runs for root too."""
    folder = tmp_path / "locked"
    folder.mkdir()
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if Path(p) == folder else real_access(p, mode))
    raises(OutputPathError, f"output folder {folder} is not writable", lambda: check_writable(folder / "x.nc"))
    raises(OutputPathError, "is not writable", lambda: save_netcdf(data.load("sjostrom2001"), folder / "x.nc"))
    assert list(folder.iterdir()) == []


@pytest.mark.skipif(ROOT, reason="root can write into read-only folders; the os.access case above covers the check")
def test_read_only_output_folder(tmp_path):
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        raises(OutputPathError, "is not writable", lambda: save_netcdf(data.load("sjostrom2001"), folder / "x.nc"))
        assert list(folder.iterdir()) == []
    finally:
        folder.chmod(0o700)


def test_failed_write_leaves_no_partial_file(tmp_path):
    target = tmp_path / "result.nc"
    with pytest.raises(RuntimeError, match="interrupted"):
        with atomic_path(target) as temporary:
            Path(temporary).write_bytes(b"half")
            raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------- command line


@pytest.fixture(scope="module")
def cli_files(tmp_path_factory, files):
    folder = tmp_path_factory.mktemp("cli")
    texts = {
        "missing-columns.csv": "protocol,pre_times_ms\na,0\n",
        "text-in-numbers.csv": HEADER + "a,0,10,one,60,5,1\n",
        "nan.csv": HEADER + "a,0,10,1,60,nan,1\n",
        "inf-time.csv": HEADER + "a,0;inf,10,1,60,5,1\n",
        "zero-hz.csv": HEADER + "a,0,10,0,60,5,1\n",
        "no-dw.csv": "protocol,pre_times_ms,post_times_ms,repeat_hz,n_repeats\na,0,10,1,60\n",
        "empty.csv": "",
        "good.csv": HEADER + GOOD_ROW,
    }
    for name, text in texts.items():
        (folder / name).write_text(text)
    (folder / "binary.csv").write_bytes(bytes(range(256)))
    (folder / "latin1.csv").write_bytes((HEADER + "a,0,10,1,60,\xb15,1\n").encode("latin-1"))
    named = {k: str(v) for k, v in files.items() if k != "folder"}
    return {**named, **{p.stem: str(p) for p in folder.iterdir()}, "folder": folder}


CLI_CASES = [
    # (id, arguments with {name} placeholders, message in the error line)
    ("csv-missing-columns", "predict stdp {missing-columns}", "missing column(s) post_times_ms"),
    ("csv-text", "predict stdp {text-in-numbers}", "line 2, column repeat_hz: 'one' is not a number"),
    ("csv-nan", "predict stdp {nan}", "line 2, column dw_percent: nan is not finite"),
    ("csv-inf-time", "predict triplet {inf-time}", "spike time inf must be a finite number"),
    ("csv-zero-hz", "fit stdp {zero-hz} --no-progress", "column repeat_hz: must be > 0"),
    ("csv-empty", "predict stdp {empty}", "empty (no header and no rows)"),
    ("csv-binary", "predict stdp {binary}", "not a text (UTF-8) CSV file"),
    ("csv-latin1", "fit stdp {latin1} --no-progress", "not a text (UTF-8) CSV file"),
    ("csv-missing-path", "predict stdp {folder}/absent.csv", "absent.csv: no such file"),
    ("csv-folder", "predict stdp {folder}", "is a folder, not a CSV file"),
    ("fit-without-data", "fit stdp {no-dw} --no-progress", "has no dw_percent: there is nothing to fit"),
    ("unknown-rule", "predict hebb sjostrom2001", "unknown rule 'hebb'; choose one of: stdp"),
    ("unknown-parameter", "predict stdp {good} --param A_plsu=1", "unknown parameter of rule 'stdp' 'A_plsu'"),
    ("tau-zero", "predict stdp {good} --param tau_plus_ms=0", "tau_plus_ms must be > 0 ms"),
    ("tau-negative", "fit stdp {good} --fix tau_minus_ms=-3 --no-progress", "tau_minus_ms must be > 0 ms"),
    ("parameter-nan", "predict stdp {good} --param A_plus=nan", "A_plus must be finite"),
    ("parameter-inf", "predict triplet {good} --param A3_plus=inf", "A3_plus must be finite"),
    ("dt-zero", "predict delta {good} --dt-ms 0", "dt_ms must be a finite number > 0"),
    ("dt-negative", "predict delta {good} --dt-ms -0.1", "dt_ms must be a finite number > 0"),
    ("dt-too-coarse", "predict delta {good} --dt-ms 50", "must be smaller than every trace time constant"),
    ("fit-seed", "fit stdp {good} --seed -1 --no-progress", "seed must be an int >= 0"),
    ("fit-starts", "fit stdp {good} --starts 0 --no-progress", "starts must be an int >= 1"),
    ("fit-free", "fit stdp {good} --free A_plsu --no-progress", "unknown parameter of rule 'stdp' 'A_plsu'"),
    ("fit-bound-unknown", "fit stdp {good} --bound A_plsu=0:1 --no-progress", "'A_plsu'"),
    ("fit-bound-not-free", "fit stdp {good} --bound tau_plus_ms=1:50 --no-progress", "not a free parameter"),
    ("fit-bound-reversed", "fit stdp {good} --bound A_plus=1:0 --no-progress", "low < high"),
    ("rec-no-units", "fit-recording {no-units} --no-progress --out {folder}/rec1", "no Units table with spike times"),
    ("rec-no-inputs", "fit-recording {no-inputs} --no-progress --out {folder}/rec2", "no inputs"),
    ("rec-unit", "fit-recording {two-units} --unit x --no-progress --out {folder}/rec3", "integer id, got 'x'"),
    ("rec-missing", "fit-recording {folder}/absent.nwb --no-progress --out {folder}/rec4", "no such file"),
    ("rec-junk", "fit-recording {junk-nwb} --no-progress --out {folder}/rec5", "not a readable NWB file"),
    ("rec-npz-nan", "fit-recording {npz-nan-spikes} --no-progress --out {folder}/rec6", "hold NaN or inf"),
    ("rec-bin", "fit-recording {two-units} --bin-ms 0 --no-progress --out {folder}/rec7", "bin_ms must be > 0"),
    ("rec-steps", "fit-recording {two-units} --steps 0 --no-progress --out {folder}/rec8", "steps must be >= 1"),
    ("rec-format", "fit-recording {csv} --no-progress --out {folder}/rec9", "unknown recording format '.csv'"),
    ("out-missing-folder", "predict stdp {good} --out {folder}/missing/x.nc", "/missing does not exist"),
    ("fit-out-missing", "fit stdp {good} --no-progress --out {folder}/missing/x.nc", "/missing does not exist"),
    ("rec-out-parent", "fit-recording {two-units} --no-progress --out {folder}/no/such", "/no does not exist"),
    ("demo-out-missing", "demo --pairs 8 --seeds 1 --no-progress --out {folder}/missing/c.nc", "does not exist"),
    ("song-duration", "simulate song2000 --duration -5s --no-progress --out {folder}/song", "duration must be > 0"),
    ("demo-pairs", "demo --pairs 0 --no-progress", "n_pairs must be a non-empty list of counts >= 1"),
]


def cli_arguments(template: str, paths: dict) -> list[str]:
    return [part.format_map(paths) for part in template.split()]


def outputs(folder: Path) -> set[Path]:
    return {p for p in folder.rglob("*") if p.is_file()}


def assert_one_error_line(result, message: str) -> None:
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    assert isinstance(result.exception, SystemExit), repr(result.exception)  # not a leaked exception
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("neurofwp: error: "), lines
    assert message in lines[0], (message, lines[0])
    assert "Traceback" not in result.output


@pytest.mark.parametrize("template, message", [c[1:] for c in CLI_CASES], ids=[c[0] for c in CLI_CASES])
def test_command_line(cli_files, run_cli, template, message):
    before = outputs(cli_files["folder"])
    result = run_cli(*cli_arguments(template, cli_files))
    assert_one_error_line(result, message)
    assert outputs(cli_files["folder"]) == before, "a failed run wrote a file"


def test_command_line_read_only_output_folder(cli_files, run_cli, monkeypatch, tmp_path):
    folder = tmp_path / "locked"
    folder.mkdir()
    real_access = os.access
    monkeypatch.setattr(
        os, "access", lambda p, mode: False if Path(p) == folder and mode == os.W_OK else real_access(p, mode)
    )
    for args in (
        ["predict", "stdp", cli_files["good"], "--out", str(folder / "p.nc")],
        ["fit", "stdp", cli_files["good"], "--no-progress", "--out", str(folder / "f.nc")],
        ["fit-recording", cli_files["two-units"], "--no-progress", "--out", str(folder)],
    ):
        assert_one_error_line(run_cli(*args), f"output folder {folder} is not writable")
    assert list(folder.iterdir()) == []


def test_command_line_usage_errors_exit_2_without_traceback(cli_files, run_cli):
    """Options that click itself checks (choices, NAME=VALUE syntax) exit 2 with click's usage message."""
    for args, message in (
        (["predict", "stdp", "sjostrom2001", "--backend", "nest"], "'nest' is not one of 'torch', 'brian2'"),
        (["predict", "stdp", "sjostrom2001", "--param", "A_plus"], "expected NAME=VALUE"),
        (["predict", "stdp", "sjostrom2001", "--param", "A_plus=big"], "'big' is not a number"),
        (["fit", "stdp", "sjostrom2001", "--bound", "A_plus=1"], "expected NAME=LOW:HIGH"),
        (["fit-recording", "grasshopper1", "--likelihood", "gauss"], "'gauss' is not one of"),
        (["simulate", "song3000"], "'song3000' is not"),
        (["nonsense"], "No such command 'nonsense'"),
    ):
        result = run_cli(*args)
        assert result.exit_code == 2 and isinstance(result.exception, SystemExit), (args, result.output)
        assert message in result.stderr and "Traceback" not in result.output, (args, result.stderr)


SUBPROCESS_CASES = [
    ("binary-csv", "predict stdp {binary}", "not a text (UTF-8) CSV file"),
    ("nwb-without-units", "fit-recording {no-units} --no-progress --out {folder}/sub", "no Units table"),
    ("seed", "fit stdp {good} --seed -1 --no-progress", "seed must be an int >= 0"),
]


@pytest.mark.parametrize("template, message", [c[1:] for c in SUBPROCESS_CASES], ids=[c[0] for c in SUBPROCESS_CASES])
def test_command_line_process(cli_files, template, message):
    """The real process: exit status 2 and exactly one line on stderr, nothing on stdout."""
    before = outputs(cli_files["folder"])
    process = subprocess.run(
        [sys.executable, "-m", "neurofwp.cli", *cli_arguments(template, cli_files)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert process.returncode == 2, process.stderr
    lines = process.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("neurofwp: error: ") and message in lines[0], process.stderr
    assert process.stdout == ""
    assert outputs(cli_files["folder"]) == before


def test_layer_feature_map_rule_and_capacity_inputs():
    """Inputs whose errors come from the layer, feature-map options, rule names and the capacity curve."""
    from neurofwp.analysis.capacity import retrieval_curve
    from neurofwp.plasticity import get_rule
    from neurofwp.tensor import FastWeightLayer, feature_maps

    layer = FastWeightLayer(d_model=8, num_heads=2)
    with pytest.raises(DTypeError, match="x is torch.float64 .* layer's weights are torch.float32"):
        layer(torch.randn(1, 3, 8, dtype=torch.float64))
    bad = torch.randn(1, 3, 8)
    bad[0, 1, 2] = float("inf")
    with pytest.raises(NonFiniteError, match="^x holds 1 non-finite"):
        layer(bad)
    with pytest.raises(UnknownNameError, match="option of feature map 'dpfp' 'foo'"):
        feature_maps.get("dpfp", foo=1)
    with pytest.raises(UnknownNameError, match="option of feature map 'identity' 'nu'"):
        feature_maps.get("identity", nu=2)
    with pytest.raises(UnknownNameError, match="unknown rule"):
        get_rule(["stdp"])
    with pytest.raises(OutOfRangeError, match="d_key must be an int >= 1"):
        retrieval_curve([4], d_key=-3, show_progress=False)
    with pytest.raises(OutOfRangeError, match="at least one seed"):
        retrieval_curve([4], seeds=[], show_progress=False)
