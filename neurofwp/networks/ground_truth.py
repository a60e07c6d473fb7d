r"""Recordings with known plasticity: the ground truth that rule inference must recover.

One postsynaptic neuron receives ``N`` presynaptic spike trains through synapses whose
weights follow a rule of :mod:`neurofwp.plasticity` with known parameters (or stay
fixed: ``rule=None``). Two neurons make the data:

* :func:`glm_neuron`, the generative model of the inference
  (:func:`neurofwp.recordings.infer_rules`, without spike history): a point-process GLM in bins
  of width :math:`\Delta` (``bin_ms``), Poisson (log link) or Bernoulli (logit link),

  .. math::

      \eta_k = b + \sum_i w_{0,i} \sum_{s \in \text{pre}_i,\ s < k\Delta} m_i(s^-)\, e^{-(k\Delta - s)/\tau_c},
      \qquad n_k \sim \text{Poisson}(e^{\eta_k}),

  with :math:`b` from ``baseline_hz``, the coupling kernel's time constant :math:`\tau_c`
  (``coupling_tau_ms``), plus :math:`g\,s((k + 1/2)\Delta)` (at the bin's centre) where a ``stimulus``
  :math:`s` drives the cell itself (gain ``stimulus_gain``; e.g. :func:`square_wave`), and the weight a
  presynaptic spike delivers
  :math:`w_i(s) = w_{0,i}\, m_i(s^-)`, read just before the spike's own update (as Brian2's
  ``on_pre = 'ge += w; ...'``). :math:`m_i` starts at 1 and follows the rule, driven by input
  i's spikes and the GLM's own output spikes, stepped as the torch backend steps the rule
  (:mod:`neurofwp.plasticity.torch_backend`; on numpy arrays, equal to it in the tests): traces
  relax exactly between events, a spike's
  change is read before its own trace increment, simultaneous pre and post spikes are taken pre
  first; clock-driven rules (a drift, the ``delta`` rule) run Euler steps of ``dt_ms`` with every
  event at the nearest step and their postsynaptic sums taken per synapse, as in a protocol. A
  bin's post spikes lie uniformly within it. The drive of the bins up to the next delivered
  presynaptic spike is known in advance (post spikes change ``m`` but not what was delivered),
  so those bins are drawn together.
* :func:`lif_neuron`: a conductance-based leaky integrate-and-fire neuron in Brian2
  (as :mod:`neurofwp.networks.song2000`), its synapses written from the same rule
  definition by :mod:`neurofwp.plasticity.brian2_backend` (``ge += w``, weights clipped to
  ``[0, w_max]``; a postsynaptic sum such as the delta rule's prediction is summed over the neuron's
  synapses, Brian2's ``(summed)``). The GLM is then only an approximation of the data: the two backends check
  each other.

Inputs come from :func:`poisson_inputs`: independent Poisson trains, or correlated ones,
through shared spikes (each input copies a spike of a common train with probability
``correlation``) and/or a shared Gaussian rate fluctuation; :func:`alternating_inputs`: two groups in antiphase,
switching between a low and a high rate.

Every generator returns a :class:`GroundTruth`: the :class:`~neurofwp.recordings.Recording`
(postsynaptic ``spike_times_s``, inputs ``unit1`` … ``unitN``) and an xarray Dataset of the
true weights over time and the true parameters. :func:`write_npz`, :func:`write_nwb` and
:func:`write_truth` save them (NPZ as ``neurofwp fit-recording`` reads it; NWB ``Units``
with the postsynaptic neuron as id 0 and input ``i`` as id ``i``; netCDF).
"""

from __future__ import annotations

import dataclasses
import math
import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

import neurofwp
from neurofwp.errors import NeurofwpError, OutOfRangeError, ShapeError
from neurofwp.io import atomic_path, check_writable, save_netcdf
from neurofwp.networks.song2000 import LIF_EQUATIONS, lif_namespace
from neurofwp.plasticity.rules import Rule, check_time_step, resolve_rule
from neurofwp.recordings.loaders import Recording

POST_ID = 0


@dataclass
class GroundTruth:
    """A generated recording and the truth behind it.

    ``recording``: the postsynaptic spikes and the input trains (``unit1`` … ``unitN``);
    ``truth``: ``weight (time, synapse)``, ``initial_weight (synapse)`` and
    ``true_value (parameter)``, with the rule, its parameters and the generator in attrs.
    """

    recording: Recording
    truth: xr.Dataset


def input_names(n_inputs: int) -> list[str]:
    """Names of the inputs: ``unit1`` … ``unitN`` (the names :func:`neurofwp.recordings.load_nwb` gives ids 1 … N)."""
    return [f"unit{i}" for i in range(1, n_inputs + 1)]


