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

The comment lines above the header are the table's citation (:func:`read_table`).

A table whose header has an ``amplitude`` column is a table of train responses (short-term
plasticity, :class:`TrainProtocol`):

==============  ==========================================================================
column          meaning
==============  ==========================================================================
protocol        unique name
pre_times_ms    the presynaptic spike times, ``;``-separated, ms, >= 0, increasing
amplitude       the measured response to each spike, ``;``-separated, one per spike; a table
                whose every first amplitude is 1 is normalised to the first response
sem             optional: the SEM of each amplitude (``;``-separated, > 0), or empty
==============  ==========================================================================

No column is ignored silently. A header name *close* to a known column the header lacks is
an error (``unknown column 'sem'; did you mean 'sem_percent'?``), since its values would
otherwise be dropped. Close means, after lower-casing and turning spaces and hyphens into
``_``: the same name (``DW_percent``); one name a prefix of the other, at least two
characters long (``dw``, ``pre_times``); the same first ``_``-separated word of at least two
characters (``sem_sd``, ``dw_mean``); or a :mod:`difflib` similarity of at least 0.8
(``post_time_ms``, ``nrepeats``). Every other column is kept as protocol metadata
(:attr:`Protocol.metadata`, text), carried into the xarray Dataset of
:func:`neurofwp.data.to_dataset` as a variable along ``protocol``; :func:`read_table` lists
them and :class:`ExtraColumnsWarning` names them. Their names must not be one the Dataset
uses itself (:data:`RESERVED`). An unnamed column (a trailing comma) must be empty.

Rows either all carry an SEM or none does (among rows with a ``dw_percent``): the error E
of :func:`neurofwp.fit.fit` and :func:`neurofwp.plasticity.predict` divides every residual
by its SEM, and :func:`check_sem` raises :class:`MissingSEMError` naming the rows without one
rather than changing E's definition for the whole table.

