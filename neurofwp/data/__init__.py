"""Plasticity datasets: a protocol CSV plus its metadata, bundled or brought by the user.

A dataset is a protocol table in the schema of :mod:`neurofwp.protocols` (``name.csv``) and
a sidecar ``name.toml`` beside it holding its citation, the preparation, what
``dw_percent`` measures and how the numbers were obtained (keys in :data:`KEYS`; the
format is described in ``docs/data.md``). The bundled datasets are the CSV files in this
package folder that have a sidecar: adding one means adding the two files, no code.
Other CSV files here (e.g. retrieval logs) are not datasets.

Every function taking a dataset takes a bundled name or a CSV path; a user CSV is read with
its sidecar when one exists (same name, ``.toml``), else with the comment lines above its
header as the citation. ``list()`` names the bundled datasets; ``summary()`` gives one row
per bundled dataset (name, citation, protocol count, preparation, description);
``resolve(source)`` returns a :class:`~neurofwp.protocols.ProtocolTable`; ``info(source)``
the :class:`DatasetInfo` metadata; ``load(source)`` an ``xarray.Dataset`` (dim
``protocol``, the measured ``dw_percent`` and ``sem_percent`` where given, protocol
columns, the metadata in attrs); ``protocols(source)`` the
:class:`~neurofwp.protocols.Protocol` list.
"""

from __future__ import annotations

import builtins
import difflib
import os
import tomllib
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import NamedTuple

import numpy as np
import xarray as xr

from neurofwp.errors import DTypeError, NeurofwpError, UnknownNameError
from neurofwp.protocols import ExtraColumnsWarning, Protocol, ProtocolTable, TrainProtocol, _load

SIDECAR_SUFFIX = ".toml"
# Sidecar keys. Every sidecar needs a citation; a bundled dataset needs all of BUNDLED_REQUIRED so
# that listings, provenance and cross-dataset grouping (by ``preparation``) never lack them.
TEXT_KEYS = ("citation", "description", "preparation", "measure", "source", "method", "agreement", "doi", "notes")
KEYS = (*TEXT_KEYS, "independent_sources", "columns", "computed")
BUNDLED_REQUIRED = ("citation", "description", "preparation", "measure", "source", "method", "independent_sources")


class UnknownDatasetError(UnknownNameError):
    """A data source is neither a bundled dataset nor an existing file, and does not look like a path."""

    def __init__(self, name: object, known: Sequence[str]):
        super().__init__("dataset", name, builtins.list(known))
        self.args = (f"unknown dataset {name!r}; bundled: {', '.join(self.known)}; or give a CSV path",)


class DataSourceTypeError(UnknownDatasetError, DTypeError):
    """A data source that is neither text nor a path (a list, a number): no dataset can have that name."""

    def __init__(self, name: object, known: Sequence[str]):
        super().__init__(name, known)
        self.args = (
            f"unknown dataset {name!r}: a data source is a bundled dataset name or a CSV path, "
            f"not {type(name).__name__}; bundled: {', '.join(self.known)}",
        )


class MetadataError(NeurofwpError, ValueError):
    """A dataset's sidecar is unreadable, misses a required key, has an unknown key or a bad value.

    The message names the sidecar file and the key.
    """


@dataclass(frozen=True)
class DatasetInfo:
    """What a dataset is and where its numbers come from (the sidecar's keys; ``""`` where absent).

    ``preparation`` is compared as text to tell which datasets share a preparation, so
    datasets of the same preparation spell it identically. ``independent_sources`` counts
    the independent digitisations or sources compared (1: only one); ``agreement`` says how
    far they differ. ``columns`` describes the CSV's extra (metadata) columns. ``sidecar``
    is the sidecar's path, ``None`` for a CSV without one (its citation is then the CSV's
    comment header).
    """

    name: str
    citation: str
    description: str = ""
    preparation: str = ""
    measure: str = ""
    source: str = ""
    method: str = ""
    independent_sources: int | None = None
    agreement: str = ""
    doi: str = ""
    notes: str = ""
    columns: Mapping[str, str] = field(default_factory=dict)
    # The numbers are computed from a model with published parameters (an example), not measured
    computed: bool = False
    sidecar: str | None = None

    def attrs(self) -> dict[str, str | int]:
        """The filled-in keys as netCDF-storable attrs (the column descriptions go on their variables)."""
        skip = {"name", "columns", "sidecar", "computed"}
        values = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in skip}
        kept = {key: value for key, value in values.items() if value not in ("", None)}
        return kept | ({"computed": 1} if self.computed else {})


