"""Recordings: spike times of a postsynaptic neuron and its inputs (a sampled stimulus, presynaptic trains).

Loaders for NWB files (a ``Units`` table, the postsynaptic unit and the presynaptic units
chosen by id, and optionally a ``TimeSeries`` stimulus), NPZ files and arrays; the locust
auditory receptor recordings of Rokem et al. (2006) shipped with nitime serve as the real
example (``grasshopper1``, ``grasshopper2``).
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from neurofwp.errors import NeurofwpError


class RecordingError(NeurofwpError, ValueError):
    """A recording file is missing, malformed or lacks what the fit needs."""


@dataclass
class Recording:
    """Spike times of the neuron to predict, and its inputs (a sampled stimulus, other neurons' spikes)."""

    spike_times_s: np.ndarray
    duration_s: float
    stimulus: np.ndarray | None = None  # [samples, channels]
    stimulus_rate_hz: float | None = None
    input_spike_times_s: dict[str, np.ndarray] = field(default_factory=dict)
    source: str = ""
    #: Short, file-name-safe name of what was recorded (``grasshopper1``, ``session3_unit12``): names output files.
    name: str = "recording"

    def __post_init__(self):
        label = self.source or "recording"  # the name in messages
        self.spike_times_s = _times_array(self.spike_times_s, label, "spike times")
        self.duration_s = _real(self.duration_s, label, "duration_s")
        if self.stimulus is not None:
            self.stimulus = _numeric_array(self.stimulus, label, "the stimulus")
            if self.stimulus.ndim == 1:
                self.stimulus = self.stimulus[:, None]
            if self.stimulus.ndim != 2 or self.stimulus.shape[0] == 0 or self.stimulus.shape[1] == 0:
                raise RecordingError(
                    f"{label}: the stimulus must be [samples] or [samples, channels] with at least one sample, "
                    f"got shape {self.stimulus.shape}"
                )
            if not np.all(np.isfinite(self.stimulus)):
                raise RecordingError(f"{label}: the stimulus holds NaN or inf")
            rate = None if self.stimulus_rate_hz is None else _real(self.stimulus_rate_hz, label, "stimulus_rate_hz")
            if rate is None or not (math.isfinite(rate) and rate > 0):
                raise RecordingError(f"{label}: a stimulus needs a finite sampling rate > 0 Hz")
            self.stimulus_rate_hz = rate
        if not isinstance(self.input_spike_times_s, Mapping):
            raise RecordingError(
                f"{label}: input_spike_times_s must map input names to spike times, "
                f"got {type(self.input_spike_times_s).__name__}"
            )
        self.input_spike_times_s = {
            str(name): _times_array(times, label, f"spike times of input {name!r}")
            for name, times in self.input_spike_times_s.items()
        }
        if self.stimulus is None and not self.input_spike_times_s:
            raise RecordingError(f"{label}: no inputs (neither a stimulus nor other neurons' spikes)")
        if not (math.isfinite(self.duration_s) and self.duration_s > 0):
            raise RecordingError(f"{label}: duration must be a finite number > 0 s, got {self.duration_s}")


def _numeric_array(value: object, source: str, what: str) -> np.ndarray:
    try:
        return np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        raise RecordingError(f"{source}: {what} must be numbers, got {type(value).__name__}") from None


def _times_array(value: object, source: str, what: str) -> np.ndarray:
    """Spike times (s) as a finite 1-d float array."""
    times = _numeric_array(value, source, what)
    if times.ndim > 1:
        raise RecordingError(f"{source}: {what} must be a 1-d array, got shape {times.shape}")
    times = np.atleast_1d(times)
    if not np.all(np.isfinite(times)):
        raise RecordingError(f"{source}: {what} hold NaN or inf")
    return times


def _real(value: object, source: str, what: str) -> float:
    """One number (a Python or numpy scalar, or a one-element array)."""
    if isinstance(value, bool):
        raise RecordingError(f"{source}: {what} must be a number, got {value!r}")
    array = _numeric_array(value, source, what)
    if array.size != 1:
        raise RecordingError(f"{source}: {what} must be a single number, got an array of shape {array.shape}")
    return float(array.reshape(()))


def load(source: str | os.PathLike, unit: int | str | None = None, pre: Sequence[int | str] | None = None) -> Recording:
    """Load ``grasshopper1``/``grasshopper2`` (nitime's example data), an ``.nwb`` or an ``.npz`` file.

    ``unit``: the NWB unit id of the postsynaptic neuron (the one predicted); ``pre``: the inputs
    to keep (NWB: unit ids; NPZ: the ``<name>`` of ``input_spike_times_s__<name>``), default all.
    """
    if not isinstance(source, (str, os.PathLike)):
        raise RecordingError(f"a recording source is a path or a bundled name, got {type(source).__name__}")
    text = str(source)
    if text in ("grasshopper1", "grasshopper2"):
        if unit is not None or pre is not None:
            raise RecordingError(f"{text}: holds one neuron; a unit can be chosen in NWB files only")
        return grasshopper(int(text[-1]))
    path = Path(source)
    if path.is_dir():
        raise RecordingError(f"{path}: is a folder, not a recording file")
    if not path.is_file():
        raise RecordingError(f"{path}: no such file")
    if path.suffix == ".nwb":
        return load_nwb(path, unit, pre)
    if path.suffix == ".npz":
        if unit is not None:
            raise RecordingError(
                f"{path}: a unit can be chosen in NWB files only (in an .npz the neuron is spike_times_s)"
            )
        return load_npz(path, pre)
    raise RecordingError(f"{path}: unknown recording format {path.suffix!r}; use .nwb or .npz")


def grasshopper(number: int = 1) -> Recording:
    """Locust auditory receptor cell and its sound stimulus (Rokem et al. 2006), from the nitime package.

    Spike times and stimulus sample times are in microseconds; the stimulus is sampled at 20 kHz.
    """
    try:
        import nitime
    except ImportError:
        raise RecordingError("the grasshopper example needs the nitime package (pip install nitime)") from None
    folder = Path(nitime.__file__).parent / "data"
    spikes = np.loadtxt(folder / f"grasshopper_spike_times{number}.txt") * 1e-6
    stimulus = np.loadtxt(folder / f"grasshopper_stimulus{number}.txt")
    rate = 1e6 / float(np.median(np.diff(stimulus[:, 0])))
    duration = len(stimulus) / rate
    return Recording(
        spikes,
        duration,
        stimulus[:, 1:],
        rate,
        source=f"grasshopper{number} (Rokem et al. 2006, nitime)",
        name=f"grasshopper{number}",
    )


def load_npz(path: str | os.PathLike, pre: Sequence[int | str] | None = None) -> Recording:
    """NPZ with ``spike_times_s`` and ``duration_s``, and ``stimulus`` + ``stimulus_rate_hz`` and/or
    ``input_spike_times_s__<name>`` arrays; ``pre`` keeps only the inputs of these names."""
    try:
        archive = np.load(path, allow_pickle=False)
    except Exception as error:  # numpy raises several types for a bad file
        raise RecordingError(f"{path}: not a readable .npz file ({error})") from None
    with archive:
        for key in ("spike_times_s", "duration_s"):
            if key not in archive:
                raise RecordingError(f"{path}: missing array {key!r}; has {sorted(archive.files)}")

        def read(key: str) -> np.ndarray:
            try:
                return archive[key]
            except ValueError as error:  # object arrays need pickle, which is refused
                raise RecordingError(f"{path}: array {key!r} cannot be read ({error})") from None

        inputs = {k.split("__", 1)[1]: read(k) for k in archive.files if k.startswith("input_spike_times_s__")}
        if pre is not None:
            inputs = {name: inputs[name] for name in _chosen_inputs(pre, list(inputs), path)}
        return Recording(
            read("spike_times_s"),
            _real(read("duration_s"), str(path), "duration_s"),
            read("stimulus") if "stimulus" in archive else None,
            _real(read("stimulus_rate_hz"), str(path), "stimulus_rate_hz") if "stimulus_rate_hz" in archive else None,
            inputs,
            source=str(path),
            name=_file_safe(Path(path).stem),
        )


def load_nwb(
    path: str | os.PathLike, unit: int | str | None = None, pre: Sequence[int | str] | None = None
) -> Recording:
    """NWB file: the ``Units`` table (``unit`` = id of the neuron to predict, default the first row;
    ``pre`` = ids of the units that are its inputs, default every other unit, named ``unit<id>``) and,
    if present, the first ``TimeSeries`` under ``stimulus``."""
    from pynwb import NWBHDF5IO

    try:
        io = NWBHDF5IO(str(path), mode="r")
        nwb = io.read()
    except Exception as error:
        raise RecordingError(f"{path}: not a readable NWB file ({type(error).__name__}: {error})") from None
    try:
        if nwb.units is None or len(nwb.units) == 0:
            raise RecordingError(f"{path}: no Units table with spike times")
        ids = [int(i) for i in nwb.units.id[:]]
        wanted = None if unit is None else _unit_id(unit, path)
        if wanted is not None and wanted not in ids:
            raise RecordingError(f"{path}: no unit with id {unit}; ids are {ids}")
        row = 0 if wanted is None else ids.index(wanted)
        inputs_wanted = [i for i in range(len(ids)) if i != row]
        if pre is not None:
            if isinstance(pre, (str, int)):
                pre = [pre]
            chosen = [_unit_id(u, path) for u in pre]
            for u in chosen:
                if u not in ids:
                    raise RecordingError(f"{path}: no presynaptic unit with id {u}; ids are {ids}")
                if u == ids[row]:
                    raise RecordingError(f"{path}: unit {u} is the postsynaptic unit; it cannot be presynaptic too")
            if len(set(chosen)) != len(chosen):
                raise RecordingError(f"{path}: presynaptic units are listed twice: {chosen}")
            inputs_wanted = [ids.index(u) for u in chosen]
        try:
            trains = [_times_array(nwb.units.get_unit_spike_times(i), str(path), f"spike times of unit {ids[i]}")
                      for i in range(len(ids))]  # fmt: skip
        except (KeyError, IndexError, AttributeError) as error:
            raise RecordingError(f"{path}: the Units table has no readable spike times ({error})") from None
        stimulus, rate = None, None
        series = list(nwb.stimulus.values())
        if series:
            first = series[0]
            stimulus = _numeric_array(first.data[:], str(path), f"the stimulus {first.name!r}")
            rate = first.rate if first.rate is not None else _rate_from_timestamps(first.timestamps[:], path)
            if not (math.isfinite(rate) and rate > 0):
                raise RecordingError(f"{path}: the stimulus {first.name!r} has sampling rate {rate}; need > 0 Hz")
        ends = [t.max() for t in trains if len(t)]
        if stimulus is not None and rate is not None:  # set together, from the first stimulus series
            ends.append(len(stimulus) / rate)
        duration = float(max(ends)) if ends else 0.0
        inputs = {f"unit{ids[i]}": trains[i] for i in inputs_wanted}
        name = _file_safe(f"{Path(path).stem}_unit{ids[row]}")
        return Recording(trains[row], duration, stimulus, rate, inputs, source=f"{path} unit {ids[row]}", name=name)
    finally:
        io.close()


def _chosen_inputs(pre: Sequence[int | str], names: list[str], path) -> list[str]:
    """The input names ``pre`` asks for, each checked against the ``names`` a file holds."""
    chosen = [pre] if isinstance(pre, str) else [str(p) for p in pre]
    for name in chosen:
        if name not in names:
            raise RecordingError(f"{path}: no input spike train {name!r}; inputs are {names}")
    if len(set(chosen)) != len(chosen):
        raise RecordingError(f"{path}: inputs are listed twice: {chosen}")
    return chosen


def _file_safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.+-]", "_", text) or "recording"


def _unit_id(unit: int | str, path) -> int:
    try:
        if isinstance(unit, bool) or float(unit) != int(float(unit)):
            raise ValueError
        return int(float(unit))
    except (TypeError, ValueError, OverflowError):
        raise RecordingError(f"{path}: a unit is chosen by its integer id, got {unit!r}") from None


def _rate_from_timestamps(timestamps, path) -> float:
    steps = np.diff(np.asarray(timestamps, dtype=float))
    step = float(np.median(steps)) if len(steps) else math.nan
    if not (math.isfinite(step) and step > 0):
        raise RecordingError(f"{path}: the stimulus timestamps do not give a sampling rate (need increasing times)")
    return 1.0 / step