The weight starts at 1 with no bounds and ``dw_percent = 100 · (w_end − 1)``. A
repetition's spikes must fit inside one period (else the repetitions overlap).
Simultaneous events are processed in the order modulator pulse, pre spike, post spike.
A protocol lasts at most :data:`MAX_DURATION_MS` and holds at most :data:`MAX_EVENTS`
events (spikes and pulses over all repetitions), so that every backend can represent it.
"""

from __future__ import annotations

import csv
import difflib
import io
import math
import numbers
import os
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast, overload

import numpy as np

from neurofwp.errors import DTypeError, NeurofwpError

REQUIRED = ("protocol", "pre_times_ms", "post_times_ms", "repeat_hz", "n_repeats")
OPTIONAL = ("dw_percent", "sem_percent", "mod_times_ms")
KNOWN = REQUIRED + OPTIONAL
TRAIN_REQUIRED = ("protocol", "pre_times_ms", "amplitude")
TRAIN_KNOWN = (*TRAIN_REQUIRED, "sem")
# Names the xarray form of a table (neurofwp.data.to_dataset, plasticity.predict) gives its own
# variables and dimensions: a metadata column of that name would collide with them.
RESERVED = ("dt_ms", "dw_percent_model", "pre_spike", "post_spike", "mod_pulse", "spike", "amplitude_model")
PRE, POST, MODULATOR = 0, 1, 2
_ORDER = {MODULATOR: 0, PRE: 1, POST: 2}  # at equal times
# Limits that keep a protocol representable: times on a 0.1 ms grid stay exact in float64
# (1e12 ms / 0.1 ms = 1e13 < 2**53 steps) and the event tables fit in memory.
MAX_DURATION_MS = 1e12  # about 32 years
MAX_EVENTS = 10_000_000


class ProtocolError(NeurofwpError, ValueError):
    """A protocol table or row is malformed; the message names the file, row and column."""


class MissingSEMError(ProtocolError):
    """Some measured protocols have an SEM and others do not, so E has no single definition."""


class ExtraColumnsWarning(UserWarning):
    """A protocol table has columns beyond the schema; they are kept as protocol metadata."""


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
    # Extra table columns (column -> cell text). Left out of the hash so that a protocol stays
    # hashable; equal protocols still hash alike.
    metadata: Mapping[str, str] = field(default_factory=dict, hash=False)
    # Where the protocol was read ("file.csv, line 5"), for messages; not part of its identity.
    origin: str | None = field(default=None, compare=False, repr=False)

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


@dataclass(frozen=True)
class TrainProtocol(Protocol):
    """A presynaptic spike train (one repetition, no postsynaptic spikes) and the measured response
    to each of its spikes: ``amplitude`` (one per spike) and optionally its ``sem``."""

    amplitude: tuple[float, ...] | None = None
    sem: tuple[float, ...] | None = None


def make_train(
    name: str,
    pre_times_ms,
    amplitude=None,
    sem=None,
    where: str | None = None,
    metadata: Mapping[str, str | float] | None = None,
) -> TrainProtocol:
    """Build and check a train-response protocol (the CSV loader goes through here too)."""
    origin = where
    where = where or f"protocol {name!r}"
    pre = _times(_times_as_text(pre_times_ms, f"{where}, column pre_times_ms"), f"{where}, column pre_times_ms")
    if not pre:
        raise ProtocolError(f"{where}, column pre_times_ms: no presynaptic spikes")
    if list(pre) != sorted(pre):
        raise ProtocolError(f"{where}, column pre_times_ms: spike times must increase (one value per spike, in order)")
    if max(pre) > MAX_DURATION_MS or len(pre) > MAX_EVENTS:
        raise ProtocolError(f"{where}, column pre_times_ms: too long a train ({len(pre)} spikes up to {max(pre):g} ms)")
    values: dict[str, tuple[float, ...] | None] = {}
    for column, given in (("amplitude", amplitude), ("sem", sem)):
        if given is None or (isinstance(given, str) and not given.strip()):
            values[column] = None
            continue
        text = _times_as_text(given, f"{where}, column {column}")
        # an empty (or NaN) entry is a response not measured (amplitude) or without an SEM (e.g. the
        # first of a normalised train): NaN
        numbers_ = tuple(
            math.nan
            if (number := _number(part, f"{where}, column {column}", positive=column == "sem", optional=True)) is None
            else number
            for part in ("" if part.strip().lower() == "nan" else part for part in text.split(";"))
        )
        if len(numbers_) != len(pre):
            raise ProtocolError(
                f"{where}, column {column}: {len(numbers_)} values for {len(pre)} presynaptic spikes (one per spike)"
            )
        values[column] = numbers_
    if values["sem"] is not None and values["amplitude"] is None:
        raise ProtocolError(f"{where}, column sem: an SEM without amplitudes")
    # one repetition: the repetition period (1000 / repeat_hz) is set beyond the last spike
    hz = 1000.0 / (max(pre) + 1000.0)
    extra = _metadata(metadata, where, TRAIN_KNOWN)
    return TrainProtocol(str(name), pre, (), hz, 1, None, None, (), extra, origin, values["amplitude"], values["sem"])


def is_train_table(protocols: Iterable[Protocol]) -> bool:
    """Whether ``protocols`` are train responses (all :class:`TrainProtocol`); a mix with weight protocols raises."""
    kinds = {isinstance(p, TrainProtocol) for p in protocols}
    if len(kinds) > 1:
        raise ProtocolError("a table mixes train responses with weight-change protocols; keep them in separate tables")
    return kinds == {True}


def is_normalised(protocols: Iterable[TrainProtocol]) -> bool:
    """Whether train responses are normalised to the first: every measured train's first amplitude is 1."""
    measured = [p for p in protocols if p.amplitude is not None]
    return bool(measured) and all(p.amplitude[0] == 1.0 for p in measured if p.amplitude is not None)


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


def _metadata(metadata: object, where: str, known: Sequence[str] = KNOWN) -> dict[str, str]:
    """Metadata as column -> text; numbers are kept as their text, as a CSV cell would hold them."""
    if metadata is None:
        return {}
    if not isinstance(metadata, Mapping):
        raise ProtocolError(f"{where}: metadata must be a mapping of column name to value, got {metadata!r}")
    result = {}
    for key, value in metadata.items():
        if not isinstance(key, str) or not key.strip():
            raise ProtocolError(f"{where}: metadata column names must be non-empty text, got {key!r}")
        _check_metadata_name(key, where, known)
        if isinstance(value, str):
            result[key] = value
        elif isinstance(value, numbers.Real) and not isinstance(value, bool):
            result[key] = str(value)
        else:
            raise ProtocolError(f"{where}, column {key}: metadata must be text or a number, got {value!r}")
    return result