def poisson_inputs(
    n_inputs: int,
    duration_s: float,
    rate_hz: float | Sequence[float] = 10.0,
    *,
    correlation: float = 0.0,
    rate_sd: float = 0.0,
    rate_tau_ms: float = 50.0,
    seed: int | np.random.Generator = 0,
) -> list[np.ndarray]:
    r"""``n_inputs`` spike trains (sorted times in s, in ``[0, duration_s)``).

    Each input ``i`` fires at :math:`r_i(t) = r_i \max(0, 1 + \sigma z(t))`, with :math:`z` a
    shared unit-variance Ornstein-Uhlenbeck process of correlation time ``rate_tau_ms``
    (:math:`\sigma` = ``rate_sd``; 0: constant rates), on a 1 ms grid. With ``correlation``
    :math:`c > 0`, every input copies the spikes of one common train of rate :math:`r_\max / c`,
    each with probability :math:`c\, r_i / r_\max`: input i fires at :math:`r_i` and the spike
    counts of two inputs at equal rates correlate by :math:`c` (Kuhn, Aertsen & Rotter 2003).
    """
    if isinstance(n_inputs, bool) or not isinstance(n_inputs, (int, np.integer)) or n_inputs < 1:
        raise OutOfRangeError(f"n_inputs must be an int >= 1, got {n_inputs!r}")
    if not (math.isfinite(duration_s) and duration_s > 0):
        raise OutOfRangeError(f"duration_s must be a finite number > 0, got {duration_s}")
    if not 0.0 <= correlation <= 1.0:
        raise OutOfRangeError(f"correlation must lie in [0, 1], got {correlation}")
    if not (rate_sd >= 0 and rate_tau_ms > 0):
        raise OutOfRangeError(f"rate_sd must be >= 0 and rate_tau_ms > 0, got {rate_sd}, {rate_tau_ms}")
    rates = np.broadcast_to(np.asarray(rate_hz, dtype=float), (n_inputs,))
    if not np.all(np.isfinite(rates) & (rates >= 0)):
        raise OutOfRangeError(f"input rates must be finite and >= 0 Hz, got {rate_hz}")
    rng = np.random.default_rng(seed)
    grid_s = 1e-3
    n_bins = int(math.ceil(duration_s / grid_s))
    modulation: np.ndarray = np.ones(n_bins)
    if rate_sd > 0:
        from scipy.signal import lfilter

        decay = math.exp(-grid_s * 1000 / rate_tau_ms)
        noise = rng.standard_normal(n_bins) * math.sqrt(1 - decay**2)
        noise[0] = rng.standard_normal()  # the stationary distribution from the start
        z = lfilter([1.0], [1.0, -decay], noise)  # AR(1): the OU process sampled exactly on the grid
        modulation = np.maximum(0.0, 1.0 + rate_sd * z)

    def train(rate: float) -> np.ndarray:
        counts = rng.poisson(rate * modulation * grid_s)
        bins = np.repeat(np.arange(n_bins), counts)
        times = (bins + rng.random(len(bins))) * grid_s
        return np.sort(times[times < duration_s])

    if correlation == 0:
        return [train(rate) for rate in rates]
    # a common train at r_max / c, each spike copied with probability c r_i / r_max: rate r_i, count correlation c
    common = train(float(rates.max()) / correlation)
    trains = [common[rng.random(len(common)) < correlation * rate / rates.max()] for rate in rates]
    return trains


def alternating_inputs(
    n_inputs: int,
    duration_s: float,
    low_hz: float,
    high_hz: float,
    period_s: float,
    *,
    seed: int | np.random.Generator = 0,
) -> list[np.ndarray]:
    """``n_inputs`` Poisson trains in two groups (odd and even inputs) whose rates switch between ``low_hz``
    and ``high_hz`` every half ``period_s``, in antiphase: the total input rate stays constant while each
    input's rate alternates (a rate-switch design, under which rules that normalise a neuron's input, like
    the delta rule, and rules that only follow rates, like pair STDP, part ways)."""
    if not (low_hz >= 0 and high_hz >= 0 and period_s > 0):
        raise OutOfRangeError(f"rates must be >= 0 Hz and period_s > 0, got {low_hz}, {high_hz}, {period_s}")
    if isinstance(n_inputs, bool) or not isinstance(n_inputs, (int, np.integer)) or n_inputs < 1:
        raise OutOfRangeError(f"n_inputs must be an int >= 1, got {n_inputs!r}")
    rng = np.random.default_rng(seed)
    phase = square_wave(duration_s, period_s)
    trains = []
    for i in range(n_inputs):
        up = phase > 0 if i % 2 == 0 else phase < 0
        rate = np.where(up, high_hz, low_hz)  # per 1 ms sample
        counts = rng.poisson(rate * 1e-3)
        times = (np.repeat(np.arange(len(rate)), counts) + rng.random(int(counts.sum()))) * 1e-3
        trains.append(np.sort(times[times < duration_s]))
    return trains


