"""Saving results: netCDF written atomically, attributes made netCDF-safe."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
from collections.abc import Iterator, Mapping
from pathlib import Path

import numpy as np
import xarray as xr

from neurofwp.errors import NeurofwpError


class OutputPathError(NeurofwpError, ValueError):
    """An output path cannot be written (missing folder, no permission, a folder in the way)."""


def check_writable(path: str | os.PathLike) -> Path:
    """Return ``path`` as a Path after checking that its folder exists and is writable."""
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        raise OutputPathError(f"output path {path} is a folder; give a file name such as {path / 'result.nc'}")
    if not folder.is_dir():
        raise OutputPathError(f"output folder {folder} does not exist")
    if not os.access(folder, os.W_OK):
        raise OutputPathError(f"output folder {folder} is not writable")
    return path


def _flat_attr(value: object) -> object:
    """netCDF stores numbers, strings and 1-d arrays only: map bools, None and containers onto those."""
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, (int, float, str, np.integer, np.floating)):
        return value
    if isinstance(value, (list, tuple)) and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
        return np.asarray(value)
    if isinstance(value, np.ndarray) and value.ndim == 1 and value.dtype.kind in "iuf":
        return value
    return str(value)


def save_netcdf(data: xr.Dataset | xr.DataArray, path: str | os.PathLike) -> Path:
    """Write ``data`` to ``path`` (netCDF4 via h5netcdf) through a temporary file and a rename.

    A run killed part-way leaves either the previous file or none, never a truncated one.
    """
    path = check_writable(path)
    dataset = data.to_dataset(name=data.name or "value") if isinstance(data, xr.DataArray) else data
    dataset = dataset.copy()
    dataset.attrs = {k: _flat_attr(v) for k, v in dataset.attrs.items()}
    for name in dataset.variables:
        dataset[name].attrs = {k: _flat_attr(v) for k, v in dataset[name].attrs.items()}
    with atomic_path(path) as temporary:
        dataset.to_netcdf(temporary, engine="h5netcdf")
    return path


# Temporary files of atomic_path are named ".{target name}.{random}.tmp" (the random part is hex: no dots).
_TEMPORARY_SUFFIX = ".tmp"


def _create_temporary(path: Path) -> str:
    """Create an empty ``.{name}.{random}.tmp`` beside ``path`` with the mode of an ordinary new file.

    Opened with mode 0666, so the kernel applies the caller's umask (``mkstemp`` would
    make it 0600, and the rename would carry that private mode onto the result).
    """
    for _ in range(100):
        temporary = path.parent / f".{path.name}.{secrets.token_hex(6)}{_TEMPORARY_SUFFIX}"
        try:
            os.close(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        except FileExistsError:
            continue
        return str(temporary)
    raise OutputPathError(f"cannot create a temporary file beside {path}")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[str]:
    """Yield a temporary file name beside ``path``; on success rename it onto ``path``.

    The rename is atomic within one folder, so readers (and a rerun after a kill) see the
    old file or the complete new one, never a partial write. On failure the temporary
    file is removed and the error propagates.
    """
    path = Path(path)
    temporary = _create_temporary(path)
    try:
        yield temporary
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise


def leftover_temporaries(folder: str | os.PathLike) -> dict[str, list[Path]]:
    """Temporary files that :func:`atomic_path` left in ``folder`` (its process was killed mid-write),
    by the name of the file each was meant to become."""
    found: dict[str, list[Path]] = {}
    for entry in Path(folder).iterdir():
        name = entry.name
        if name.startswith(".") and name.endswith(_TEMPORARY_SUFFIX) and name.count(".") >= 3:
            target = name[1 : -len(_TEMPORARY_SUFFIX)].rsplit(".", 1)[0]
            found.setdefault(target, []).append(entry)
    return found


def save_json(data: object, path: str | os.PathLike) -> Path:
    """Write ``data`` as JSON to ``path`` atomically (see :func:`atomic_path`)."""
    path = check_writable(path)
    with atomic_path(path) as temporary:
        with open(temporary, "w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=1, sort_keys=True)
            handle.flush()
            os.fsync(handle.fileno())
    return path


def differing_keys(old: Mapping[str, object], new: Mapping[str, object]) -> list[str]:
    """The keys whose values differ between two settings mappings (a key missing on one side differs), sorted."""
    return sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))


#: Attribute of a saved result that records the settings of the run that made it (JSON).
RUN_ATTR = "run_settings"


def refuse_other_run(path: str | os.PathLike, settings: dict[str, object]) -> str:
    """Check that ``path`` is absent or holds a result of the same ``settings``; return them as JSON.

    Rerunning a command replaces its own result; a run with other settings (another
    seed, bin width, duration) must not silently replace it. Store the returned text
    in the new result's ``attrs[RUN_ATTR]``.
    """
    path = Path(path)
    text = json.dumps(settings, sort_keys=True, default=str)
    if not path.exists():
        return text
    try:
        with xr.open_dataset(path, engine="h5netcdf") as stored:
            old = json.loads(stored.attrs.get(RUN_ATTR, "{}"))
    except (OSError, ValueError):
        raise OutputPathError(f"{path} exists and is not a neurofwp result; use another --out or remove it") from None
    new = json.loads(text)
    changed = differing_keys(old, new)
    if changed:
        differences = ", ".join(f"{k} {old.get(k)!r} → {new.get(k)!r}" for k in changed)
        raise OutputPathError(
            f"{path} holds the result of another run ({differences}); use another --out or remove the file"
        )
    return text
