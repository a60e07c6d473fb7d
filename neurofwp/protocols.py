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
"""

from __future__ import annotations

import csv
import io
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from neurofwp.errors import NeurofwpError

REQUIRED = ("protocol", "pre_times_ms", "post_times_ms", "repeat_hz", "n_repeats")
OPTIONAL = ("dw_percent", "sem_percent", "mod_times_ms")
PRE, POST, MODULATOR = 0, 1, 2
_ORDER = {MODULATOR: 0, PRE: 1, POST: 2}  # at equal times


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


def make_protocol(
    name: str,
    pre_times_ms,
    post_times_ms,
    repeat_hz: float,
    n_repeats: int,
    dw_percent: float | None = None,
    sem_percent: float | None = None,
    where: str | None = None,
    mod_times_ms=(),
) -> Protocol:
    """Build and check a protocol from Python values (the CSV loader goes through here too)."""
    where = where or f"protocol {name!r}"

    def as_text(times) -> str:
        return times if isinstance(times, str) else ";".join(repr(float(t)) for t in times)

    pre = _times(as_text(pre_times_ms), f"{where}, column pre_times_ms")
    post = _times(as_text(post_times_ms), f"{where}, column post_times_ms")
    mod = _times(as_text(mod_times_ms), f"{where}, column mod_times_ms")
    hz = _number(str(repeat_hz), f"{where}, column repeat_hz", positive=True)
    repeats = _number(str(n_repeats), f"{where}, column n_repeats", integer=True)
    if not pre and not post:
        raise ProtocolError(f"{where}: no spikes (pre_times_ms and post_times_ms are both empty)")
    times = (*pre, *post, *mod)
    period = 1000.0 / hz
    if repeats > 1 and max(times) >= period:
        raise ProtocolError(
            f"{where}: repetitions overlap: spikes up to {max(times):g} ms but the period at {hz:g} Hz is {period:g} ms"
        )
    if sem_percent is not None and sem_percent <= 0:
        raise ProtocolError(f"{where}, column sem_percent: must be > 0, got {sem_percent}")
    return Protocol(str(name), pre, post, hz, repeats, dw_percent, sem_percent, mod)


def read_csv(source: str | os.PathLike | io.TextIOBase) -> list[Protocol]:
    """Read a protocol table (see the module docstring for the schema); errors name the row and column."""
    label = str(source) if not isinstance(source, io.TextIOBase) else "<stream>"
    if isinstance(source, io.TextIOBase):
        text = source.read()
    else:
        path = Path(source)
        if not path.is_file():
            raise ProtocolError(f"{label}: no such file")
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise ProtocolError(f"{label}: not a text (UTF-8) CSV file") from None
    if "\x00" in text:
        raise ProtocolError(f"{label}: not a text CSV file (contains NUL bytes)")
    lines = [
        (number, line)
        for number, line in enumerate(text.splitlines(), start=1)
        if line.strip() and not line.lstrip().startswith("#")
    ]
    if not lines:
        raise ProtocolError(f"{label}: empty (no header and no rows)")
    header_line, header = lines[0][0], next(csv.reader([lines[0][1]]))
    header = [h.strip() for h in header]
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise ProtocolError(f"{label}, line {header_line}: missing column(s) {', '.join(missing)}; header is {header}")
    if len(lines) == 1:
        raise ProtocolError(f"{label}: has a header but no protocol rows")
    protocols, names = [], set()
    for number, line in lines[1:]:
        cells = next(csv.reader([line]))
        where = f"{label}, line {number}"
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
