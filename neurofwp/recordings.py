r"""Fit fast-weight models to recorded spike trains.

A neuron's spike counts :math:`y_t` in time bins are predicted from its input: a stimulus
and/or other recorded neurons, as the lag vector :math:`x_t` of the last ``lags`` bins
(stimulus lags start at 0, spike-train lags at 1 so that no model sees the bin it
predicts). Three models of the log rate (Poisson) or logit (Bernoulli) are compared:

* ``ln``: static linear-nonlinear model, :math:`\eta_t = b + w^\top x_t`;
* ``hebbian-fwp``: the LN model plus a fast weight layer with the Hebbian rule,
  :math:`\eta_t = b + w^\top x_t + u^\top \mathrm{FWL}(x)_t`, whose fast weights are
  written by the input sequence itself (an input-driven, adapting filter);
* ``delta-fwp``: the same with the delta rule and a learned, input-dependent
  :math:`\beta_t = \sigma(w_\beta^\top x_t)`.

All are trained by Adam on the first part of the recording and judged on the held-out
rest by the log-likelihood gain over a homogeneous rate, in bits per spike,

.. math::

    \text{bits/spike} = \frac{\mathcal{L}_\text{model} - \mathcal{L}_\text{homogeneous}}{N_\text{spikes} \ln 2}.

Inputs: NWB files (a ``Units`` table and optionally a ``TimeSeries`` stimulus), NPZ
files, or arrays; the locust auditory receptor recordings of Rokem et al. (2006) shipped
with nitime serve as the real example (``grasshopper1``, ``grasshopper2``).
"""

from __future__ import annotations

import math
import numbers
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import xarray as xr
from tqdm.auto import tqdm

import neurofwp
from neurofwp.errors import DTypeError, NeurofwpError, OutOfRangeError, UnknownNameError
from neurofwp.tensor import FastWeightLayer

MODELS = ("ln", "hebbian-fwp", "delta-fwp")
LIKELIHOODS = ("poisson", "bernoulli")
MAX_DESIGN_SIZE = 500_000_000  # bins × (lags + 1), per input channel: a bound on memory, not on a recording


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


def load(source: str | os.PathLike, unit: int | str | None = None) -> Recording:
    """Load ``grasshopper1``/``grasshopper2`` (nitime's example data), an ``.nwb`` or an ``.npz`` file."""
    if not isinstance(source, (str, os.PathLike)):
        raise RecordingError(f"a recording source is a path or a bundled name, got {type(source).__name__}")
    text = str(source)
    if text in ("grasshopper1", "grasshopper2"):
        if unit is not None:
            raise RecordingError(f"{text}: holds one neuron; a unit can be chosen in NWB files only")
        return grasshopper(int(text[-1]))
    path = Path(source)
    if path.is_dir():
        raise RecordingError(f"{path}: is a folder, not a recording file")
    if not path.is_file():
        raise RecordingError(f"{path}: no such file")
    if path.suffix == ".nwb":
        return load_nwb(path, unit)
    if path.suffix == ".npz":
        if unit is not None:
            raise RecordingError(f"{path}: a unit can be chosen in NWB files only")
        return load_npz(path)
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


def load_npz(path: str | os.PathLike) -> Recording:
    """NPZ with ``spike_times_s`` and ``duration_s``, and ``stimulus`` + ``stimulus_rate_hz`` and/or
    ``input_spike_times_s__<name>`` arrays."""
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
        return Recording(
            read("spike_times_s"),
            _real(read("duration_s"), str(path), "duration_s"),
            read("stimulus") if "stimulus" in archive else None,
            _real(read("stimulus_rate_hz"), str(path), "stimulus_rate_hz") if "stimulus_rate_hz" in archive else None,
            inputs,
            source=str(path),
            name=_file_safe(Path(path).stem),
        )