def _checked_inputs(inputs, duration_s: float) -> list[np.ndarray]:
    if isinstance(inputs, Mapping):
        inputs = list(inputs.values())
    trains = [np.sort(np.asarray(t, dtype=float).ravel()) for t in inputs]
    if not trains:
        raise ShapeError("no inputs: give at least one presynaptic spike train")
    for index, t in enumerate(trains):
        if len(t) and (not np.all(np.isfinite(t)) or t[0] < 0 or t[-1] >= duration_s):
            raise OutOfRangeError(f"input {index}: spike times must be finite and lie in [0, {duration_s:g}) s")
    return trains


def _weights(initial_weight, n_inputs: int) -> np.ndarray:
    weights = np.asarray(initial_weight, dtype=float)
    if weights.ndim > 1 or weights.size not in (1, n_inputs):
        raise ShapeError(f"initial_weight must be one number or one per input ({n_inputs}), got shape {weights.shape}")
    weights = np.broadcast_to(weights, (n_inputs,)).copy()
    if not np.all(np.isfinite(weights)):
        raise OutOfRangeError("initial weights must be finite")
    return weights


class _RuleState:
    r"""``m_i`` of ``N`` synapses onto one neuron under ``rule`` (from 1), stepped event by event.

    The steps of the torch backend (:mod:`neurofwp.plasticity.torch_backend`, checked against it in
    the tests), on numpy arrays: a generator steps once per spike, where torch's per-call cost
    would dominate. Between events the traces relax exactly, :math:`tr \leftarrow rest + (tr - rest)
    e^{-\Delta t/\tau}`; a spike evaluates the rule's ``on_pre``/``on_post`` (after its helpers and
    per-synapse sums) on the traces before its own update, adds it to ``m``, then bumps, resets or
    ``on_spike``-updates the spiking side's traces. Clock-driven rules: steps of ``dt_ms``,
    :math:`m \leftarrow m \prod_j (1 + dt\, g(tr\, c^j))` over a gap, :math:`c = 1 - dt/\tau`,
    :math:`g` the drift at ``w = 1`` (it is linear in ``w``).
    """

    def __init__(self, rule: Rule, parameters: Mapping[str, float], count: int, dt_ms: float):
        from neurofwp.plasticity.expressions import evaluate

        if rule.response is not None:
            raise NeurofwpError(
                f"rule {rule.name!r} has a response (short-term plasticity); the generator models w only"
            )
        self.rule, self.count, self.dt_ms = rule, count, dt_ms
        self.values = {p.symbol: float(parameters[p.name]) for p in rule.parameters}
        self.weight: np.ndarray = np.ones(count)
        self.rests = {t.name: float(evaluate(t.rest, dict(self.values))) for t in rule.traces}
        self.traces: dict[str, np.ndarray] = {name: np.full(count, rest) for name, rest in self.rests.items()}
        self.tau_ms = {t.name: self.values[t.tau] for t in rule.traces}
        self.ratios = {name: 1.0 - dt_ms / tau for name, tau in self.tau_ms.items()}  # Euler decay per step
        self.position = 0.0  # ms, or steps of dt_ms for a clock-driven rule

    def position_of(self, time_ms: float) -> float:
        """Where an event at ``time_ms`` happens: that time, or the nearest step of the grid (clock-driven)."""
        return float(np.rint(time_ms / self.dt_ms)) if self.rule.clock_driven else time_ms

    def advance(self, position: float) -> None:
        """Traces (and a drift) from the current position to ``position``."""
        gap = position - self.position
        if gap <= 0:
            return
        self.position = position
        if self.rule.clock_driven:
            self._drift(int(gap))
            return
        for name, tr in self.traces.items():
            tau, rest = self.tau_ms[name], self.rests[name]
            factor = math.exp(-gap / tau) if tau > 0 else 0.0  # a time constant of 0 relaxes at once
            self.traces[name] = tr * factor if rest == 0 else rest + (tr - rest) * factor

    def _drift(self, steps: int) -> None:
        from neurofwp.plasticity.expressions import evaluate
        from neurofwp.plasticity.torch_backend import NEGLIGIBLE, WINDOW, with_sums

        assert self.rule.drift is not None
        log_factor, start = np.zeros(self.count), 0
        while start < steps:
            j = np.arange(start, min(steps, start + WINDOW), dtype=float)
            namespace: dict = dict(self.values)
            for name, tr in self.traces.items():
                namespace[name] = tr[:, None] * self.ratios[name] ** j[None, :]
            namespace["w"] = 1.0
            rate = np.asarray(evaluate(self.rule.drift, with_sums(self.rule, namespace)), dtype=float)
            log_factor += np.log1p(self.dt_ms * np.broadcast_to(rate, (self.count, len(j)))).sum(1)
            start += WINDOW
            if (
                max(float(np.abs(tr).max()) * abs(self.ratios[n]) ** start for n, tr in self.traces.items())
                < NEGLIGIBLE
            ):
                break  # the drift vanishes with the traces
        self.weight = self.weight * np.exp(log_factor)
        self.traces = {name: tr * self.ratios[name] ** steps for name, tr in self.traces.items()}

    def spike(self, pre: int | None = None) -> None:
        """A spike of input ``pre``, or (None) one of the neuron."""
        from neurofwp.plasticity.expressions import evaluate
        from neurofwp.plasticity.torch_backend import with_sums

        rule, side = self.rule, "post" if pre is None else "pre"
        rows = slice(None) if pre is None else pre
        namespace: dict = dict(self.values)
        namespace.update({name: tr[rows] for name, tr in self.traces.items()})
        namespace["w"] = self.weight[rows]
        namespace = with_sums(rule, namespace)
        for name, expression in rule.helpers:
            namespace[name] = evaluate(expression, namespace)
        change = evaluate(rule.on_pre if pre is not None else rule.on_post, namespace)
        bumped: dict[str, object] = {}
        for trace in rule.traces:
            if trace.source != side:
                continue
            if trace.on_spike:  # from the values before this spike, like every update of the spike
                bumped[trace.name] = np.asarray(evaluate(trace.on_spike, namespace), dtype=float)
            else:
                bumped[trace.name] = 1.0 if trace.reset else namespace[trace.name] + 1.0
        self.weight[rows] = self.weight[rows] + np.asarray(change, dtype=float)
        for name, value in bumped.items():
            self.traces[name][rows] = value

    def m(self, synapse: int | None = None) -> np.ndarray | float:
        """``m`` of every synapse, or of one."""
        return float(self.weight[synapse]) if synapse is not None else self.weight.copy()


