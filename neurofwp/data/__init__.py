"""Bundled, cited plasticity datasets in the protocol schema of :mod:`neurofwp.protocols`.

``list()`` names them; ``load(name)`` returns an ``xarray.Dataset`` (dim ``protocol``, the
measured ``dw_percent`` and ``sem_percent`` where given, protocol columns, the citation in
attrs); ``protocols(name)`` returns the :class:`~neurofwp.protocols.Protocol` list.
"""

from __future__ import annotations

import builtins
from importlib import resources

import numpy as np
import xarray as xr

from neurofwp.errors import UnknownNameError
from neurofwp.protocols import Protocol, read_csv

_FILES = {"bipoo1998": "bipoo1998.csv", "sjostrom2001": "sjostrom2001.csv"}
_DESCRIPTIONS = {
    "bipoo1998": "STDP window: weight change vs spike timing, 60 pairings at 1 Hz (Bi & Poo 1998)",
    "sjostrom2001": "frequency dependence of pairing at ±10 ms, 60 pairs at 0.1–50 Hz (Sjöström et al. 2001)",
}


def list() -> builtins.list[str]:  # noqa: A001 - the documented name
    """Names of the bundled datasets."""
    return sorted(_FILES)


def _path(name: str):
    if not isinstance(name, str) or name not in _FILES:
        raise UnknownNameError("dataset", name, sorted(_FILES))
    return resources.files(__name__).joinpath(_FILES[name])


def citation(name: str) -> str:
    """The comment header of the dataset file (source and protocol description)."""
    text = _path(name).read_text(encoding="utf-8")
    return "\n".join(line.lstrip("# ").rstrip() for line in text.splitlines() if line.startswith("#"))


def protocols(name: str) -> builtins.list[Protocol]:
    with resources.as_file(_path(name)) as path:
        return read_csv(path)


def to_dataset(items: builtins.list[Protocol], **attrs) -> xr.Dataset:
    """Protocols as an xarray Dataset with dim ``protocol`` (units in attrs)."""
    names = [p.name for p in items]
    data = {
        "repeat_hz": ("protocol", [p.repeat_hz for p in items], {"units": "Hz"}),
        "n_repeats": ("protocol", [p.n_repeats for p in items], {"units": "1"}),
        "pre_times_ms": (
            "protocol",
            [";".join(f"{t:g}" for t in p.pre_times_ms) for p in items],
            {"units": "ms", "description": "spike times within one repetition"},
        ),
        "post_times_ms": (
            "protocol",
            [";".join(f"{t:g}" for t in p.post_times_ms) for p in items],
            {"units": "ms", "description": "spike times within one repetition"},
        ),
    }
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
    return xr.Dataset(data, coords={"protocol": names}, attrs=attrs)


def load(name: str) -> xr.Dataset:
    """The dataset ``name`` as an xarray Dataset with its citation in ``attrs``."""
    return to_dataset(protocols(name), dataset=name, description=_DESCRIPTIONS[name], citation=citation(name))