def load_nwb(path: str | os.PathLike, unit: int | str | None = None) -> Recording:
    """NWB file: the ``Units`` table (``unit`` = row index or id of the neuron to predict, default the
    first; the other units become inputs) and, if present, the first ``TimeSeries`` under ``stimulus``."""
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
        inputs = {f"unit{ids[i]}": trains[i] for i in range(len(ids)) if i != row}
        name = _file_safe(f"{Path(path).stem}_unit{ids[row]}")
        return Recording(trains[row], duration, stimulus, rate, inputs, source=f"{path} unit {ids[row]}", name=name)
    finally:
        io.close()


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


def design(recording: Recording, bin_ms: float, lags: int) -> tuple[np.ndarray, np.ndarray]:
    """Lag features ``[T, channels · lags]`` (z-scored) and spike counts ``[T]`` in bins of ``bin_ms``."""
    if isinstance(bin_ms, bool) or not isinstance(bin_ms, numbers.Real):
        raise DTypeError(f"bin_ms must be a number, got {bin_ms!r}")
    if not bin_ms > 0:
        raise OutOfRangeError(f"bin_ms must be > 0, got {bin_ms}")
    if isinstance(lags, bool) or not isinstance(lags, int) or lags < 1:
        raise OutOfRangeError(f"lags must be an int >= 1, got {lags!r}")
    width = bin_ms / 1000.0
    n_bins = int(recording.duration_s // width)
    if n_bins * (lags + 1) > MAX_DESIGN_SIZE:
        raise OutOfRangeError(
            f"{recording.source or 'recording'}: {n_bins} bins of {bin_ms:g} ms with {lags} lags "
            "make a design matrix too large; use larger bins"
        )
    if n_bins < 10 * lags:
        raise RecordingError(
            f"{recording.source or 'recording'}: {n_bins} bins of {bin_ms} ms are too few for {lags} lags"
        )
    edges = np.arange(n_bins + 1) * width
    counts = np.histogram(recording.spike_times_s, bins=edges)[0].astype(float)
    channels, first_lag = [], []
    if recording.stimulus is not None:
        per_bin = recording.stimulus_rate_hz * width
        usable = int(n_bins * per_bin) // max(int(round(per_bin)), 1) * max(int(round(per_bin)), 1)
        samples = recording.stimulus[: int(round(usable))]
        step = max(int(round(per_bin)), 1)
        binned = samples[: (len(samples) // step) * step].reshape(-1, step, samples.shape[1]).mean(axis=1)
        binned = np.pad(binned, ((0, max(0, n_bins - len(binned))), (0, 0)))[:n_bins]
        for c in range(binned.shape[1]):
            channels.append(binned[:, c])
            first_lag.append(0)
    for times in recording.input_spike_times_s.values():
        channels.append(np.histogram(times, bins=edges)[0].astype(float))
        first_lag.append(1)
    features = []
    for signal, start in zip(channels, first_lag, strict=True):
        signal = (signal - signal.mean()) / (signal.std() + 1e-12)
        for lag in range(start, start + lags):
            features.append(np.concatenate([np.zeros(lag), signal[: n_bins - lag]]))
    return np.stack(features, axis=1), counts


class RecordingModel(torch.nn.Module):
    """Log rate (or logit) = b + wᵀx_t [+ uᵀ FWL(x)_t]."""

    def __init__(self, kind: str, n_features: int, *, heads: int = 2, head_dim: int = 8):
        super().__init__()
        if kind not in MODELS:
            raise UnknownNameError("recording model", kind, MODELS)
        self.kind = kind
        self.linear = torch.nn.Linear(n_features, 1)
        self.fast = None
        if kind != "ln":
            rule = "hebbian" if kind == "hebbian-fwp" else "delta"
            self.fast = FastWeightLayer(
                n_features,
                num_heads=heads,
                head_dim=head_dim,
                rule=rule,
                feature_map="elu+1",
                learned_beta=True,
                gated=True,
                normalize=rule == "hebbian",
            )
            self.readout = torch.nn.Linear(n_features, 1, bias=False)
            torch.nn.init.zeros_(self.readout.weight)  # start as the LN model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        eta = self.linear(x)[..., 0]
        if self.fast is not None:
            # bounded (tanh) so that fast weights drifting on unseen input cannot blow up the rate
            eta = eta + 2.0 * torch.tanh(self.readout(self.fast(x[None]))[0, :, 0])
        return eta


def log_likelihood(eta: torch.Tensor, counts: torch.Tensor, likelihood: str) -> torch.Tensor:
    """Per-bin log-likelihood (nats) of the counts under the model's log rate / logit."""
    if likelihood == "poisson":
        return counts * eta - torch.exp(eta) - torch.lgamma(counts + 1)
    spikes = (counts > 0).to(eta.dtype)
    return spikes * eta - torch.nn.functional.softplus(eta)


def _homogeneous(train_counts: np.ndarray, likelihood: str) -> float:
    mean = max(float(train_counts.mean()), 1e-12)
    if likelihood == "poisson":
        return math.log(mean)
    p = min(max(float((train_counts > 0).mean()), 1e-12), 1 - 1e-12)
    return math.log(p / (1 - p))


def fit_recording(
    recording: Recording,
    *,
    models: tuple[str, ...] = MODELS,
    bin_ms: float = 2.0,
    lags: int = 16,
    likelihood: str = "poisson",
    train_fraction: float = 0.8,
    steps: int = 300,
    learning_rate: float = 1e-2,
    seed: int = 0,
    show_progress: bool = True,
) -> xr.Dataset:
    """Fit each model on the first ``train_fraction`` of the recording; held-out bits per spike and rates."""
    if not isinstance(recording, Recording):
        raise DTypeError(f"fit_recording takes a Recording (see recordings.load), got {type(recording).__name__}")
    models = (models,) if isinstance(models, str) else tuple(models)
    if not models:
        raise OutOfRangeError("models is empty; choose from " + ", ".join(MODELS))
    for kind in models:
        if kind not in MODELS:
            raise UnknownNameError("recording model", kind, MODELS)
    if len(set(models)) != len(models):
        raise OutOfRangeError(f"models are listed twice: {', '.join(models)}")
    if likelihood not in LIKELIHOODS:
        raise UnknownNameError("likelihood", likelihood, LIKELIHOODS)
    for name, value in (("steps", steps), ("seed", seed)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise DTypeError(f"{name} must be an int, got {value!r}")
    if steps < 1:
        raise OutOfRangeError(f"steps must be >= 1, got {steps}")
    if isinstance(learning_rate, bool) or not isinstance(learning_rate, numbers.Real):
        raise DTypeError(f"learning_rate must be a number, got {learning_rate!r}")
    if not (math.isfinite(learning_rate) and learning_rate > 0):
        raise OutOfRangeError(f"learning_rate must be a finite number > 0, got {learning_rate}")
    if isinstance(train_fraction, bool) or not isinstance(train_fraction, numbers.Real):
        raise DTypeError(f"train_fraction must be a number, got {train_fraction!r}")
    if not 0.1 <= train_fraction <= 0.95:
        raise OutOfRangeError(f"train_fraction must lie in [0.1, 0.95], got {train_fraction}")
    features, counts = design(recording, bin_ms, lags)
    split = int(len(counts) * train_fraction)
    x = torch.as_tensor(features, dtype=torch.float32)
    y = torch.as_tensor(counts, dtype=torch.float32)
    test_spikes = float(counts[split:].sum()) if likelihood == "poisson" else float((counts[split:] > 0).sum())
    if test_spikes == 0 or counts[:split].sum() == 0:
        raise RecordingError(f"{recording.source or 'recording'}: no spikes in the training or held-out part")
    null_eta = _homogeneous(counts[:split], likelihood)
    null_test = float(log_likelihood(torch.full_like(y[split:], null_eta), y[split:], likelihood).sum())

    bits, train_bits, rates = [], [], []
    bar = tqdm(total=len(models) * steps, desc="fit-recording", unit="step", disable=not show_progress)
    for kind in models:
        bar.set_postfix_str(kind, refresh=False)
        torch.manual_seed(seed)
        model = RecordingModel(kind, x.shape[1])
        with torch.no_grad():
            model.linear.bias.fill_(null_eta)
        optimiser = torch.optim.Adam(model.parameters(), lr=learning_rate)
        # early stopping on the last fifth of the training part; the test part is never seen in training
        fit_end = int(split * 0.8)
        best, best_state = -math.inf, None
        for step in range(steps):
            loss = -log_likelihood(model(x[:fit_end]), y[:fit_end], likelihood).mean()
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            bar.update()
            if step % 10 == 9 or step == steps - 1:
                with torch.no_grad():
                    validation = float(log_likelihood(model(x[:split])[fit_end:], y[fit_end:split], likelihood).sum())
                if validation > best:
                    best, best_state = validation, {k: v.clone() for k, v in model.state_dict().items()}
        model.load_state_dict(best_state)
        with torch.no_grad():
            eta = model(x)  # the whole recording, so the fast weights carry their state into the test part
            test_ll = float(log_likelihood(eta[split:], y[split:], likelihood).sum())
            train_ll = float(log_likelihood(eta[:split], y[:split], likelihood).sum())
            null_train = float(log_likelihood(torch.full_like(y[:split], null_eta), y[:split], likelihood).sum())
        bits.append((test_ll - null_test) / (test_spikes * math.log(2)))
        train_spikes = float(counts[:split].sum()) if likelihood == "poisson" else float((counts[:split] > 0).sum())
        train_bits.append((train_ll - null_train) / (train_spikes * math.log(2)))
        rate = torch.exp(eta) if likelihood == "poisson" else torch.sigmoid(eta)
        rates.append(rate.numpy() / (bin_ms / 1000.0))

    bar.close()
    times = (np.arange(len(counts)) + 0.5) * bin_ms / 1000.0
    return xr.Dataset(
        {
            "bits_per_spike": ("model", bits, {"units": "bit/spike", "long_name": "held-out log-likelihood gain"}),
            "train_bits_per_spike": ("model", train_bits, {"units": "bit/spike"}),
            "rate": (("model", "time"), np.stack(rates), {"units": "Hz", "long_name": "predicted firing rate"}),
            "spike_count": ("time", counts, {"units": "1", "long_name": f"spikes per {bin_ms:g} ms bin"}),
        },
        coords={"model": list(models), "time": ("time", times, {"units": "s"})},
        attrs={
            "source": recording.source,
            "recording": recording.name,
            "bin_ms": bin_ms,
            "lags": lags,
            "likelihood": likelihood,
            "train_fraction": train_fraction,
            "test_start_s": float(split * bin_ms / 1000.0),
            "steps": steps,
            "seed": seed,
            "neurofwp_version": neurofwp.__version__,
        },
    )


def figure(result: xr.Dataset, path_stem: str) -> list[str]:
    """Held-out bits per spike per model, and 0.3 s of the held-out rates against the spikes."""
    import seaborn as sns

    from neurofwp import plotting

    with plotting.style():
        fig = plotting.figure(10, 3.4)
        axes = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1, 2.4]})
        table = result.bits_per_spike.to_dataframe().reset_index()
        sns.barplot(table, x="model", y="bits_per_spike", hue="model", ax=axes[0], legend=False)
        axes[0].set(ylabel="held-out bits / spike", xlabel="", title="prediction of held-out spiking")
        start = result.attrs["test_start_s"]
        window = result.sel(time=slice(start, start + 0.3))
        spikes = window.time.values[window.spike_count.values > 0]
        axes[1].vlines(spikes, 0, 0.06 * float(window.rate.max()), color="0.2", lw=0.6, label="spikes")
        frame = window.rate.to_dataframe().reset_index()
        sns.lineplot(frame, x="time", y="rate", hue="model", ax=axes[1], lw=0.9)
        axes[1].set(xlabel="time (s)", ylabel="predicted rate (Hz)", title="first 0.3 s of the held-out part")
        sns.despine(fig)
    return [str(path) for path in plotting.save(fig, path_stem)]