# More expected spikes per bin than this: the weights have run away (a rule without a stabilising term)
MAX_COUNT_PER_BIN = 10.0


def _expected_counts(eta: np.ndarray, likelihood: str, first_bin: int, bin_s: float) -> np.ndarray:
    """Poisson mean ``e^eta`` or Bernoulli probability ``1 / (1 + e^-eta)`` of every bin."""
    if likelihood == "bernoulli":
        return 1.0 / (1.0 + np.exp(-eta))
    if float(np.max(eta)) > math.log(MAX_COUNT_PER_BIN):
        raise OutOfRangeError(
            f"the GLM neuron's rate exceeds {MAX_COUNT_PER_BIN / bin_s:g} Hz at {first_bin * bin_s:g} s: "
            "its weights ran away under the rule; use smaller potentiation or larger depression"
        )
    return np.exp(eta)


def glm_neuron(
    rule: str | os.PathLike[str] | Rule | None,
    inputs: Sequence[np.ndarray] | Mapping[str, np.ndarray],
    duration_s: float,
    *,
    parameters: Mapping[str, float] | None = None,
    baseline_hz: float = 10.0,
    initial_weight: float | Sequence[float] = 1.0,
    bin_ms: float = 1.0,
    coupling_tau_ms: float = 5.0,
    likelihood: str = "poisson",
    dt_ms: float = 0.1,
    record_every_ms: float = 100.0,
    stimulus: np.ndarray | None = None,
    stimulus_rate_hz: float = 1000.0,
    stimulus_gain: float = 1.0,
    seed: int | np.random.Generator = 0,
) -> GroundTruth:
    r"""Simulate the GLM neuron (module docstring) driven by ``inputs`` (spike times in s).

    ``rule=None``: static weights. ``parameters``: the rule's parameters (defaults for missing
    names); ``initial_weight``: :math:`w_{0,i}`, the log-rate change per unit kernel;
    ``likelihood``: ``"poisson"`` counts or ``"bernoulli"`` (at most one spike per bin, logit link);
    ``dt_ms``: the Euler step of clock-driven rules. ``stimulus``: a drive of the neuron itself (1-d,
    sampled at ``stimulus_rate_hz``, covering the recording), as current injected into a patched cell
    that sets its firing rate: :math:`\eta_k` gains :math:`g\, s(t_k)` (``stimulus_gain``, :math:`s` at the bin's
    centre), and the recording carries the stimulus for the inference's stimulus filter. The random
    numbers come from ``seed`` alone; nothing global is touched.
    """
    rng = np.random.default_rng(seed)
    if not (math.isfinite(duration_s) and duration_s > 0):
        raise OutOfRangeError(f"duration_s must be a finite number > 0, got {duration_s}")
    if not (bin_ms > 0 and baseline_hz > 0 and coupling_tau_ms > 0 and record_every_ms > 0 and dt_ms > 0):
        raise OutOfRangeError("bin_ms, baseline_hz, coupling_tau_ms, record_every_ms and dt_ms must be > 0")
    if likelihood not in ("poisson", "bernoulli"):
        raise OutOfRangeError(f"likelihood must be 'poisson' or 'bernoulli', got {likelihood!r}")
    trains = _checked_inputs(inputs, duration_s)
    n_inputs = len(trains)
    w0 = _weights(initial_weight, n_inputs)
    resolved_rule = None if rule is None else resolve_rule(rule)
    resolved = {} if resolved_rule is None else resolved_rule.resolve(parameters)
    if resolved_rule is not None:
        check_time_step(resolved_rule, dt_ms, resolved)
    bin_s = bin_ms / 1000.0
    n_bins = int(math.floor(duration_s / bin_s + 1e-9))
    rate = baseline_hz * bin_s
    baseline = math.log(rate) if likelihood == "poisson" else math.log(rate / (1.0 - rate))
    decay = math.exp(-bin_ms / coupling_tau_ms)
    drive = np.zeros(n_bins)
    if stimulus is not None:
        stimulus = _checked_stimulus(stimulus, stimulus_rate_hz, stimulus_gain, duration_s)
        centres = np.floor((np.arange(n_bins) + 0.5) * bin_s * stimulus_rate_hz).astype(np.int64)
        drive = stimulus_gain * stimulus[np.minimum(centres, len(stimulus) - 1)]
    times = np.concatenate(trains)
    synapse = np.concatenate([np.full(len(t), i) for i, t in enumerate(trains)])
    order = np.argsort(times, kind="stable")
    times, synapse = times[order], synapse[order]
    first = np.floor(times / bin_s).astype(np.int64) + 1  # the first bin a spike drives
    phase = np.exp(-(first * bin_s - times) * 1000 / coupling_tau_ms)
    samples_ms = np.arange(0.0, duration_s * 1000 + 1e-9, record_every_ms)
    state = None if resolved_rule is None else _RuleState(resolved_rule, resolved, n_inputs, dt_ms)
    sampled, amplitude = np.empty((len(samples_ms), n_inputs)), np.empty(len(times))
    post_times: list[np.ndarray] = []
    k, cursor, next_sample = 0, 0, 0
    coupling = 0.0  # sum_i w_i sum_s kernel at the start of bin k
    while k < n_bins:
        # bins k … last share what drives them: every spike that acts on them is already delivered
        last = min(int(first[cursor]) - 1, n_bins - 1) if cursor < len(times) else n_bins - 1
        # the coupling decays from bin k on: no spike is delivered to bins k + 1 … last
        eta = baseline + drive[k : last + 1] + coupling * decay ** np.arange(last - k + 1)
        expected = _expected_counts(eta, likelihood, k, bin_s)
        counts = rng.poisson(expected) if likelihood == "poisson" else (rng.random(len(eta)) < expected).astype(int)
        bins = np.repeat(np.arange(k, last + 1), counts)
        spikes = np.sort((bins + rng.random(len(bins))) * bin_s)
        post_times.append(spikes)
        stop = cursor
        while stop < len(times) and first[stop] == last + 1:
            stop += 1
        end_ms = (last + 1) * bin_ms
        # the rule's events up to the end of bin `last`: pre, post, then samples at equal positions
        events = [(t * 1000, 0, s) for s, t in zip(range(cursor, stop), times[cursor:stop], strict=True)]
        events += [(t * 1000, 1, -1) for t in spikes]
        while next_sample < len(samples_ms) and samples_ms[next_sample] < end_ms:
            events.append((samples_ms[next_sample], 2, next_sample))
            next_sample += 1
        if state is not None:
            events = sorted(events, key=lambda e: (state.position_of(e[0]), e[1]))
        else:
            events.sort()
        for time_ms, kind, index in events:
            if state is not None:
                state.advance(state.position_of(time_ms))
            if kind == 0:  # the spike delivers the weight just before its own update
                i = int(synapse[index])
                amplitude[index] = w0[i] * (1.0 if state is None else state.m(i))
                if state is not None:
                    state.spike(pre=i)
            elif kind == 1:
                if state is not None:
                    state.spike()
            else:
                sampled[index] = w0 * (1.0 if state is None else state.m())
        coupling = coupling * decay ** (last + 1 - k) + float(np.sum(amplitude[cursor:stop] * phase[cursor:stop]))
        cursor, k = stop, last + 1
    while next_sample < len(samples_ms):  # samples at the very end
        if state is not None:
            state.advance(state.position_of(samples_ms[next_sample]))
        sampled[next_sample] = w0 * (np.ones(n_inputs) if state is None else state.m())
        next_sample += 1
    final = w0 * (np.ones(n_inputs) if state is None else state.m())
    post = np.concatenate(post_times) if post_times else np.empty(0)
    attrs = {
        "generator": "glm",
        "likelihood": likelihood,
        "baseline_hz": baseline_hz,
        "bin_ms": bin_ms,
        "coupling_tau_ms": coupling_tau_ms,
        "weight_model": "w_i(t) = w0_i m_i(t), m_i(0) = 1 under the rule",
    }
    if resolved_rule is not None and resolved_rule.clock_driven:
        attrs["dt_ms"] = dt_ms
    if stimulus is not None:
        attrs.update(stimulus_rate_hz=stimulus_rate_hz, stimulus_gain=stimulus_gain)
    truth = _ground_truth(
        resolved_rule, resolved, trains, post, duration_s, w0, final, samples_ms, sampled, seed, attrs
    )
    if stimulus is not None:
        truth.recording = dataclasses.replace(truth.recording, stimulus=stimulus, stimulus_rate_hz=stimulus_rate_hz)
    return truth


