"""Plasticity protocols: a table row per experiment, turned into pre- and postsynaptic spike trains.

CSV schema (lines starting with ``#`` are comments, e.g. the citation):

==============  ==========================================================================
column          meaning
==============  ==========================================================================
protocol        unique name
pre_times_ms    presynaptic spike times within one repetition, ``;``-separated, ms, >= 0
post_times_ms   postsynaptic spike times within one repetition, ``;``-separated, ms, >= 0
repeat_hz       repetition frequency (> 0): repetition r starts at ``r · 1000 / repeat_hz`` ms
n_repeats       number of repetitions (integer >= 1)
dw_percent      optional: measured weight change, percent (0 = no change)
sem_percent     optional: its standard error of the mean, percent (> 0)
mod_times_ms    optional: neuromodulator pulses within one repetition (third factor), ms
==============  ==========================================================================

The weight starts at 1 with no bounds and ``dw_percent = 100 · (w_end − 1)``. A
repetition's spikes must fit inside one period (else the repetitions overlap).
Simultaneous events are processed in the order modulator pulse, pre spike, post spike.
A protocol lasts at most :data:`MAX_DURATION_MS` and holds at most :data:`MAX_EVENTS`
events (spikes and pulses over all repetitions), so that every backend can represent it.
"""

from __future__ import annotations

import csv
import io
import math
import numbers
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np

from neurofwp.errors import DTypeError, NeurofwpError

REQUIRED = ("protocol", "pre_times_ms", "post_times_ms", "repeat_hz", "n_repeats")
OPTIONAL = ("dw_percent", "sem_percent", "mod_times_ms")
PRE, POST, MODULATOR = 0, 1, 2
_ORDER = {MODULATOR: 0, PRE: 1, POST: 2}  # at equal times
# Limits that keep a protocol representable: times on a 0.1 ms grid stay exact in float64
# (1e12 ms / 0.1 ms = 1e13 < 2**53 steps) and the event tables fit in memory.
MAX_DURATION_MS = 1e12  # about 32 years
MAX_EVENTS = 10_000_000


class ProtocolError(NeurofwpError, ValueError):
    """A protocol table or row is malformed; the message names the file, row and column."""


@dataclass(frozen=True)
class Protocol:
    """One plasticity experiment: spike times within a repetition, repeated ``n_repeats`` times at ``repeat_hz``."""

    name: str
    pre_times_ms: tuple[float, ...]
    post_times_ms: tuple[float, ...]
    repeat_hz: float
    n_repeats: int
    dw_percent: float | None = None
    sem_percent: float | None = None
    mod_times_ms: tuple[float, ...] = ()

    @property
    def period_ms(self) -> float:
        return 1000.0 / self.repeat_hz

    @property
    def duration_ms(self) -> float:
        """Time of the last event (spike or modulator pulse, ms); the simulation's end is set by the backend."""
        last = max((*self.pre_times_ms, *self.post_times_ms, *self.mod_times_ms), default=0.0)
        return (self.n_repeats - 1) * self.period_ms + last

    def spike_trains(self) -> tuple[np.ndarray, np.ndarray]:
        """All presynaptic and postsynaptic spike times (ms), sorted."""
        offsets = np.arange(self.n_repeats) * self.period_ms
        pre = (offsets[:, None] + np.asarray(self.pre_times_ms, dtype=float)[None, :]).ravel()
        post = (offsets[:, None] + np.asarray(self.post_times_ms, dtype=float)[None, :]).ravel()
        return np.sort(pre), np.sort(post)

    def modulator_train(self) -> np.ndarray:
        """All neuromodulator pulse times (ms), sorted (empty without a third factor)."""
        offsets = np.arange(self.n_repeats) * self.period_ms
        return np.sort((offsets[:, None] + np.asarray(self.mod_times_ms, dtype=float)[None, :]).ravel())

    def events(self) -> tuple[np.ndarray, np.ndarray]:
        """Merged event times (ms) and kinds (PRE, POST, MODULATOR); at equal times modulator, pre, post."""
        pre, post = self.spike_trains()
        mod = self.modulator_train()
        times = np.concatenate([pre, post, mod])
        kinds = np.concatenate([np.full(len(pre), PRE), np.full(len(post), POST), np.full(len(mod), MODULATOR)])
        priority = np.vectorize(_ORDER.get)(kinds) if len(kinds) else kinds
        order = np.lexsort((priority, times))
        return times[order], kinds[order].astype(np.int64)