class DatasetSummary(NamedTuple):
    """One row of a dataset listing (``neurofwp data``)."""

    name: str
    citation: str
    protocols: int
    preparation: str
    description: str


def _folder() -> Traversable:
    """The folder the bundled datasets are discovered in (tests substitute another)."""
    return resources.files(__name__)


def _bundled_files() -> dict[str, tuple[Traversable, Traversable]]:
    """Bundled name -> (CSV, sidecar): every sidecar in the folder with the CSV of the same name."""
    found = {}
    for entry in _folder().iterdir():
        if not entry.is_file() or not entry.name.endswith(SIDECAR_SUFFIX):
            continue
        name = entry.name.removesuffix(SIDECAR_SUFFIX)
        csv = _folder().joinpath(f"{name}.csv")
        if not csv.is_file():
            raise MetadataError(f"{entry}: a dataset sidecar without its CSV ({name}.csv is not in the same folder)")
        found[name] = (csv, entry)
    return dict(sorted(found.items()))


def list() -> builtins.list[str]:  # noqa: A001 - the documented name
    """Names of the bundled datasets, sorted."""
    return builtins.list(_bundled_files())


def measured(trains: bool | None = None) -> builtins.list[str]:
    """Names of the bundled datasets of measured numbers (not ``computed`` examples), sorted; with
    ``trains`` True or False only train-response or only weight-change tables."""
    from neurofwp.protocols import is_train_table

    names = [name for name in list() if not info(name).computed]
    if trains is None:
        return names
    return [name for name in names if is_train_table(resolve(name)) == trains]


def _suggest(key: str, known: Sequence[str]) -> str:
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else f"; known keys: {', '.join(known)}"


def _parse_sidecar(label: str, text: str, name: str, bundled: bool) -> DatasetInfo:
    """The sidecar's keys checked: one :class:`MetadataError` naming ``label`` and the key."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise MetadataError(f"{label}: not valid TOML ({error})") from None
    for key in raw:
        if key not in KEYS:
            raise MetadataError(f"{label}: unknown key {key!r}{_suggest(key, KEYS)}")
    required = BUNDLED_REQUIRED if bundled else ("citation",)
    missing = [key for key in required if key not in raw]
    if missing:
        what = "a bundled dataset's sidecar" if bundled else "a sidecar"
        keys = ", ".join(map(repr, missing))
        raise MetadataError(f"{label}: missing key(s) {keys} ({what} needs {', '.join(required)})")
    values: dict = {}
    for key, value in raw.items():
        where = f"{label}, key {key!r}"
        if key in TEXT_KEYS:
            if not isinstance(value, str) or not value.strip():
                raise MetadataError(f"{where}: must be non-empty text, got {value!r}")
            values[key] = value.strip()
        elif key == "computed":
            if not isinstance(value, bool):
                raise MetadataError(f"{where}: must be true or false, got {value!r}")
            values[key] = value
        elif key == "independent_sources":
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise MetadataError(f"{where}: must be a whole number >= 1 (1 = a single source), got {value!r}")
            values[key] = value
        else:  # columns
            if not isinstance(value, dict):
                raise MetadataError(f"{where}: must be a table of column name = description, got {value!r}")
            for column, description in value.items():
                if not isinstance(description, str) or not description.strip():
                    raise MetadataError(f"{label}, key 'columns.{column}': must be non-empty text, got {description!r}")
            values[key] = {column: description.strip() for column, description in value.items()}
    if values.get("independent_sources", 1) >= 2 and "agreement" not in values:
        raise MetadataError(
            f"{label}: missing key 'agreement' (independent_sources = {values['independent_sources']}: "
            "say how far the sources differ)"
        )
    return DatasetInfo(name=name, sidecar=label, **values)


def _read_text(item: Traversable | Path, label: str) -> str:
    try:
        return item.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        raise MetadataError(f"{label}: not a text (UTF-8) file") from None
    except OSError as error:
        raise MetadataError(f"{label}: cannot be read ({error.strerror or error})") from None


def _read(csv_path: str | os.PathLike, name: str, sidecar: Traversable | Path | None, bundled: bool):
    """The table and its metadata; the citation is the sidecar's where there is one."""
    table = _load(csv_path, name)
    if sidecar is None:
        info = DatasetInfo(name=table.name, citation=table.citation)
    else:
        label = str(sidecar)
        info = _parse_sidecar(label, _read_text(sidecar, label), table.name, bundled)
        for column in info.columns:
            if column not in table.extra_columns:
                extra = ", ".join(table.extra_columns) or "none"
                raise MetadataError(
                    f"{label}, key 'columns.{column}': {table.source} has no such extra column "
                    f"(its extra columns: {extra})"
                )
        table = replace(table, citation=info.citation)
    undescribed = [c for c in table.extra_columns if c not in info.columns]
    if undescribed:  # described columns are part of the dataset's design, the rest may be a mistake
        warnings.warn(
            f"{table.source}: extra columns kept as protocol metadata: {', '.join(undescribed)}",
            ExtraColumnsWarning,
            stacklevel=4,
        )
    return table, info