def _checked_stimulus(stimulus, rate_hz: float, gain: float, duration_s: float) -> np.ndarray:
    samples = np.asarray(stimulus, dtype=float)
    if samples.ndim != 1 or len(samples) == 0:
        raise ShapeError(f"the stimulus must be a 1-d array of samples, got shape {samples.shape}")
    if not (np.all(np.isfinite(samples)) and math.isfinite(gain)):
        raise OutOfRangeError("the stimulus and its gain must be finite")
    if not (math.isfinite(rate_hz) and rate_hz > 0):
        raise OutOfRangeError(f"stimulus_rate_hz must be a finite number > 0, got {rate_hz}")
    if len(samples) / rate_hz < duration_s - 1e-9:
        raise OutOfRangeError(
            f"the stimulus covers {len(samples) / rate_hz:g} s of a {duration_s:g} s recording: give it for the whole"
        )
    return samples


def square_wave(duration_s: float, period_s: float, rate_hz: float = 1000.0) -> np.ndarray:
    """A stimulus of ``duration_s`` sampled at ``rate_hz``: +1 for the first half of every period, -1 for the
    second (a cell driven alternately up and down, as in a pairing experiment's high and low firing phases)."""
    if not (period_s > 0 and duration_s > 0 and rate_hz > 0):
        raise OutOfRangeError("duration_s, period_s and rate_hz must be > 0")
    t = np.arange(int(math.ceil(duration_s * rate_hz))) / rate_hz
    return np.where((t % period_s) < period_s / 2, 1.0, -1.0)