def _times(text: str, where: str) -> tuple[float, ...]:
    text = text.strip()
    if not text:
        return ()
    values = []
    for part in text.split(";"):
        try:
            value = float(part)
        except ValueError:
            raise ProtocolError(
                f"{where}: {part.strip()!r} is not a number (spike times are ';'-separated ms)"
            ) from None
        if not math.isfinite(value) or value < 0:
            raise ProtocolError(f"{where}: spike time {part.strip()} must be a finite number >= 0 ms")
        values.append(value)
    if len(set(values)) != len(values):
        raise ProtocolError(f"{where}: a neuron cannot spike twice at the same time ({text})")
    return tuple(values)


def _number(text: str, where: str, *, positive: bool = False, integer: bool = False, optional: bool = False):
    text = (text or "").strip()
    if not text:
        if optional:
            return None
        raise ProtocolError(f"{where}: empty, a number is required")
    try:
        value = float(text)
    except ValueError:
        raise ProtocolError(f"{where}: {text!r} is not a number") from None
    if not math.isfinite(value):
        raise ProtocolError(f"{where}: {text} is not finite")
    if positive and value <= 0:
        raise ProtocolError(f"{where}: must be > 0, got {text}")
    if integer:
        if value != int(value) or value < 1:
            raise ProtocolError(f"{where}: must be a whole number >= 1, got {text}")
        return int(value)
    return value


