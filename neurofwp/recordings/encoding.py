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

Recordings come from :mod:`neurofwp.recordings.loaders`.
"""

from __future__ import annotations

import math
import numbers

import numpy as np
import torch
import xarray as xr

import neurofwp
from neurofwp.errors import DTypeError, OutOfRangeError, UnknownNameError
from neurofwp.recordings.loaders import Recording, RecordingError
from neurofwp.tensor import FastWeightLayer

MODELS = ("ln", "hebbian-fwp", "delta-fwp")
LIKELIHOODS = ("poisson", "bernoulli")
MAX_DESIGN_SIZE = 500_000_000  # bins × (lags + 1), per input channel: a bound on memory, not on a recording


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
    bar = _progress_bar(total=len(models) * steps, desc="fit-recording", unit="step", disable=not show_progress)
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


def _progress_bar(**options):
    # looked up on the package, where a caller replaces the bar (neurofwp.recordings.tqdm)
    from neurofwp import recordings

    return recordings.tqdm(**options)


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