def _check_metadata_name(key: str, where: str, known: Sequence[str] = KNOWN) -> None:
    if key in known:
        raise ProtocolError(f"{where}: {key!r} is a protocol column, not metadata")
    if key in RESERVED:
        raise ProtocolError(
            f"{where}: column name {key!r} is used by neurofwp's results (reserved: {', '.join(RESERVED)}); rename it"
        )
    if "/" in key:  # netCDF variable names cannot hold '/'
        raise ProtocolError(f"{where}: column name {key!r} cannot be stored in netCDF (contains '/'); rename it")


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
    metadata: Mapping[str, str | float] | None = None,
) -> Protocol:
    """Build and check a protocol from Python values (the CSV loader goes through here too).

    ``where`` says where the values come from (``"file.csv, line 5"``); it prefixes error
    messages and is kept as :attr:`Protocol.origin`. ``metadata`` maps extra column names to
    text or numbers (kept as text).
    """
    origin = where
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
    extra = _metadata(metadata, where)
    return Protocol(str(name), pre, post, hz, repeats, dw_percent, sem_percent, mod, extra, origin)


def _describe(protocol: Protocol) -> str:
    return f"{protocol.origin} (protocol {protocol.name!r})" if protocol.origin else f"protocol {protocol.name!r}"


def check_sem(protocols: Iterable[Protocol]) -> bool:
    """Whether E is SEM-weighted: True if every protocol with a ``dw_percent`` has an SEM, False if none has.

    A mix raises :class:`MissingSEMError` naming the rows (file and line where known) without
    an SEM: falling back to the unweighted error for the whole table would silently change
    E's definition (and its units) because of one missing cell.
    """
    measured = [p for p in protocols if p.dw_percent is not None]
    lacking = [p for p in measured if p.sem_percent is None]
    if not lacking:
        return bool(measured)
    if len(lacking) == len(measured):
        return False
    shown = ", ".join(_describe(p) for p in lacking[:10])
    more = f" and {len(lacking) - 10} more" if len(lacking) > 10 else ""
    raise MissingSEMError(
        f"sem_percent is missing in {len(lacking)} of {len(measured)} protocols with a dw_percent: {shown}{more}; "
        "E divides each residual by its SEM, so give these rows an SEM, or leave sem_percent empty in every row "
        "(E is then the plain mean squared error)"
    )


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


def _normalised(name: str) -> str:
    return name.strip().lower().replace(" ", "_").replace("-", "_")


def _close(column: str, known: str) -> bool:
    """Whether ``column`` looks like a misspelling of ``known`` (the rule in the module docstring)."""
    a, b = _normalised(column), known
    if a == b:
        return True
    shorter, longer = sorted((a, b), key=len)
    if len(shorter) >= 2 and longer.startswith(shorter):
        return True
    word_a, word_b = a.split("_", 1)[0], b.split("_", 1)[0]
    if len(word_a) >= 2 and word_a == word_b:
        return True
    return difflib.SequenceMatcher(None, a, b).ratio() >= 0.8


def _suggestion(column: str, absent: Sequence[str]) -> str | None:
    """The known column that ``column`` most likely stands for, among those the header lacks."""
    candidates = [k for k in absent if _close(column, k)]
    if not candidates:
        return None
    return max(candidates, key=lambda k: difflib.SequenceMatcher(None, _normalised(column), k).ratio())


@dataclass(frozen=True)
class ProtocolTable(Sequence[Protocol]):
    """The protocols of one table with where they came from; a sequence of its protocols.

    ``name`` is the bundled dataset's name or the CSV path as given, ``citation`` the comment
    lines above the header (``""`` if none), ``extra_columns`` the columns kept as metadata.
    :func:`neurofwp.plasticity.predict` and :func:`neurofwp.fit.fit` record ``name`` and
    ``citation`` in their results when given a table.
    """

    name: str
    citation: str
    protocols: tuple[Protocol, ...]
    extra_columns: tuple[str, ...] = ()
    source: str = ""  # the file (or "<stream>") it was read from, for messages

    @overload
    def __getitem__(self, index: int) -> Protocol: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[Protocol]: ...
    def __getitem__(self, index):
        return self.protocols[index]

    def __len__(self) -> int:
        return len(self.protocols)

    def __iter__(self) -> Iterator[Protocol]:
        return iter(self.protocols)


