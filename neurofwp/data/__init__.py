"""Bundled, cited plasticity datasets in the protocol schema of :mod:`neurofwp.protocols`.

``list()`` names them; ``resolve(source)`` takes a bundled name or a CSV path and returns a
:class:`~neurofwp.protocols.ProtocolTable` (its protocols with ``name`` and ``citation``);
``load(name)`` returns an ``xarray.Dataset`` (dim ``protocol``, the measured ``dw_percent``
and ``sem_percent`` where given, protocol columns, the citation in attrs);
``protocols(name)`` returns the :class:`~neurofwp.protocols.Protocol` list.
"""

from __future__ import annotations

import builtins
import os
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

import numpy as np
import xarray as xr

from neurofwp.errors import DTypeError, UnknownNameError
from neurofwp.protocols import Protocol, ProtocolTable, read_table

_FILES = {"bipoo1998": "bipoo1998.csv", "sjostrom2001": "sjostrom2001.csv"}
_DESCRIPTIONS = {
    "bipoo1998": "STDP window: weight change vs spike timing, 60 pairings at 1 Hz (Bi & Poo 1998)",
    "sjostrom2001": "frequency dependence of pairing at ±10 ms, 60 pairs at 0.1–50 Hz (Sjöström et al. 2001)",
}


class UnknownDatasetError(UnknownNameError):
    """A data source is neither a bundled dataset nor an existing file, and does not look like a path."""

    def __init__(self, name: object, known: Sequence[str]):
        super().__init__("dataset", name, builtins.list(known))
        self.args = (f"unknown dataset {name!r}; bundled: {', '.join(self.known)}; or give a CSV path",)


def list() -> builtins.list[str]:  # noqa: A001 - the documented name
    """Names of the bundled datasets."""
    return sorted(_FILES)


def _path(name: str):
    if not isinstance(name, str) or name not in _FILES:
        raise UnknownNameError("dataset", name, sorted(_FILES))
    return resources.files(__name__).joinpath(_FILES[name])


def _bundled(name: str) -> ProtocolTable:
    with resources.as_file(_path(name)) as path:
        return read_table(path, name=name)


def description(name: str) -> str:
    """One line on what the bundled dataset ``name`` measures (for listings such as ``--help``)."""
    _path(name)  # an unknown name raises UnknownNameError
    return _DESCRIPTIONS[name]


def citation(name: str) -> str:
    """The comment header of the dataset file (source and protocol description)."""
    return _bundled(name).citation


def protocols(name: str) -> builtins.list[Protocol]:
    return builtins.list(_bundled(name).protocols)


def _looks_like_path(source: str) -> bool:
    separators = {os.sep, "/"} | ({os.altsep} if os.altsep else set())
    return bool(Path(source).suffix) or any(s in source for s in separators)


def resolve(source: str | os.PathLike) -> ProtocolTable:
    """A bundled dataset name or a CSV path as a :class:`~neurofwp.protocols.ProtocolTable`.

    The table's ``name`` is the bundled name or the path as given, its ``citation`` the file's
    comment header. A bundled name wins over a file of the same name. Text that is neither,
    and does not look like a path (no suffix such as ``.csv``, no separator), raises
    :class:`UnknownDatasetError` listing the bundled names; a missing path raises
    :class:`~neurofwp.protocols.ProtocolError` (``no such file``).
    """
    if isinstance(source, os.PathLike):
        return read_table(source)
    if not isinstance(source, str):
        raise DTypeError(f"a data source is a bundled dataset name or a CSV path, got {type(source).__name__}")
    if source in _FILES:
        return _bundled(source)
    if Path(source).exists() or _looks_like_path(source):
        return read_table(source)
    raise UnknownDatasetError(source, list())


def _padded(rows: Sequence[Sequence[float]]) -> np.ndarray:
    """Rows of unequal length as one float array, NaN after each row's last value."""
    out = np.full((len(rows), max((len(r) for r in rows), default=0)), np.nan)
    for i, row in enumerate(rows):
        out[i, : len(row)] = row
    return out


def _metadata_column(values: builtins.list[str | None]) -> np.ndarray:
    """One metadata column: numbers where every given cell is one (NaN where empty), else text."""
    try:
        return np.array([np.nan if v is None or not v.strip() else float(v) for v in values])
    except ValueError:
        return np.array(["" if v is None else v for v in values], dtype=object)


def to_dataset(items: Sequence[Protocol], **attrs) -> xr.Dataset:
    """Protocols as an xarray Dataset with dim ``protocol`` (units in attrs).

    Spike times are numbers: ``pre_times_ms`` on (``protocol``, ``pre_spike``) and
    ``post_times_ms`` on (``protocol``, ``post_spike``), in the protocol's order and padded
    with NaN to the longest row; ``mod_times_ms`` on (``protocol``, ``mod_pulse``) where any
    protocol has modulator pulses. Metadata columns become variables along ``protocol``.
    Given a :class:`~neurofwp.protocols.ProtocolTable`, its ``name`` and ``citation`` go into
    attrs as ``dataset`` and ``citation`` unless ``attrs`` sets them.
    """
    if isinstance(items, ProtocolTable):
        attrs.setdefault("dataset", items.name)
        if items.citation:
            attrs.setdefault("citation", items.citation)
    items = builtins.list(items)
    names = [p.name for p in items]
    padding = "within one repetition, in the protocol's order; NaN pads protocols with fewer"
    data = {
        "repeat_hz": ("protocol", [p.repeat_hz for p in items], {"units": "Hz"}),
        "n_repeats": ("protocol", [p.n_repeats for p in items], {"units": "1"}),
        "pre_times_ms": (
            ("protocol", "pre_spike"),
            _padded([p.pre_times_ms for p in items]),
            {"units": "ms", "description": f"presynaptic spike times {padding}"},
        ),
        "post_times_ms": (
            ("protocol", "post_spike"),
            _padded([p.post_times_ms for p in items]),
            {"units": "ms", "description": f"postsynaptic spike times {padding}"},
        ),
    }
    if any(p.mod_times_ms for p in items):
        data["mod_times_ms"] = (
            ("protocol", "mod_pulse"),
            _padded([p.mod_times_ms for p in items]),
            {"units": "ms", "description": f"neuromodulator pulse times {padding}"},
        )
    single = [len(p.pre_times_ms) == 1 and len(p.post_times_ms) == 1 for p in items]
    if all(single):
        data["dt_ms"] = (
            "protocol",
            [p.post_times_ms[0] - p.pre_times_ms[0] for p in items],
            {"units": "ms", "long_name": "t_post - t_pre"},
        )
    if any(p.dw_percent is not None for p in items):
        data["dw_percent"] = (
            "protocol",
            [np.nan if p.dw_percent is None else p.dw_percent for p in items],
            {"units": "percent", "long_name": "measured weight change"},
        )
    if any(p.sem_percent is not None for p in items):
        data["sem_percent"] = (
            "protocol",
            [np.nan if p.sem_percent is None else p.sem_percent for p in items],
            {"units": "percent", "long_name": "standard error of the mean"},
        )
    columns = builtins.list(dict.fromkeys(key for p in items for key in p.metadata))  # first-seen order
    for column in columns:
        data[column] = (
            "protocol",
            _metadata_column([p.metadata.get(column) for p in items]),
            {"description": "extra column of the protocol table, kept as metadata"},
        )
    return xr.Dataset(data, coords={"protocol": names}, attrs=attrs)


def load(name: str) -> xr.Dataset:
    """The dataset ``name`` as an xarray Dataset with its citation in ``attrs``."""
    return to_dataset(_bundled(name), dataset=name, description=description(name))