def _looks_like_path(source: str) -> bool:
    separators = {os.sep, "/"} | ({os.altsep} if os.altsep else set())
    return bool(Path(source).suffix) or any(s in source for s in separators)


def _sidecar_of(path: Path) -> Path | None:
    """``mine.toml`` beside ``mine.csv`` (``plain.toml`` beside ``plain``), if it exists."""
    candidate = path.with_suffix(SIDECAR_SUFFIX)
    return candidate if candidate != path and candidate.is_file() else None


def _open(source: str | os.PathLike) -> tuple[ProtocolTable, DatasetInfo]:
    if isinstance(source, str):
        bundled = _bundled_files()
        if source in bundled:
            csv, sidecar = bundled[source]
            with resources.as_file(csv) as path:
                return _read(path, source, sidecar, bundled=True)
        if not (Path(source).exists() or _looks_like_path(source)):
            raise UnknownDatasetError(source, builtins.list(bundled))
    elif not isinstance(source, os.PathLike):
        raise DataSourceTypeError(source, list())
    path = Path(source)
    return _read(source, str(source), _sidecar_of(path) if path.is_file() else None, bundled=False)


def resolve(source: str | os.PathLike) -> ProtocolTable:
    """A bundled dataset name or a CSV path as a :class:`~neurofwp.protocols.ProtocolTable`.

    The table's ``name`` is the bundled name or the path as given, its ``citation`` the
    sidecar's ``citation`` (a CSV without a sidecar: its comment header, ``""`` if none). A
    bundled name wins over a file of the same name. Text that is neither, and does not look
    like a path (no suffix such as ``.csv``, no separator), raises
    :class:`UnknownDatasetError` listing the bundled names; a missing path raises
    :class:`~neurofwp.protocols.ProtocolError` (``no such file``); a bad sidecar raises
    :class:`MetadataError`.
    """
    return _open(source)[0]


def info(source: str | os.PathLike) -> DatasetInfo:
    """The metadata of a bundled dataset or of a CSV path (read from its sidecar, if any)."""
    return _open(source)[1]


def description(source: str | os.PathLike) -> str:
    """One line on what the dataset measures (the sidecar's ``description``; ``""`` without one)."""
    return info(source).description


def citation(source: str | os.PathLike) -> str:
    """The dataset's citation: the sidecar's ``citation``, or the CSV's comment header without a sidecar."""
    return info(source).citation


def protocols(source: str | os.PathLike) -> builtins.list[Protocol]:
    """The protocols of a bundled dataset or a CSV path."""
    return builtins.list(resolve(source).protocols)


def summary() -> builtins.list[DatasetSummary]:
    """One row per bundled dataset: name, citation, protocol count, preparation, description."""
    rows = []
    for name in list():
        table, meta = _open(name)
        rows.append(DatasetSummary(name, meta.citation, len(table), meta.preparation, meta.description))
    return rows


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
    trains = [p for p in items if isinstance(p, TrainProtocol)]
    if trains and len(trains) == len(items):  # train responses: one amplitude (and SEM) per presynaptic spike
        for key, long_name in (("amplitude", "measured response to the spike"), ("sem", "standard error of the mean")):
            if any(getattr(p, key) is not None for p in trains):
                values = [getattr(p, key) or (np.nan,) * len(p.pre_times_ms) for p in trains]
                data[key] = (("protocol", "pre_spike"), _padded(values), {"long_name": long_name})
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


def load(source: str | os.PathLike) -> xr.Dataset:
    """A bundled dataset or a CSV path as an xarray Dataset, its metadata in ``attrs``.

    ``attrs`` holds ``dataset`` (the name or path) and every filled-in sidecar key
    (``citation``, ``preparation``, ``measure``, ``source``, ...); the sidecar's
    ``columns`` descriptions become the ``description`` of those variables.
    """
    table, meta = _open(source)
    dataset = to_dataset(table, dataset=table.name, **meta.attrs())
    for column, text in meta.columns.items():
        dataset[column].attrs["description"] = text
    return dataset