def _ground_truth(
    rule, resolved, trains, post, duration_s, weights, final, samples_ms, sampled, seed, attrs
) -> GroundTruth:
    names = input_names(len(trains))
    recording = Recording(
        np.asarray(post, dtype=float),
        duration_s,
        input_spike_times_s=dict(zip(names, trains, strict=True)),
        source=f"ground truth ({attrs['generator']}, {'static' if rule is None else rule.name})",
        name=f"ground_truth_{attrs['generator']}_{'static' if rule is None else rule.name}",
    )
    parameter_names = list(resolved)
    truth = xr.Dataset(
        {
            "weight": (
                ("time", "synapse"),
                sampled,
                {"units": "1", "long_name": "true weight w_i(t) (all events before t)"},
            ),
            "initial_weight": ("synapse", weights, {"units": "1", "long_name": "w_i(0)"}),
            "final_weight": ("synapse", final, {"units": "1", "long_name": "w_i at the end of the recording"}),
            "true_value": (
                "parameter",
                np.asarray([resolved[n] for n in parameter_names], dtype=float),
                {"units": "rule units (ms for names ending in _ms)", "long_name": "true rule parameter"},
            ),
            "post_rate": ((), len(post) / duration_s, {"units": "Hz", "long_name": "mean postsynaptic rate"}),
            "input_rate": (
                "synapse",
                np.asarray([len(t) / duration_s for t in trains]),
                {"units": "Hz", "long_name": "mean input rate"},
            ),
        },
        coords={
            "time": ("time", samples_ms / 1000.0, {"units": "s"}),
            "synapse": ("synapse", names),
            "parameter": ("parameter", np.asarray(parameter_names, dtype=str)),
        },
        attrs={
            "rule": "static" if rule is None else rule.name,
            **({} if rule is None else {"rule_definition": rule.to_toml()}),
            **{f"param_{name}": value for name, value in resolved.items()},
            "duration_s": duration_s,
            "n_inputs": len(trains),
            "post_spikes": len(post),
            "seed": seed if isinstance(seed, (int, np.integer)) else "generator",
            "neurofwp_version": neurofwp.__version__,
            **attrs,
        },
    )
    return GroundTruth(recording, truth)


@dataclass(frozen=True)
class LIFConfig:
    """The conductance-based LIF neuron of :func:`lif_neuron` (as in Song, Miller & Abbott 2000)."""

    tau_m_ms: float = 10.0
    tau_e_ms: float = 5.0
    E_e_mV: float = 0.0
    E_l_mV: float = -74.0
    v_t_mV: float = -54.0
    v_r_mV: float = -60.0
    w_max: float = 0.05
    dt_ms: float = 0.1