def _as_text(value: object, where: str) -> str:
    """A number given as text or as a Python/numpy/0-d torch number, as text for :func:`_number`."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool) or value is None:
        raise ProtocolError(f"{where}: expected a number, got {value!r}")
    if isinstance(value, numbers.Integral):
        return str(int(value))
    try:
        return repr(float(cast(Any, value)))  # numpy scalars and 0-d tensors convert; lists and arrays raise
    except (TypeError, ValueError):
        raise ProtocolError(f"{where}: expected a number, got {type(value).__name__} {value!r}") from None


def _times_as_text(times: object, where: str) -> str:
    """Spike times given as ``';'``-separated text or as a 1-d sequence of numbers."""
    if isinstance(times, str):
        return times
    if times is None or isinstance(times, (bool, int, float)) or not hasattr(times, "__iter__"):
        raise ProtocolError(f"{where}: expected a sequence of spike times in ms (or ';'-separated text), got {times!r}")
    try:
        items = list(times)
    except TypeError:  # e.g. a 0-d array
        raise ProtocolError(f"{where}: expected a sequence of spike times in ms, got {times!r}") from None
    parts = []
    for item in items:
        if isinstance(item, (str, bool)) or item is None:
            raise ProtocolError(f"{where}: spike time {item!r} is not a number")
        try:
            parts.append(repr(float(item)))
        except (TypeError, ValueError):
            raise ProtocolError(f"{where}: spike time {item!r} is not a number") from None
    return ";".join(parts)


def make_protocol(
    name: str,
    pre_times_ms,
    post_times_ms,
    repeat_hz: float | str,
    n_repeats: int | str,
    dw_percent: float | None = None,
    sem_percent: float | None = None,
    where: str | None = None,
    mod_times_ms=(),
) -> Protocol:
    """Build and check a protocol from Python values (the CSV loader goes through here too)."""
    where = where or f"protocol {name!r}"
    pre = _times(_times_as_text(pre_times_ms, f"{where}, column pre_times_ms"), f"{where}, column pre_times_ms")
    post = _times(_times_as_text(post_times_ms, f"{where}, column post_times_ms"), f"{where}, column post_times_ms")
    mod = _times(_times_as_text(mod_times_ms, f"{where}, column mod_times_ms"), f"{where}, column mod_times_ms")
    hz = _number(_as_text(repeat_hz, f"{where}, column repeat_hz"), f"{where}, column repeat_hz", positive=True)
    repeats = _number(_as_text(n_repeats, f"{where}, column n_repeats"), f"{where}, column n_repeats", integer=True)
    if dw_percent is not None:
        dw_percent = _number(_as_text(dw_percent, f"{where}, column dw_percent"), f"{where}, column dw_percent")
    if sem_percent is not None:
        sem_percent = _number(
            _as_text(sem_percent, f"{where}, column sem_percent"), f"{where}, column sem_percent", positive=True
        )
    if not pre and not post:
        raise ProtocolError(f"{where}: no spikes (pre_times_ms and post_times_ms are both empty)")
    times = (*pre, *post, *mod)
    period = 1000.0 / hz
    if not math.isfinite(period):
        raise ProtocolError(f"{where}, column repeat_hz: {hz:g} Hz is too small (the period overflows)")
    if repeats > 1 and max(times) >= period:
        raise ProtocolError(
            f"{where}: repetitions overlap: spikes up to {max(times):g} ms but the period at {hz:g} Hz is {period:g} ms"
        )
    duration = (repeats - 1) * period + max(times)
    if not duration <= MAX_DURATION_MS:
        raise ProtocolError(
            f"{where}: lasts {duration:g} ms ({repeats:g} repetitions at {hz:g} Hz); "
            f"at most {MAX_DURATION_MS:g} ms is supported"
        )
    if repeats * len(times) > MAX_EVENTS:
        raise ProtocolError(
            f"{where}: {repeats} repetitions of {len(times)} events make {repeats * len(times)} events; "
            f"at most {MAX_EVENTS} are supported"
        )
    return Protocol(str(name), pre, post, hz, repeats, dw_percent, sem_percent, mod)


def _read_source(source: object) -> tuple[str, str]:
    """The label used in messages and the text of a path, a text stream or a binary stream."""
    if isinstance(source, io.TextIOBase):
        label = "<stream>"
        try:
            text = source.read()
        except UnicodeDecodeError:
            raise ProtocolError(f"{label}: not a text (UTF-8) CSV file") from None
        return label, text
    if isinstance(source, (io.BufferedIOBase, io.RawIOBase)):
        label = "<stream>"
        raw = source.read()
    elif isinstance(source, (str, os.PathLike)):
        path = Path(source)
        label = str(path)
        if path.is_dir():
            raise ProtocolError(f"{label}: is a folder, not a CSV file")
        if not path.is_file():
            raise ProtocolError(f"{label}: no such file")
        try:
            raw = path.read_bytes()
        except OSError as error:
            raise ProtocolError(f"{label}: cannot be read ({error.strerror or error})") from None
    else:
        raise DTypeError(f"read_csv takes a file path or an open file, got {type(source).__name__}")
    if not isinstance(raw, (bytes, bytearray)):
        raise DTypeError(f"{label}: the stream returned {type(raw).__name__}, not bytes or text")
    try:
        return label, bytes(raw).decode("utf-8")
    except UnicodeDecodeError:
        raise ProtocolError(f"{label}: not a text (UTF-8) CSV file") from None


def _cells(line: str, where: str) -> list[str]:
    try:
        return next(csv.reader([line]), [])
    except csv.Error as error:
        raise ProtocolError(f"{where}: not a valid CSV line ({error})") from None


def read_csv(source: str | os.PathLike | io.IOBase) -> list[Protocol]:
    """Read a protocol table (see the module docstring for the schema); errors name the row and column.

    ``source`` is a path, or an open text or binary file (binary content is decoded as UTF-8).
    Every problem raises :class:`ProtocolError` (a :class:`~neurofwp.errors.NeurofwpError`).
    """
    label, text = _read_source(source)
    if "\x00" in text:
        raise ProtocolError(f"{label}: not a text CSV file (contains NUL bytes)")
    text = text.removeprefix("\ufeff")  # a byte-order mark written by some spreadsheet programs
    lines = [
        (number, line)
        for number, line in enumerate(text.splitlines(), start=1)
        if line.strip() and not line.lstrip().startswith("#")
    ]
    if not lines:
        raise ProtocolError(f"{label}: empty (no header and no rows)")
    header_line = lines[0][0]
    header = [h.strip() for h in _cells(lines[0][1], f"{label}, line {header_line}")]
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise ProtocolError(f"{label}, line {header_line}: missing column(s) {', '.join(missing)}; header is {header}")
    repeated = sorted({c for c in header if header.count(c) > 1})
    if repeated:
        raise ProtocolError(f"{label}, line {header_line}: column(s) {', '.join(map(repr, repeated))} appear twice")
    if len(lines) == 1:
        raise ProtocolError(f"{label}: has a header but no protocol rows")
    protocols, names = [], set()
    for number, line in lines[1:]:
        where = f"{label}, line {number}"
        cells = _cells(line, where)
        if len(cells) != len(header):
            raise ProtocolError(f"{where}: {len(cells)} fields, the header has {len(header)}")
        row = dict(zip(header, cells, strict=True))
        name = row["protocol"].strip()
        if not name:
            raise ProtocolError(f"{where}, column protocol: empty name")
        if name in names:
            raise ProtocolError(f"{where}, column protocol: duplicate name {name!r}")
        names.add(name)
        dw = _number(row.get("dw_percent", ""), f"{where}, column dw_percent", optional=True)
        sem = _number(row.get("sem_percent", ""), f"{where}, column sem_percent", optional=True)
        protocols.append(
            make_protocol(
                name,
                row["pre_times_ms"],
                row["post_times_ms"],
                row["repeat_hz"],
                row["n_repeats"],
                dw,
                sem,
                where=where,
                mod_times_ms=row.get("mod_times_ms", ""),
            )
        )
    return protocols