def read_csv(source: str | os.PathLike | io.IOBase) -> list[Protocol]:
    """Read a protocol table (see the module docstring for the schema); errors name the row and column.

    ``source`` is a path, or an open text or binary file (binary content is decoded as UTF-8).
    Every problem raises :class:`ProtocolError` (a :class:`~neurofwp.errors.NeurofwpError`).
    Extra columns become :attr:`Protocol.metadata` and are named in an :class:`ExtraColumnsWarning`.
    """
    table = _load(source, None)
    _warn_extra(table)
    return list(table.protocols)


def read_table(source: str | os.PathLike | io.IOBase, name: str | None = None) -> ProtocolTable:
    """:func:`read_csv` with the table's citation (comment lines above the header) and extra columns.

    ``name`` names the table in results (default: the path as given, or ``<stream>``).
    """
    table = _load(source, name)
    _warn_extra(table)
    return table


def _warn_extra(table: ProtocolTable) -> None:
    if table.extra_columns:  # attributed to the caller of read_csv / read_table
        warnings.warn(
            f"{table.source}: extra columns kept as protocol metadata: {', '.join(table.extra_columns)}",
            ExtraColumnsWarning,
            stacklevel=3,
        )


def _load(source: str | os.PathLike | io.IOBase, name: str | None) -> ProtocolTable:
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
    citation = "\n".join(
        line.strip().lstrip("#").strip()
        for line in text.splitlines()[: header_line - 1]
        if line.lstrip().startswith("#")
    )
    header = [h.strip() for h in _cells(lines[0][1], f"{label}, line {header_line}")]
    repeated = sorted({c for c in header if c and header.count(c) > 1})
    if repeated:
        raise ProtocolError(f"{label}, line {header_line}: column(s) {', '.join(map(repr, repeated))} appear twice")
    trains = "amplitude" in header  # a table of train responses (short-term plasticity)
    known, required = (TRAIN_KNOWN, TRAIN_REQUIRED) if trains else (KNOWN, REQUIRED)
    # before the check for missing columns, so that a misspelt required column is named as such
    absent = [c for c in known if c not in header]
    unknown = [c for c in header if c and c not in known]
    close = [(c, s) for c in unknown if (s := _suggestion(c, absent)) is not None]
    if close:
        raise ProtocolError(
            f"{label}, line {header_line}: " + " ".join(f"unknown column {c!r}; did you mean {s!r}?" for c, s in close)
        )
    missing = [c for c in required if c not in header]
    if missing:
        raise ProtocolError(f"{label}, line {header_line}: missing column(s) {', '.join(missing)}; header is {header}")
    for column in unknown:
        _check_metadata_name(column, f"{label}, line {header_line}", known)
    unnamed = [i for i, c in enumerate(header) if not c]
    if len(lines) == 1:
        raise ProtocolError(f"{label}: has a header but no protocol rows")
    protocols: list[Protocol] = []
    names: set[str] = set()
    for number, line in lines[1:]:
        where = f"{label}, line {number}"
        cells = _cells(line, where)
        if len(cells) != len(header):
            raise ProtocolError(f"{where}: {len(cells)} fields, the header has {len(header)}")
        for i in unnamed:  # a trailing comma is harmless; a value without a column name would be lost
            if cells[i].strip():
                raise ProtocolError(f"{where}: field {i + 1} holds {cells[i].strip()!r} but its column has no name")
        row = dict(zip(header, cells, strict=True))
        name_ = row["protocol"].strip()
        if not name_:
            raise ProtocolError(f"{where}, column protocol: empty name")
        if name_ in names:
            raise ProtocolError(f"{where}, column protocol: duplicate name {name_!r}")
        names.add(name_)
        if trains:
            metadata = {c: row[c].strip() for c in unknown}
            protocols.append(make_train(name_, row["pre_times_ms"], row["amplitude"], row.get("sem"), where, metadata))
            continue
        dw = _number(row.get("dw_percent", ""), f"{where}, column dw_percent", optional=True)
        sem = _number(row.get("sem_percent", ""), f"{where}, column sem_percent", optional=True)
        protocols.append(
            make_protocol(
                name_,
                row["pre_times_ms"],
                row["post_times_ms"],
                row["repeat_hz"],
                row["n_repeats"],
                dw,
                sem,
                where=where,
                mod_times_ms=row.get("mod_times_ms", ""),
                metadata={c: row[c].strip() for c in unknown},
            )
        )
    return ProtocolTable(label if name is None else name, citation, tuple(protocols), tuple(unknown), label)