def lif_neuron(
    rule: str | os.PathLike[str] | Rule | None,
    inputs: Sequence[np.ndarray] | Mapping[str, np.ndarray],
    duration_s: float,
    *,
    parameters: Mapping[str, float] | None = None,
    initial_weight: float | Sequence[float] = 0.02,
    config: LIFConfig | None = None,
    record_every_ms: float = 100.0,
) -> GroundTruth:
    r"""Simulate the leaky integrate-and-fire neuron in Brian2 (module docstring):

    .. math:: \tau_m \frac{dv}{dt} = g_e (E_e - v) + E_l - v, \qquad \tau_e \frac{dg_e}{dt} = -g_e,

    an input spike adds ``w`` to :math:`g_e` and then runs the rule's presynaptic code; the
    weights are clipped to ``[0, w_max]`` (dimensionless conductance, in units of the leak).
    ``rule=None``: static weights. Deterministic given ``inputs`` (time steps of
    ``config.dt_ms``; an input's spikes within one step are merged into one).
    """
    import brian2 as b2

    from neurofwp.plasticity.brian2_backend import model_equations, pathway_code

    config = config or LIFConfig()
    if not (math.isfinite(duration_s) and duration_s > 0):
        raise OutOfRangeError(f"duration_s must be a finite number > 0, got {duration_s}")
    trains = _checked_inputs(inputs, duration_s)
    weights = _weights(initial_weight, len(trains))
    resolved_rule = None if rule is None else resolve_rule(rule)
    resolved = {} if resolved_rule is None else resolved_rule.resolve(parameters)
    if resolved_rule is not None:
        check_time_step(resolved_rule, config.dt_ms, resolved)
    # one spike per input and time step (SpikeGeneratorGroup refuses more)
    steps = [np.unique(np.floor(t * 1000 / config.dt_ms + 1e-9).astype(np.int64)) for t in trains]
    indices = np.concatenate([np.full(len(s), i) for i, s in enumerate(steps)])
    times = np.concatenate(steps) * config.dt_ms
    clock = b2.Clock(dt=config.dt_ms * b2.ms)
    sources = b2.SpikeGeneratorGroup(len(trains), indices, times * b2.ms, dt=config.dt_ms * b2.ms)
    sums = "" if resolved_rule is None else "\n".join(f"{n} : {u}" for n, _e, u in resolved_rule.summed)
    neuron = b2.NeuronGroup(
        1, LIF_EQUATIONS + sums, threshold="v > v_t", reset="v = v_r", method="euler", clock=clock,
        namespace=lif_namespace(config),
    )  # fmt: skip
    neuron.v = config.v_r_mV * b2.mV
    post_code = ""
    if resolved_rule is None:
        synapses = b2.Synapses(sources, neuron, model="w : 1", on_pre="ge += w", clock=clock)
    else:
        post_code = pathway_code(resolved_rule, "post", w_max="w_max")
        method = "euler" if resolved_rule.clock_driven else None
        synapses = b2.Synapses(
            sources, neuron, model=model_equations(resolved_rule, summed_on_post=bool(resolved_rule.summed)),
            on_pre="ge += w\n" + pathway_code(resolved_rule, "pre", w_max="w_max"),
            on_post=post_code or None, method=method, namespace={"w_max": config.w_max}, clock=clock,
        )  # fmt: skip
    synapses.connect()
    if resolved_rule is not None and post_code:
        synapses.pre.order, synapses.post.order = 0, 1  # simultaneous spikes: pre first, as the torch backend
    synapses.w = weights
    if resolved_rule is not None:
        for p in resolved_rule.parameters:
            setattr(synapses, p.symbol, resolved[p.name] * (b2.ms if p.is_time else 1))
    step = max(1, int(round(record_every_ms / config.dt_ms)))
    monitor = b2.StateMonitor(synapses, "w", record=True, dt=step * config.dt_ms * b2.ms)
    spikes = b2.SpikeMonitor(neuron)
    network = b2.Network(sources, neuron, synapses, monitor, spikes)
    network.run(duration_s * b2.second, namespace={})
    samples_ms = np.asarray(monitor.t / b2.ms)
    sampled = np.asarray(monitor.w).T
    # times as step · dt, computed as for the inputs: spikes in one step have equal times
    post = np.rint(np.asarray(spikes.t / b2.ms) / config.dt_ms).astype(np.int64) * config.dt_ms / 1000.0
    spiked = [s * config.dt_ms / 1000.0 for s in steps]
    attrs = {"generator": "lif", "backend": "brian2", **{f"config_{k}": v for k, v in asdict(config).items()}}
    final = np.asarray(synapses.w[:])
    return _ground_truth(
        resolved_rule, resolved, spiked, post, duration_s, weights, final, samples_ms, sampled, None, attrs
    )


def write_npz(ground_truth: GroundTruth, path: str | os.PathLike) -> Path:
    """The recording as NPZ (``spike_times_s``, ``duration_s``, ``input_spike_times_s__unit<i>``, and
    ``stimulus`` + ``stimulus_rate_hz`` where the cell was driven), atomically."""
    path = check_writable(path)
    recording = ground_truth.recording
    arrays: dict[str, Any] = {"spike_times_s": recording.spike_times_s, "duration_s": np.asarray(recording.duration_s)}
    arrays.update({f"input_spike_times_s__{n}": t for n, t in recording.input_spike_times_s.items()})
    if recording.stimulus is not None:
        arrays.update(stimulus=recording.stimulus, stimulus_rate_hz=np.asarray(recording.stimulus_rate_hz))
    with atomic_path(path) as temporary:
        with open(temporary, "wb") as handle:  # a file object: numpy would append .npz to a name
            np.savez(handle, **arrays)
    return path


def write_nwb(ground_truth: GroundTruth, path: str | os.PathLike) -> Path:
    """The recording as NWB: a ``Units`` table, the postsynaptic neuron with id 0, input ``unit<i>`` with id ``i``,
    and where the cell was driven its stimulus as a ``TimeSeries`` (``stimulus``, from time 0)."""
    from datetime import UTC, datetime

    from pynwb import NWBHDF5IO, NWBFile, TimeSeries

    path = check_writable(path)
    recording, truth = ground_truth.recording, ground_truth.truth
    nwb = NWBFile(
        session_description=f"neurofwp ground truth: {truth.attrs['generator']} neuron, rule {truth.attrs['rule']}",
        identifier=f"neurofwp-ground-truth-{truth.attrs['generator']}-{truth.attrs['rule']}-{truth.attrs['seed']}",
        session_start_time=datetime(2000, 1, 1, tzinfo=UTC),  # fixed: the file depends on the data only
    )
    nwb.add_unit_column("role", "postsynaptic or presynaptic")
    observed = [[0.0, float(recording.duration_s)]]  # the recording's span, beyond the last spike
    nwb.add_unit(id=POST_ID, spike_times=recording.spike_times_s, obs_intervals=observed, role="postsynaptic")
    for name, times in recording.input_spike_times_s.items():
        nwb.add_unit(id=int(name.removeprefix("unit")), spike_times=times, obs_intervals=observed, role="presynaptic")
    if recording.stimulus is not None and recording.stimulus_rate_hz is not None:  # a Recording sets both
        rate = float(recording.stimulus_rate_hz)
        drive = TimeSeries(name="stimulus", data=recording.stimulus, unit="1", starting_time=0.0, rate=rate)
        nwb.add_stimulus(drive)
    with atomic_path(path) as temporary, warnings.catch_warnings():
        # the temporary name (renamed onto ``path`` at the end) does not end in .nwb
        warnings.filterwarnings("ignore", message=".*does not end in '.nwb'", category=UserWarning)
        with NWBHDF5IO(temporary, mode="w") as io:
            io.write(nwb)
    return path


def write_truth(ground_truth: GroundTruth, path: str | os.PathLike) -> Path:
    """The true weights and parameters as netCDF."""
    return save_netcdf(ground_truth.truth, path)


def figure(truths: Mapping[str, GroundTruth], inferences: Mapping[str, xr.Dataset], path_stem: str) -> list[str]:
    """One row per ground truth: the true and the inferred relative weights :math:`w_i(t)/w_i(0)` (the
    generating rule's fit, or the best plastic one) of a few inputs, and each plastic model's held-out
    bits per spike over the static GLM's; saved as PNG and SVG."""
    import seaborn as sns

    from neurofwp import plotting
    from neurofwp.recordings.figures import shade_held_out

    with plotting.style():
        fig = plotting.figure(10, 3.0 * len(truths))
        axes = np.atleast_2d(fig.subplots(len(truths), 2, width_ratios=[2.2, 1]))
        for row, (label, truth) in enumerate(truths.items()):
            inference = inferences[label]
            rule = truth.truth.attrs["rule"]
            plastic = inference.bits_per_spike.drop_sel(model="static")
            shown = rule if rule in inference.model.values else str(plastic.idxmax("model").values)
            true = truth.truth.weight / truth.truth.initial_weight
            inferred = inference.weight.sel(model=shown)
            inferred = inferred / inferred.isel(time=0)
            ax = axes[row, 0]
            for i, name in enumerate(list(truth.truth.synapse.values)[:4]):
                colour = f"C{i}"
                ax.plot(true.time, true.sel(synapse=name), color=colour, lw=1.2, label="true" if i == 0 else None)
                ax.plot(inferred.time, inferred.sel(input=name), color=colour, lw=1.2, ls="--",
                        label=f"inferred ({shown})" if i == 0 else None)  # fmt: skip
            shade_held_out(ax, inference)
            ax.set(xlabel="time (s)", ylabel="w(t) / w(0)", title=f"{label}: rule {rule} (grey: held out)")
            ax.legend(frameon=False, fontsize=7)
            # gains over the static GLM: a few hundredths of a bit on several bits per spike
            gain = (plastic - inference.bits_per_spike.sel(model="static")).rename("gain")
            sns.barplot(gain.to_dataframe().reset_index(), x="model", y="gain", ax=axes[row, 1], color="C0")
            axes[row, 1].axhline(0.0, color="0.3", lw=0.8)
            static = float(inference.bits_per_spike.sel(model="static"))
            axes[row, 1].set(xlabel="", ylabel="held-out gain over static (bit/spike)",
                             title=f"model comparison (static: {static:.3f} bit/spike)")  # fmt: skip
        sns.despine(fig)
    return [str(path) for path in plotting.save(fig, path_stem)]
