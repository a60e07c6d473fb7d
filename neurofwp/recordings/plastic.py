r"""Infer plasticity rules from spike recordings: point-process GLMs whose couplings evolve under a rule.

The postsynaptic spike counts :math:`y_t` in bins of :math:`\Delta` ms are Poisson with log rate
(or Bernoulli with logit) :math:`\eta_t`,

.. math::

    \eta_t = b + \sum_{k=1}^{L} h_k\, y_{t-k} + \sum_{c}\sum_{k=0}^{L_s-1} g_{ck}\, s_{c,t-k}
        + \sum_i w_{0,i} \sum_{s \in \text{pre}_i,\ s < t\Delta} m_i(s^-)\, e^{-(t\Delta - s)/\tau_c},

with the baseline b, the spike-history filter h, the stimulus filter g (when the recording
has a stimulus s, binned and z-scored), and the coupling from each presynaptic unit i: every
presynaptic spike at s adds an exponential kernel (time constant :math:`\tau_c`, read at the bins'
starts) from the first bin after it, scaled by the weight
:math:`w_i(s) = w_{0,i}\, m_i(s^-)`. :math:`m_i` is the weight trajectory of the rule, started at 1
and driven by unit i's spikes (pre) and the postsynaptic spikes (post), read just before the spike
it delivers (like Brian2's ``on_pre = 'g += w; ...'``); for a rule with a ``response`` (short-term
plasticity) the efficacy is :math:`m_i(s^-)\cdot\text{response}(s)`. The rule is any
:class:`~neurofwp.plasticity.definition.Rule`, evaluated by the torch backend's reading of its
definition; a static GLM (:math:`m_i \equiv 1`) is the null model. The postsynaptic sums of a
rule (``summed``, e.g. the delta rule's prediction) are taken per synapse, as in a protocol.

The log-likelihood (nats) is :math:`\sum_t y_t\eta_t - e^{\eta_t} - \log y_t!` (Poisson) or
:math:`\sum_t [y_t>0]\eta_t - \log(1 + e^{\eta_t})` (Bernoulli).

Fast evaluation, without a Python step per spike: the weight trajectories by prefix scans or the
event loop (:mod:`neurofwp.recordings.trajectories`), the coupling an exponential filter of the
presynaptic kicks (:func:`exponential_filter`). The plain reference the fast paths are tested
against is :mod:`neurofwp.recordings.naive`.

Held out: the recording is cut into ``held_out_blocks`` equal segments and the last ``held_out`` of each is kept
out of the fit (one block: the recording's end; several: blocks spread through it, so that the comparison
also sees the weights change where they change most, often early). The rule runs through the held-out blocks
on the recorded spikes as everywhere (the rate at t depends on spikes before t only), their bins only
leave the likelihood that is maximised.

Fit: maximum likelihood on the training bins by L-BFGS-B with autograd
gradients (float64); the rule's free parameters within their bounds (unit-cube coordinates),
the GLM parameters unbounded. The static GLM (convex) is fitted first; every plastic model starts
with ``starts`` rule-parameter starts (:func:`start_points`: the quiescent point, the rule's
defaults, then uniform within the bounds), its GLM parameters those of the static GLM refitted on
the first tenth of the recording before its last held-out block, held-out bins masked
(:func:`_early_start`: w0 is the coupling where every trajectory starts at 1; the whole part's
average coupling can have the other sign and lead the fit into a mirror optimum; where the fits end
below the quiescent start with the static GLM's parameters, that start is fitted too, so that no
plastic fit ends below the static likelihood). Laplace 95 % intervals
of the rule parameters from the Hessian of :math:`-\log L` over all parameters (central differences of autograd
gradients), as in :func:`neurofwp.fit.laplace`. Held-out bits per spike over a homogeneous rate fitted on the
training part; the likelihood ratio plastic vs static on the training part,
:math:`2(\log L_\text{plastic} - \log L_\text{static}) \sim \chi^2_k` (k free rule parameters; the
static model is the rule with zero amplitudes, within the bounds of the built-in rules).
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import scipy.optimize
import scipy.stats
import torch
import xarray as xr

import neurofwp
from neurofwp.errors import DTypeError, NeurofwpError, OutOfRangeError, ShapeError, UnknownNameError
from neurofwp.fit import AT_BOUND_TOLERANCE, FLAT_LOADING, FLAT_TOLERANCE, Z95, _positive_int
from neurofwp.fit import _bounds as fit_bounds
from neurofwp.plasticity import torch_backend
from neurofwp.plasticity.definition import check_parameter_value, check_time_step
from neurofwp.plasticity.expressions import evaluate
from neurofwp.plasticity.rules import Rule, resolve_rule
from neurofwp.protocols import POST, PRE
from neurofwp.recordings.encoding import design
from neurofwp.recordings.loaders import Recording, RecordingError
from neurofwp.recordings.trajectories import (
    METHODS,
    SAMPLE,
    Events,
    affine_prefix,
    parallel_form,
    resolve_method,
    weights_before,
)

LIKELIHOODS = ("poisson", "bernoulli")
STATIC = "static"
RUNAWAY = 5.0  # a simulated log rate (or logit) per bin above this: e^5 = 148 spikes per bin
HESSIAN_STEP = 1e-5  # central-difference step of the Laplace Hessian, in the optimiser's units
PENALTY = 1e10  # the objective where the likelihood is not finite (it is about -log L per spike elsewhere)


# Spike trains -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class SpikeTrains:
    """The checked spike times (ms) of one postsynaptic neuron and its named presynaptic units."""

    post_ms: np.ndarray
    pre_ms: tuple[np.ndarray, ...]
    names: tuple[str, ...]
    duration_ms: float
    source: str = ""
    post_name: str = "spike_times_s"


def _check_train(times: np.ndarray, duration_s: float, label: str, what: str) -> np.ndarray:
    times = np.asarray(times, dtype=float)
    if times.size == 0:
        raise RecordingError(f"{label}: {what} has no spikes")
    if times.min() < 0:
        raise RecordingError(f"{label}: {what}: spike time {times.min():g} s is negative")
    steps = np.diff(times)
    if np.any(steps < 0):
        k = int(np.argmax(steps < 0)) + 1
        raise RecordingError(
            f"{label}: {what}: spike times are not sorted (spike {k} at {times[k]:g} s comes after {times[k - 1]:g} s)"
        )
    if times.max() > duration_s:
        raise RecordingError(
            f"{label}: {what}: spike at {times.max():g} s lies outside the recording (duration {duration_s:g} s)"
        )
    return times * 1000.0


def check_trains(recording: Recording, post: str | None = None, pre: Sequence[str] | str | None = None) -> SpikeTrains:
    """The postsynaptic and presynaptic trains of ``recording``, checked (ms).

    ``post``: None for the recording's own neuron (``spike_times_s``), or the name of one of its
    input trains; ``pre``: the names of the presynaptic inputs (default: every input but ``post``).
    Empty, negative, unsorted trains and spikes after the recording's end raise
    :class:`~neurofwp.recordings.RecordingError` naming the recording, the unit and the value.
    """
    if not isinstance(recording, Recording):
        raise DTypeError(f"infer_rules takes a Recording (see recordings.load), got {type(recording).__name__}")
    label = recording.source or recording.name
    names = list(recording.input_spike_times_s)
    if post is None:
        post_times, post_label = recording.spike_times_s, "the postsynaptic neuron (spike_times_s)"
    else:
        if str(post) not in names:
            raise RecordingError(f"{label}: no unit {post!r} to be postsynaptic; units are {names}")
        post_times, post_label = recording.input_spike_times_s[str(post)], f"postsynaptic unit {post!r}"
    if pre is None:
        chosen = [n for n in names if post is None or n != str(post)]
    else:
        chosen = [pre] if isinstance(pre, str) else [str(p) for p in pre]
        for name in chosen:
            if name not in names:
                raise RecordingError(f"{label}: no presynaptic unit {name!r}; units are {names}")
            if post is not None and name == str(post):
                raise RecordingError(f"{label}: unit {name!r} is postsynaptic; it cannot be presynaptic too")
        if len(set(chosen)) != len(chosen):
            raise RecordingError(f"{label}: presynaptic units are listed twice: {chosen}")
    if not chosen:
        raise RecordingError(f"{label}: no presynaptic spike trains")
    duration = recording.duration_s
    post_ms = _check_train(post_times, duration, label, post_label)
    pre_ms = tuple(
        _check_train(recording.input_spike_times_s[n], duration, label, f"presynaptic unit {n!r}") for n in chosen
    )
    post_name = "spike_times_s" if post is None else str(post)
    return SpikeTrains(post_ms, pre_ms, tuple(chosen), duration * 1000.0, label, post_name)


# The GLM ----------------------------------------------------------------------------------------


def exponential_filter(kicks: torch.Tensor, decay: float, block: int) -> torch.Tensor:
    r""":math:`u_t = \sum_{j \le t} a^{t-j} x_j`, i.e. :math:`u_t = a u_{t-1} + x_t`, a = ``decay``, from
    ``kicks`` :math:`x_t a^{-(t \bmod \text{block})}` (``[T]``, scaled as :func:`block_scale` says).

    In blocks of ``block`` bins, :math:`u_{k,i} = a^i (\operatorname{cumsum}_i(a^{-i} x) + a\, c_k)`
    with :math:`c_k` the value at the end of the previous block, carried from block to block by the
    affine prefix scan; ``block`` is small enough that :math:`a^{-\text{block}}` stays far from overflow,
    and each term keeps the precision of the sum it belongs to.
    """
    length = kicks.shape[0]
    blocks = -(-length // block)
    x = torch.nn.functional.pad(kicks, (0, blocks * block - length)).reshape(blocks, block)
    sums = torch.cumsum(x, dim=1)
    ends = (decay ** (block - 1) * sums[:, -1])[None]  # each block's end without what came before it
    carried = affine_prefix(torch.full_like(ends, decay**block), ends, initial=0.0)[0]
    into = torch.cat([torch.zeros_like(carried[:1]), carried[:-1]])[:, None]
    powers = decay ** torch.arange(block, dtype=kicks.dtype)
    return (powers * (sums + decay * into)).reshape(-1)[:length]


def block_scale(bins: np.ndarray, decay: float, block: int) -> np.ndarray:
    """The factor :math:`a^{-(t \bmod \text{block})}` of a kick in bin t (see :func:`exponential_filter`)."""
    return decay ** -(np.asarray(bins) % block).astype(float)


class _Gathered:
    """Event-driven rules in parallel form, the cheap way: each trace scanned along its source's own spikes
    (the postsynaptic train once for every unit), and read at the other side's spikes from the last
    source spike before them (pre ≤ t at a post spike, post < s at a pre spike: pre first at equal times)."""

    def __init__(self, post_ms: np.ndarray, pre_ms: Sequence[np.ndarray]):
        count, longest = len(pre_ms), max(len(t) for t in pre_ms)
        padded = np.zeros((count, longest))
        mask = np.zeros((count, longest), dtype=bool)
        for i, t in enumerate(pre_ms):
            padded[i, : len(t)], padded[i, len(t) :] = t, (t[-1] if len(t) else 0.0)
            mask[i, : len(t)] = True
        self.pre_mask = torch.as_tensor(mask)
        self.pre_elapsed = torch.as_tensor(np.diff(padded, axis=1, prepend=padded[:, :1]))
        self.post_elapsed = torch.as_tensor(np.diff(post_ms, prepend=post_ms[:1]))[None]
        self.post_fired = torch.ones_like(self.post_elapsed, dtype=torch.bool)
        # the last pre spike at or before each post spike, and the last post spike before each pre spike
        last_pre = np.stack([np.searchsorted(t, post_ms, side="right") - 1 for t in pre_ms])  # [N, P]
        self.pre_at_post = torch.as_tensor(np.maximum(last_pre, 0))
        self.has_pre = torch.as_tensor(last_pre >= 0)
        self.gap_pre_at_post = torch.as_tensor(post_ms[None] - np.take_along_axis(padded, np.maximum(last_pre, 0), 1))
        last_post = np.searchsorted(post_ms, padded, side="left") - 1  # [N, S]
        self.post_at_pre = torch.as_tensor(np.maximum(last_post, 0))
        self.has_post = torch.as_tensor(last_post >= 0)
        clipped = post_ms[np.maximum(last_post, 0)] if len(post_ms) else np.zeros_like(padded)
        self.gap_post_at_pre = torch.as_tensor(padded - clipped)
        self.n_post = len(post_ms)

    def factors(self, rule: Rule, values: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """m(s^-) at every presynaptic spike, unit by unit in time order (flat)."""
        dtype = next(iter(values.values())).dtype
        at_pre, at_post = {}, {}
        for trace in rule.traces:
            rate = 1.0 / values[trace.tau]
            if trace.source == "pre":
                before = torch_backend._traces_before(self.pre_elapsed, self.pre_mask, rate, trace.reset)[..., 0]
                after = torch.ones_like(before) if trace.reset else before + 1.0
                read = torch.gather(after, 1, self.pre_at_post) * torch.exp(-self.gap_pre_at_post * rate)
                at_pre[trace.name], at_post[trace.name] = before, torch.where(self.has_pre, read, 0.0)
            else:
                if self.n_post == 0:
                    at_post[trace.name] = torch.zeros((1, 0), dtype=dtype)
                    at_pre[trace.name] = torch.zeros_like(self.gap_post_at_pre)
                    continue
                before = torch_backend._traces_before(self.post_elapsed, self.post_fired, rate, trace.reset)[..., 0]
                after = torch.ones_like(before) if trace.reset else before + 1.0
                read = after[0][self.post_at_pre] * torch.exp(-self.gap_post_at_pre * rate)
                at_post[trace.name], at_pre[trace.name] = before, torch.where(self.has_post, read, 0.0)
        changes = []
        for traces, expression in ((at_pre, rule.on_pre), (at_post, rule.on_post)):
            namespace: dict = dict(values) | traces
            for name, text, _unit in rule.summed:
                namespace[name] = evaluate(text, namespace)
            for name, text in rule.helpers:
                namespace[name] = evaluate(text, namespace)
            changes.append(torch.as_tensor(evaluate(expression, namespace), dtype=dtype))
        shape_pre, shape_post = self.pre_mask.shape, (self.pre_mask.shape[0], self.n_post)
        on_pre = torch.where(self.pre_mask, changes[0].expand(shape_pre), 0.0)
        on_post = changes[1].expand(shape_post)
        weight = 1.0 + torch.cumsum(on_pre, dim=1) - on_pre
        if self.n_post:
            from_post = torch.gather(torch.cumsum(on_post, dim=1), 1, self.post_at_pre)
            weight = weight + torch.where(self.has_post, from_post, 0.0)
        return weight[self.pre_mask]


class PlasticGLM:
    """The log-likelihood of the coupling GLM (plastic under ``rule``, or static for None) on the bins before
    ``end_bin``, as a function of one parameter vector (see :meth:`pack`)."""

    def __init__(
        self,
        trains: SpikeTrains,
        rule: Rule | None,
        *,
        bin_ms: float,
        history_lags: int,
        coupling_tau_ms: float,
        likelihood: str,
        stimulus: np.ndarray | None = None,
        stimulus_lags: int = 0,
        free: Sequence[str] = (),
        held: Mapping[str, float] | None = None,
        bounds: Mapping[str, tuple[float, float]] | None = None,
        dt_ms: float = 0.1,
        method: str = "auto",
        end_bin: int | None = None,
        fitted: np.ndarray | None = None,
        samples_ms: np.ndarray | None = None,
    ):
        self.trains, self.rule, self.bin_ms, self.likelihood = trains, rule, bin_ms, likelihood
        self.history_lags, self.stimulus_lags = history_lags, stimulus_lags if stimulus is not None else 0
        self.n_bins = whole_bins(trains.duration_ms, bin_ms)
        self.end_bin = self.n_bins if end_bin is None else int(end_bin)
        end_ms = self.end_bin * bin_ms
        post = trains.post_ms
        counts = np.bincount((post[post < self.n_bins * bin_ms] // bin_ms).astype(np.int64), minlength=self.n_bins)
        self.counts = torch.as_tensor(counts[: self.end_bin], dtype=torch.float64)
        # the bins whose likelihood is maximised (held-out blocks excluded); None: every bin before end_bin
        self.fitted = None if fitted is None else np.asarray(fitted, dtype=bool)
        if self.fitted is not None and self.fitted.shape != (self.end_bin,):
            raise ShapeError(f"fitted must mark each of the {self.end_bin} bins, got shape {self.fitted.shape}")
        self.fitted_bins = None if self.fitted is None else torch.as_tensor(np.flatnonzero(self.fitted))
        fitted_counts = self.counts if self.fitted is None else self.counts * torch.as_tensor(self.fitted)
        self.fitted_counts = fitted_counts
        self.spiking = torch.as_tensor(np.flatnonzero(fitted_counts.numpy()))
        self.spiking_counts = self.counts[self.spiking]
        self.spike_bins = self.counts if likelihood == "poisson" else (self.counts > 0).to(torch.float64)
        self.constant = float(torch.lgamma(fitted_counts + 1).sum()) if likelihood == "poisson" else 0.0
        self.stimulus = None if stimulus is None else torch.as_tensor(stimulus[: self.end_bin].T, dtype=torch.float64)
        self.n_inputs = len(trains.pre_ms)
        # spikes that can act on a bin before end_bin: the coupling and the rule see only those
        pre = [t[t < end_ms] for t in trains.pre_ms]
        post_used = post[post < end_ms]
        flat = np.concatenate(pre)
        self.pre_unit = torch.as_tensor(np.concatenate([np.full(len(t), i) for i, t in enumerate(pre)]))
        first = np.floor(flat / bin_ms).astype(np.int64) + 1  # the first bin after the spike's own
        keep = first < self.end_bin
        self.kept = torch.as_tensor(np.flatnonzero(keep))
        self.first = torch.as_tensor(first[keep])
        self.decay = math.exp(-bin_ms / coupling_tau_ms)
        # blocks of the exponential filter: decay^-block at most e^50
        self.block = int(min(4096, max(1, 50.0 * coupling_tau_ms / bin_ms)))
        phase = np.exp(-(first[keep] * bin_ms - flat[keep]) / coupling_tau_ms)
        self.phase = torch.as_tensor(phase * block_scale(first[keep], self.decay, self.block))
        # spike history: every spiking bin b adds count_b * h_k to bin b + k
        spiking = np.flatnonzero(counts[: self.end_bin])
        targets = spiking[:, None] + np.arange(1, history_lags + 1)[None]
        inside = targets < self.end_bin
        self.history_targets = torch.as_tensor(targets[inside])
        self.history_lag = torch.as_tensor(np.broadcast_to(np.arange(history_lags), targets.shape)[inside])
        self.history_count = torch.as_tensor(np.broadcast_to(counts[spiking][:, None], targets.shape)[inside])
        self.free = list(free)
        self.held = dict(held or {})
        self.bounds = dict(bounds or {})
        self.low = np.array([self.bounds[n][0] for n in self.free])
        self.span = np.array([self.bounds[n][1] - self.bounds[n][0] for n in self.free])
        # each free rule parameter's typical size in unit-cube coordinates: its default's magnitude (at least
        # 1 % of its range); the optimiser and the Laplace Hessian work in these units
        defaults = rule.defaults() if rule is not None else {}
        self.typical = np.array(
            [min(1.0, max(abs(defaults[n]), 0.01 * self.span[i]) / self.span[i]) for i, n in enumerate(self.free)]
        )
        self.method = "static"
        self.events = None
        self.gathered = None
        if rule is not None:
            self.method = resolve_method(rule, method)
            grid = dt_ms if rule.clock_driven and self.method != "ode" else None
            self.events = Events(post_used, pre, grid_ms=grid, samples_ms=samples_ms)
            if self.method in ("scan", "ode") and not rule.clock_driven and parallel_form(rule):
                self.gathered = _Gathered(post_used, pre)
        sizes = [1, history_lags, self.stimulus_lags * (0 if stimulus is None else stimulus.shape[1])]
        sizes += [self.n_inputs, len(self.free)]
        self.sizes = sizes
        self.evaluations = 0

    @property
    def n_parameters(self) -> int:
        return int(sum(self.sizes))

    def split(self, theta: torch.Tensor) -> dict[str, torch.Tensor]:
        """The parameter vector as named parts: baseline, history, stimulus, w0, unit (rule, unit cube)."""
        parts = torch.split(theta, self.sizes)
        return dict(zip(("baseline", "history", "stimulus", "w0", "unit"), parts, strict=True))

    def pack(self, baseline, history, stimulus, w0, rule_values: Mapping[str, float] | None = None) -> np.ndarray:
        """A parameter vector from named values (rule values in physical units, mapped to the unit cube)."""
        given = rule_values or {}
        unit = [(float(given[n]) - self.low[i]) / self.span[i] for i, n in enumerate(self.free)]
        pieces = [np.atleast_1d(baseline), np.ravel(history), np.ravel(stimulus), np.ravel(w0), np.asarray(unit)]
        return np.concatenate([np.asarray(p, dtype=float).ravel() for p in pieces])

    def rule_values(self, unit) -> dict[str, torch.Tensor]:
        """Every rule parameter (held ones as numbers) with the free ones from unit-cube coordinates."""
        values: dict = dict(self.held)
        for i, name in enumerate(self.free):
            values[name] = float(self.low[i]) + float(self.span[i]) * unit[i]
        return values

    def efficacy(self, parts: Mapping[str, torch.Tensor]) -> torch.Tensor | None:
        """The rule's factor m(s^-) (times the response) at every presynaptic spike, flat; None for static."""
        if self.rule is None:
            return None
        assert self.events is not None
        values = self.rule_values(parts["unit"])
        tensors, _size = torch_backend.parameter_tensors(self.rule, values, torch.float64)
        if self.gathered is not None:
            return self.gathered.factors(self.rule, tensors)
        weights, response = weights_before(self.rule, tensors, self.events, method=self.method)
        rows, columns = self.events.pre_rows, self.events.pre_columns
        factor = weights[rows, columns]
        if response is not None:
            factor = factor * response[rows, columns]
        return factor

    def eta(self, theta: torch.Tensor) -> torch.Tensor:
        """The log rate (or logit) of every bin before ``end_bin``."""
        parts = self.split(theta)
        return self._without_baseline(parts) + parts["baseline"]

    def _without_baseline(self, parts: Mapping[str, torch.Tensor]) -> torch.Tensor:
        efficacy = parts["w0"][self.pre_unit]
        factor = self.efficacy(parts)
        if factor is not None:
            efficacy = efficacy * factor
        kicks = torch.zeros(self.end_bin, dtype=torch.float64).index_add(
            0, self.first, efficacy[self.kept] * self.phase
        )
        eta = exponential_filter(kicks, self.decay, self.block)  # a fresh tensor: the additions below are in place
        if self.history_lags:
            eta.index_add_(0, self.history_targets, parts["history"][self.history_lag] * self.history_count)
        if self.stimulus is not None and self.stimulus_lags:
            filters = parts["stimulus"].reshape(self.stimulus.shape[0], -1)  # [channels, lags]
            for lag in range(self.stimulus_lags):
                eta[lag:] += filters[:, lag] @ self.stimulus[:, : self.end_bin - lag]
        return eta

    def log_likelihood(self, theta: torch.Tensor) -> torch.Tensor:
        """Log-likelihood (nats) of the fitted bins before ``end_bin``."""
        parts = self.split(theta)
        rest = self._without_baseline(parts)
        baseline = parts["baseline"][0]
        if self.likelihood == "poisson":  # sum_t y_t eta_t over the spiking bins only; e^b outside the sum
            spikes = (self.spiking_counts * rest[self.spiking]).sum() + baseline * self.spiking_counts.sum()
            return spikes - torch.exp(baseline) * torch.exp(self._fitted(rest)).sum() - self.constant
        eta = rest + baseline
        return (eta[self.spiking]).sum() - torch.nn.functional.softplus(self._fitted(eta)).sum()

    def _fitted(self, values: torch.Tensor) -> torch.Tensor:
        return values if self.fitted_bins is None else values[self.fitted_bins]

    def value_and_gradient(self, theta: np.ndarray, scale: float = 1.0) -> tuple[float, np.ndarray]:
        """``-log L / scale`` and its gradient (for the optimiser)."""
        self.evaluations += 1
        leaves = torch.tensor(theta, dtype=torch.float64, requires_grad=True)
        loss = -self.log_likelihood(leaves) / scale
        (gradient,) = torch.autograd.grad(loss, leaves)
        value = float(loss.detach())
        if not (math.isfinite(value) and bool(torch.isfinite(gradient).all())):
            # a rate overflowed: a large finite value lets the line search step back
            return PENALTY, np.zeros_like(theta)
        return value, gradient.numpy()

    def trajectories(self, theta: np.ndarray) -> np.ndarray:
        """``w_i(t) = w0_i m_i(t)`` at the sample times the events were built with, ``[N, S]``."""
        parts = self.split(torch.as_tensor(theta, dtype=torch.float64))
        w0 = parts["w0"].numpy()
        if self.rule is None or self.events is None:
            return np.repeat(w0[:, None], 1, axis=1)
        values = self.rule_values(parts["unit"])
        tensors, _size = torch_backend.parameter_tensors(self.rule, values, torch.float64)
        with torch.no_grad():
            weights, _response = weights_before(self.rule, tensors, self.events, method=self.method)
        columns = torch.as_tensor(self.events.sample_columns)
        return w0[:, None] * torch.gather(weights, 1, columns).numpy()


# The inference ----------------------------------------------------------------------------------


def whole_bins(duration_ms: float, bin_ms: float) -> int:
    """The number of whole bins in a recording (a multiple of the bin up to rounding counts fully)."""
    return int(math.floor(duration_ms / bin_ms + 1e-9))


def _positive(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise DTypeError(f"{name} must be a number, got {value!r}")
    number = float(value)
    if not (math.isfinite(number) and number > 0):
        raise OutOfRangeError(f"{name} must be a finite number > 0, got {value}")
    return number


@dataclass
class _Request:
    rule: Rule
    free: list[str]
    held: dict[str, float]
    bounds: dict[str, tuple[float, float]]


def _requests(rules, free, fixed, dt_ms: float, bounds=None) -> list[_Request]:
    if isinstance(rules, (str, Rule)):
        rules = [rules]
    resolved = [resolve_rule(r) for r in rules]
    if not resolved:
        raise OutOfRangeError("no rules to infer; give at least one")
    names = [r.name for r in resolved]
    if len(set(names)) != len(names):
        raise NeurofwpError(f"rules are listed twice: {', '.join(names)}")
    if STATIC in names:
        raise NeurofwpError(f"a rule may not be called {STATIC!r}: that is the name of the static GLM")
    for mapping, what in ((free, "free"), (fixed, "fixed"), (bounds, "bounds")):
        if mapping is not None:
            if not isinstance(mapping, Mapping):
                raise DTypeError(f"{what} must map rule names to parameters, got {type(mapping).__name__}")
            for key in mapping:
                if key not in names:
                    raise UnknownNameError(f"rule in {what}", key, names)
    requests = []
    for rule in resolved:
        if any(t.source == "modulator" for t in rule.traces):
            raise NeurofwpError(f"rule {rule.name!r} reads a neuromodulator, which a spike recording does not hold")
        if not rule.changes_weight and rule.response is None:
            raise NeurofwpError(f"rule {rule.name!r} changes neither w nor a response: it is the static GLM")
        chosen_fixed = dict((fixed or {}).get(rule.name, {}))
        held_fixed = {n: check_parameter_value(rule.parameter(n), v) for n, v in chosen_fixed.items()}
        names_free = (free or {}).get(rule.name)
        if names_free is None:
            chosen = [n for n in rule.free if n not in held_fixed]
        else:
            chosen = [names_free] if isinstance(names_free, str) else list(names_free)
        for name in chosen:
            rule.parameter(name)
            if name in held_fixed:
                raise NeurofwpError(f"rule {rule.name!r}: parameter {name} cannot be both free and fixed")
        if len(set(chosen)) != len(chosen):
            raise NeurofwpError(f"rule {rule.name!r}: free parameters are listed twice: {', '.join(chosen)}")
        held = {**{k: v for k, v in rule.defaults().items() if k not in chosen}, **held_fixed}
        if not chosen:
            raise NeurofwpError(f"rule {rule.name!r}: no free parameters left to fit")
        limits = fit_bounds(rule, chosen, (bounds or {}).get(rule.name))
        if rule.clock_driven:
            check_time_step(rule, dt_ms, {**held, **{n: limits[n][0] for n in chosen}})
        requests.append(_Request(rule, chosen, held, limits))
    return requests


def _minimise(model: PlasticGLM, start: np.ndarray, scale: float, max_iterations: int):
    """L-BFGS-B from ``start`` (unit-cube rule coordinates); the optimiser sees each rule parameter in units of
    its typical size (:attr:`PlasticGLM.typical`), so that its first steps change an amplitude by about its
    default rather than across its whole range."""
    n_glm = model.n_parameters - len(model.free)
    stretch = np.concatenate([np.ones(n_glm), model.typical])

    def objective(x: np.ndarray) -> tuple[float, np.ndarray]:
        if not np.all(np.isfinite(x)):  # a line search that overflowed: step back
            return PENALTY, np.zeros_like(x)
        value, gradient = model.value_and_gradient(x * stretch, scale)
        return value, gradient * stretch

    limits = [(None, None)] * n_glm + [(0.0, 1.0 / t) for t in model.typical]
    outcome = scipy.optimize.minimize(
        objective, start / stretch, jac=True, method="L-BFGS-B", bounds=limits, options={"maxiter": max_iterations},
    )  # fmt: skip
    theta = np.asarray(outcome.x) * stretch
    theta[n_glm:] = np.clip(theta[n_glm:], 0.0, 1.0)
    return theta, float(outcome.fun)


EARLY_FRACTION = 0.1  # the plastic fits start from a static GLM of this first part of the training bins
EARLY_SPIKES_PER_PARAMETER = 20  # ... extended until it holds this many postsynaptic spikes per GLM parameter


def _early_start(static: PlasticGLM, theta: np.ndarray, max_iterations: int, options) -> np.ndarray:
    """The GLM parameters every plastic fit starts from: the static GLM refitted (from ``theta``) on the first
    tenth (:data:`EARLY_FRACTION`) of the bins before the last held-out block, held-out blocks among them
    masked, or longer until its training bins hold :data:`EARLY_SPIKES_PER_PARAMETER` spikes per parameter
    (the whole training part at most).

    Every weight trajectory starts at 1, so w0 is the coupling at the recording's start. The static fit over
    the whole training part estimates the average coupling instead, which can have the other sign: weights
    depressed through zero (as additive rules allow) average below zero. From there the joint fit explains
    the falling coupling by w0 < 0 and weights that grow (potentiation amplitudes at their upper bounds), a
    mirror optimum far below the true one (measured on triplet data: -7185 nats against -7100)."""
    counts = static.fitted_counts.numpy()
    needed = max(EARLY_FRACTION * counts.sum(), EARLY_SPIKES_PER_PARAMETER * static.n_parameters)
    end = max(int(math.ceil(EARLY_FRACTION * static.end_bin)), int(np.searchsorted(np.cumsum(counts), needed)) + 1)
    if end >= static.end_bin:
        return theta
    fitted = None if static.fitted is None else static.fitted[:end]
    early = PlasticGLM(static.trains, None, end_bin=end, fitted=fitted, **options)
    refitted, _value = _minimise(early, theta, max(float(early.fitted_counts.sum()), 1.0), max_iterations)
    return refitted if np.all(np.isfinite(refitted)) else theta


def start_points(rule: Rule, model: PlasticGLM, starts: int, seed: int) -> list[np.ndarray]:
    """Rule-parameter starts in the unit cube: the quiescent point (every free parameter that is not a time
    at the value of its bounds nearest 0, times at their defaults: no weight change for rules whose
    amplitudes vanish there, so the fit starts from the static GLM's likelihood), then the rule's defaults,
    then uniform draws from ``seed`` between the lower bound and twice each parameter's typical size
    (:attr:`PlasticGLM.typical`: its default, at least 1 % of its range)."""
    defaults = rule.defaults()
    quiet = []
    for i, name in enumerate(model.free):
        low, high = model.low[i], model.low[i] + model.span[i]
        value = defaults[name] if rule.parameter(name).is_time else min(max(0.0, low), high)
        quiet.append(value)
    points = [np.array([(v - model.low[i]) / model.span[i] for i, v in enumerate(quiet)])]
    points.append(np.clip([(defaults[n] - model.low[i]) / model.span[i] for i, n in enumerate(model.free)], 0, 1))
    rng = np.random.default_rng(seed)
    high = np.minimum(1.0, 2.0 * model.typical)  # up to twice each parameter's typical size
    points += [rng.uniform(0, 1, len(model.free)) * high for _ in range(max(0, starts - 2))]
    return points[:starts]


def _laplace(model: PlasticGLM, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Standard deviations (physical units) and statuses of the free rule parameters at ``theta``."""
    k = len(model.free)
    n = model.n_parameters
    sd = np.full(k, np.nan)
    unit = theta[n - k :]
    flags = np.where(unit <= AT_BOUND_TOLERANCE, -1, np.where(unit >= 1 - AT_BOUND_TOLERANCE, 1, 0))
    status = np.array(["at bound" if f else "ok" for f in flags], dtype=object)
    if k == 0 or not np.any(flags == 0):
        return sd, status.astype(str)
    keep = np.concatenate([np.arange(n - k), n - k + np.flatnonzero(flags == 0)])
    # in the optimiser's units (rule parameters over their typical size): comparable curvatures
    stretch = np.concatenate([np.ones(n - k), model.typical])
    hessian = np.empty((len(keep), len(keep)))
    for j, index in enumerate(keep):
        step = HESSIAN_STEP * stretch[index]
        ahead, behind = theta.copy(), theta.copy()
        ahead[index] += step
        behind[index] -= step
        if index >= n - k:  # stay inside the unit cube
            ahead[index], behind[index] = min(ahead[index], 1.0), max(behind[index], 0.0)
        forward = model.value_and_gradient(ahead)[1][keep] * stretch[keep]
        backward = model.value_and_gradient(behind)[1][keep] * stretch[keep]
        hessian[:, j] = (forward - backward) / ((ahead[index] - behind[index]) / stretch[index])
    symmetric = 0.5 * (hessian + hessian.T)
    if not np.all(np.isfinite(symmetric)):
        status[flags == 0] = "singular"
        return sd, status.astype(str)
    values, vectors = np.linalg.eigh(symmetric)
    largest = max(float(np.max(np.abs(values))), np.finfo(float).tiny)
    good = values > FLAT_TOLERANCE * largest
    loading = (vectors[:, ~good] ** 2).sum(axis=1)
    covariance = (vectors[:, good] / values[good]) @ vectors[:, good].T
    for j, index in enumerate(keep):
        if index < n - k:
            continue
        i = index - (n - k)
        if loading[j] > FLAT_LOADING:
            status[i] = "singular"
        else:
            sd[i] = model.span[i] * model.typical[i] * math.sqrt(covariance[j, j])
    return sd, status.astype(str)


def infer_rules(
    recording: Recording,
    rules: Sequence[Rule | str],
    *,
    post: str | None = None,
    pre: Sequence[str] | None = None,
    bin_ms: float = 1.0,
    history_lags: int = 5,
    stimulus_lags: int = 10,
    coupling_tau_ms: float = 5.0,
    likelihood: str = "poisson",
    free: Mapping[str, Sequence[str]] | None = None,
    fixed: Mapping[str, Mapping[str, float]] | None = None,
    bounds: Mapping[str, Mapping[str, tuple[float, float]]] | None = None,
    starts: int = 3,
    held_out: float = 0.2,
    held_out_blocks: int = 1,
    seed: int = 0,
    dt_ms: float = 0.1,
    max_iterations: int = 200,
    uncertainty: bool = True,
    trajectory_points: int = 400,
    method: str = "auto",
    show_progress: bool = False,
) -> xr.Dataset:
    r"""Fit the plastic-coupling GLM of every rule and the static GLM; compare them on held-out time.

    Args:
        recording: the postsynaptic neuron and its presynaptic trains (:class:`Recording`).
        rules: :class:`~neurofwp.plasticity.definition.Rule` objects, built-in names or rule files.
        post, pre: which trains are post- and presynaptic (:func:`check_trains`).
        bin_ms: the bin width of the GLM; history_lags: bins of spike history (0: none);
            stimulus_lags: bins of stimulus filter where the recording has a stimulus.
        coupling_tau_ms: time constant of the exponential coupling kernel.
        likelihood: ``"poisson"`` (log link) or ``"bernoulli"`` (logit).
        free, fixed: per rule name, the free parameters (default: the rule's ``free`` minus fixed)
            and fixed values (others keep the rule's defaults); bounds: per rule name, ``name -> (low, high)``
            overriding the rule's bounds of free parameters (checked as :func:`neurofwp.fit.fit` does).
        starts: rule-parameter starts per rule (:func:`start_points`: the quiescent point, the defaults,
            then uniform within the bounds from ``seed``).
        held_out: the fraction of the recording kept for the held-out comparison: the end of each of
            ``held_out_blocks`` equal segments (1: the recording's end; module docstring).
        dt_ms: Euler step of clock-driven rules under ``method`` ``"scan"`` or ``"loop"`` (spikes are put on
            this grid for them); the default ``"ode"`` solves their drift exactly and ignores it.
        uncertainty: Laplace intervals of the rule parameters.
        trajectory_points: samples of each weight trajectory in the result.
        method: ``"auto"``, ``"ode"``, ``"scan"`` or ``"loop"`` (see :func:`weights_before`).

    Returns a Dataset over ``model`` (each rule's name, then ``static``): ``bits_per_spike`` (held
    out), ``train_bits_per_spike``, ``log_likelihood`` and ``held_out_log_likelihood`` (nats),
    ``n_parameters``, the likelihood-ratio test against the static GLM (``lr_statistic``,
    ``lr_dof``, ``lr_p_value``); every rule parameter as a variable named after it (NaN where the
    model lacks it) with ``<name>_ci95_low``, ``<name>_ci95_high``, ``<name>_laplace_sd``,
    ``<name>_laplace_status`` and ``<name>_free``; ``w0`` (model, input), ``history`` (model, lag),
    and the weight trajectories ``weight`` (model, input, time) :math:`w_i(t) = w_{0,i} m_i(t)`.
    """
    if likelihood not in LIKELIHOODS:
        raise UnknownNameError("likelihood", likelihood, LIKELIHOODS)
    if method not in METHODS:
        raise UnknownNameError("method", method, METHODS)
    bin_ms = _positive("bin_ms", bin_ms)
    coupling_tau_ms = _positive("coupling_tau_ms", coupling_tau_ms)
    dt_ms = _positive("dt_ms", dt_ms)
    history_lags = _positive_int("history_lags", history_lags, 0)
    stimulus_lags = _positive_int("stimulus_lags", stimulus_lags, 1)
    starts = _positive_int("starts", starts, 1)
    seed = _positive_int("seed", seed, 0)
    max_iterations = _positive_int("max_iterations", max_iterations, 1)
    trajectory_points = _positive_int("trajectory_points", trajectory_points, 2)
    if isinstance(held_out, bool) or not isinstance(held_out, numbers.Real):
        raise DTypeError(f"held_out must be a number, got {held_out!r}")
    if not 0.05 <= float(held_out) <= 0.9:
        raise OutOfRangeError(f"held_out must lie in [0.05, 0.9], got {held_out}")
    held_out_blocks = _positive_int("held_out_blocks", held_out_blocks, 1)
    trains = check_trains(recording, post, pre)
    requests = _requests(rules, free, fixed, dt_ms, bounds)
    n_bins = whole_bins(trains.duration_ms, bin_ms)
    if n_bins < 10 * max(history_lags, 1) * held_out_blocks:
        raise RecordingError(
            f"{trains.source}: {n_bins} bins of {bin_ms:g} ms are too few"
            + (f" for {held_out_blocks} held-out blocks" if held_out_blocks > 1 else "")
        )
    held = held_out_bins(n_bins, float(held_out), held_out_blocks)
    split = int(np.flatnonzero(~held)[-1]) + 1  # the training models end where the last held-out block begins
    fitted = None if held_out_blocks == 1 else ~held[:split]
    stimulus = None
    if recording.stimulus is not None:
        bare = dataclasses.replace(recording, input_spike_times_s={})
        binned, _counts = design(bare, bin_ms, 1)
        # design() counts bins from seconds; align to this model's n_bins (a bin more or less at the end)
        stimulus = np.pad(binned, ((0, max(0, n_bins - len(binned))), (0, 0)))[:n_bins]
    options = dict(
        bin_ms=bin_ms, history_lags=history_lags, coupling_tau_ms=coupling_tau_ms, likelihood=likelihood,
        stimulus=stimulus, stimulus_lags=stimulus_lags, dt_ms=dt_ms,
    )  # fmt: skip
    null = PlasticGLM(trains, None, **options)
    train_spikes, test_spikes = float(null.spike_bins[~held].sum()), float(null.spike_bins[held].sum())
    if train_spikes == 0 or test_spikes == 0:
        raise RecordingError(f"{trains.source}: no postsynaptic spikes in the training or the held-out part")
    samples_ms = np.linspace(0.0, n_bins * bin_ms, trajectory_points)
    from neurofwp import recordings  # the package's bar, which a caller may replace (neurofwp.recordings.tqdm)

    bar = recordings.tqdm(total=1 + starts * len(requests), desc="infer-rule", unit="fit", disable=not show_progress)
    began = time.perf_counter()

    static_train = PlasticGLM(trains, None, end_bin=split, fitted=fitted, **options)
    start = np.zeros(static_train.n_parameters)
    start[0] = _homogeneous(static_train, likelihood)
    static_theta, _value = _minimise(static_train, start, train_spikes, max_iterations)
    bar.update()
    early_theta = _early_start(static_train, static_theta, max_iterations, options)
    fits = []
    for request in requests:
        model = PlasticGLM(
            trains, request.rule, end_bin=split, fitted=fitted, free=request.free, held=request.held,
            bounds=request.bounds, method=method, **options,
        )  # fmt: skip
        units = start_points(request.rule, model, starts, seed)
        best = None
        for unit in units:
            theta, value = _minimise(model, np.concatenate([early_theta, unit]), train_spikes, max_iterations)
            if best is None or value < best[1]:
                best = (theta, value)
            bar.update()
        assert best is not None
        # the quiescent start with the static GLM's own parameters has the static likelihood (for rules whose
        # amplitudes vanish there): no plastic fit ends below it
        quiet = np.concatenate([static_theta, units[0]])
        if model.value_and_gradient(quiet, train_spikes)[0] < best[1]:
            theta, value = _minimise(model, quiet, train_spikes, max_iterations)
            if value < best[1]:
                best = (theta, value)
        fits.append((request, model, best[0]))
    bar.close()
    seconds = time.perf_counter() - began

    # every model on the whole recording: training and held-out log-likelihoods, trajectories, intervals
    homogeneous = _homogeneous(static_train, likelihood)
    null_theta = np.zeros(null.n_parameters)
    null_theta[0] = homogeneous
    null_eta = null.eta(torch.as_tensor(null_theta)).detach()
    null_terms = _terms(null, null_eta)
    rows = []
    for request, model, theta in [*fits, (None, static_train, static_theta)]:
        rule = None if request is None else request.rule
        whole = PlasticGLM(
            trains, rule, free=model.free, held=model.held, bounds=model.bounds, method=method,
            samples_ms=samples_ms if rule is not None else None, **options,
        )  # fmt: skip
        with torch.no_grad():
            terms = _terms(whole, whole.eta(torch.as_tensor(theta)))
        train_ll, test_ll = float(terms[~held].sum()), float(terms[held].sum())
        row = {
            "request": request,
            "theta": theta,
            "parts": {k: v.numpy() for k, v in whole.split(torch.as_tensor(theta)).items()},
            "train_ll": train_ll,
            "test_ll": test_ll,
            "bits": (test_ll - float(null_terms[held].sum())) / (test_spikes * math.log(2)),
            "train_bits": (train_ll - float(null_terms[~held].sum())) / (train_spikes * math.log(2)),
            "k": model.n_parameters,
            "method": whole.method,
            "trajectory": whole.trajectories(theta) if rule is not None else None,
        }
        if request is not None:
            row["values"] = {
                n: float(v) for n, v in model.rule_values(theta[model.n_parameters - len(model.free) :]).items()
            }
            row["sd"], row["status"] = (
                _laplace(model, theta)
                if uncertainty
                else (np.full(len(model.free), np.nan), np.array(["not computed"] * len(model.free)))
            )
        rows.append(row)
    return _dataset(
        rows, requests, trains, recording, samples_ms, held,
        dict(
            bin_ms=bin_ms, history_lags=history_lags, stimulus_lags=stimulus_lags if stimulus is not None else 0,
            coupling_tau_ms=coupling_tau_ms, likelihood=likelihood, held_out=float(held_out),
            held_out_blocks=held_out_blocks, starts=starts,
            seed=seed, dt_ms=dt_ms, max_iterations=max_iterations, method=method, fit_seconds=seconds,
        ),
    )  # fmt: skip


def held_out_bins(n_bins: int, held_out: float, blocks: int = 1) -> np.ndarray:
    """The held-out bins (True) of a recording of ``n_bins``: the last ``held_out`` of each of ``blocks``
    equal segments, at least one bin each."""
    held = np.zeros(n_bins, dtype=bool)
    edges = np.round(np.linspace(0, n_bins, blocks + 1)).astype(np.int64)
    for begin, end in zip(edges[:-1], edges[1:], strict=True):
        held[min(begin + int(round((end - begin) * (1.0 - held_out))), end - 1) : end] = True
    if held.all() or not held.any():
        raise RecordingError(f"{n_bins} bins leave no training or no held-out bins")
    return held


def held_out_intervals(held: np.ndarray, bin_ms: float) -> np.ndarray:
    """The held-out blocks as ``[start, end]`` times in s, ``[blocks, 2]``."""
    change = np.flatnonzero(np.diff(np.concatenate([[0], held.astype(np.int8), [0]])))
    return change.reshape(-1, 2) * bin_ms / 1000.0


def _homogeneous(model: PlasticGLM, likelihood: str) -> float:
    """The log rate (or logit) of a homogeneous process fitted to the model's fitted bins."""
    if likelihood == "poisson":
        return math.log(max(float(model._fitted(model.counts).mean()), 1e-12))
    p = min(max(float(model._fitted(model.spike_bins).mean()), 1e-12), 1 - 1e-12)
    return math.log(p / (1 - p))


def _terms(model: PlasticGLM, eta: torch.Tensor) -> np.ndarray:
    """Per-bin log-likelihood (nats)."""
    if model.likelihood == "poisson":
        terms = model.counts * eta - torch.exp(eta) - torch.lgamma(model.counts + 1)
    else:
        terms = model.spike_bins * eta - torch.nn.functional.softplus(eta)
    return terms.detach().numpy()


def _dataset(rows, requests, trains: SpikeTrains, recording: Recording, samples_ms, held, settings) -> xr.Dataset:
    models = [r.rule.name for r in requests] + [STATIC]
    n_models, n_inputs = len(models), len(trains.names)
    static = rows[-1]
    statistic = np.full(n_models, np.nan)
    dof = np.zeros(n_models, dtype=np.int64)
    p_value = np.full(n_models, np.nan)
    for m, request in enumerate(requests):
        statistic[m] = 2.0 * (rows[m]["train_ll"] - static["train_ll"])
        dof[m] = len(request.free)
        p_value[m] = float(scipy.stats.chi2.sf(max(statistic[m], 0.0), dof[m])) if dof[m] else np.nan
    weight = np.empty((n_models, n_inputs, len(samples_ms)))
    for m, row in enumerate(rows):
        weight[m] = row["trajectory"] if row["trajectory"] is not None else row["parts"]["w0"][:, None]
    lags = settings["history_lags"]
    variables: dict[str, tuple] = {
        "bits_per_spike": ("model", [r["bits"] for r in rows], {
            "units": "bit/spike", "long_name": "held-out log-likelihood gain over a homogeneous rate"}),
        "train_bits_per_spike": ("model", [r["train_bits"] for r in rows], {"units": "bit/spike"}),
        "log_likelihood": ("model", [r["train_ll"] for r in rows], {
            "units": "nat", "long_name": "log-likelihood of the training part"}),
        "held_out_log_likelihood": ("model", [r["test_ll"] for r in rows], {"units": "nat"}),
        "n_parameters": ("model", np.array([r["k"] for r in rows], dtype=np.int64), {
            "units": "1", "long_name": "fitted parameters (GLM and free rule parameters)"}),
        "lr_statistic": ("model", statistic, {
            "units": "1", "long_name": "2 (log L plastic - log L static), training part; NaN for static"}),
        "lr_dof": ("model", dof, {"units": "1", "long_name": "free rule parameters (chi-square degrees of freedom)"}),
        "lr_p_value": ("model", p_value, {"units": "1", "long_name": "chi-square p-value of plastic vs static"}),
        "method": ("model", np.array([r["method"] for r in rows], dtype=str), {
            "long_name": "how the weight trajectory was evaluated (scan, loop, static)"}),
        "baseline": ("model", [float(r["parts"]["baseline"][0]) for r in rows], {
            "units": "1", "long_name": "baseline log rate per bin (Poisson) or logit (Bernoulli)"}),
        "history": (("model", "lag"), np.stack([r["parts"]["history"] for r in rows]).reshape(n_models, lags), {
            "units": "1", "long_name": "spike-history filter (per postsynaptic spike lag bins back)"}),
        "w0": (("model", "input"), np.stack([r["parts"]["w0"] for r in rows]), {
            "units": "1", "long_name": "initial coupling weight (log-rate change per unit kernel)"}),
        "weight": (("model", "input", "time"), weight, {
            "units": "1", "long_name": "inferred coupling weight w_i(t) = w0_i m_i(t)"}),
    }  # fmt: skip
    names: list[str] = []
    for request in requests:
        names += [p.name for p in request.rule.parameters if p.name not in names]
    for name in names:
        if name in variables:
            raise NeurofwpError(f"rule parameter {name!r} has the name of a result variable; rename it in the rule")
        value, low, high, sd = (np.full(n_models, np.nan) for _ in range(4))
        status = np.full(n_models, "", dtype=object)
        is_free = np.zeros(n_models, dtype=np.int8)
        unit = "1"
        for m, request in enumerate(requests):
            if name not in request.rule.parameter_names:
                continue
            unit = "ms" if request.rule.parameter(name).is_time else "1"
            value[m] = rows[m]["values"][name]
            if name in request.free:
                i = request.free.index(name)
                is_free[m] = 1
                sd[m] = rows[m]["sd"][i]
                status[m] = rows[m]["status"][i]
                low[m], high[m] = value[m] - Z95 * sd[m], value[m] + Z95 * sd[m]
            else:
                status[m] = "fixed"
        variables[name] = ("model", value, {"units": unit, "long_name": f"rule parameter {name} (fitted or fixed)"})
        variables[f"{name}_ci95_low"] = ("model", low, {
            "units": unit, "long_name": "Laplace 95 % interval, lower end (estimate - 1.96 sd)"})  # fmt: skip
        variables[f"{name}_ci95_high"] = ("model", high, {
            "units": unit, "long_name": "Laplace 95 % interval, upper end (estimate + 1.96 sd)"})  # fmt: skip
        variables[f"{name}_laplace_sd"] = ("model", sd, {"units": unit, "long_name": "Laplace standard deviation"})
        variables[f"{name}_laplace_status"] = ("model", status.astype(str), {
            "meanings": "ok; at bound (no interval); singular (flat or negative curvature, no interval); "
            "fixed; empty: the model lacks the parameter"})  # fmt: skip
        variables[f"{name}_free"] = ("model", is_free, {"units": "1", "long_name": "1 where the parameter was fitted"})
    attrs = {
        "source": trains.source,
        "recording": recording.name,
        "post": trains.post_name,
        "inputs": " ".join(trains.names),
        "rules": " ".join(r.rule.name for r in requests),
        **{f"rule_toml__{r.rule.name}": r.rule.to_toml() for r in requests},
        **{f"free__{r.rule.name}": " ".join(r.free) for r in requests},
        **settings,
        # the held-out blocks' [start, end] times, flat; test_start_s: where the first begins
        "held_out_intervals_s": held_out_intervals(held, settings["bin_ms"]).ravel(),
        "test_start_s": float(held_out_intervals(held, settings["bin_ms"])[0, 0]),
        "duration_s": trains.duration_ms / 1000.0,
        "backend": "torch",
        "neurofwp_version": neurofwp.__version__,
    }
    return xr.Dataset(
        variables,
        coords={
            "model": models,
            "input": list(trains.names),
            "time": ("time", np.asarray(samples_ms) / 1000.0, {"units": "s"}),
            "lag": ("lag", np.arange(1, lags + 1), {"units": "bin"}),
        },
        attrs=attrs,
    )


# Sampling from the model ------------------------------------------------------------------------


def simulate(
    rule: Rule | str | None,
    pre_times_s: Mapping[str, np.ndarray],
    duration_s: float,
    *,
    baseline: float,
    w0: Sequence[float],
    history: Sequence[float] = (),
    parameters: Mapping[str, float] | None = None,
    bin_ms: float = 1.0,
    coupling_tau_ms: float = 5.0,
    likelihood: str = "poisson",
    dt_ms: float = 0.1,
    seed: int = 0,
    name: str = "simulated",
) -> Recording:
    r"""Postsynaptic spikes drawn from the plastic-coupling GLM itself (the model :func:`infer_rules` fits).

    Bin by bin: :math:`\eta_t` from the baseline, the history filter and the couplings; the count
    :math:`y_t \sim \text{Poisson}(e^{\eta_t})` (or a Bernoulli spike with probability
    :math:`\sigma(\eta_t)`), its spikes placed uniformly within the bin; then the bin's pre and post
    spikes, in time order, step the rule (one parameter set, all units side by side), which
    fixes each presynaptic spike's weight :math:`w_{0,i} m_i(s^-)` for the bins after it.
    ``rule`` None draws from the static GLM. ``parameters``: the rule's values (missing ones take
    its defaults). The generator is ``numpy.random.default_rng(seed)``; no global state is used.
    """
    if likelihood not in LIKELIHOODS:
        raise UnknownNameError("likelihood", likelihood, LIKELIHOODS)
    rule = None if rule is None else resolve_rule(rule)
    rng = np.random.default_rng(seed)
    names = list(pre_times_s)
    pre_ms = [np.sort(np.asarray(pre_times_s[n], dtype=float)) * 1000.0 for n in names]
    weights0 = np.asarray(w0, dtype=float)
    lags = np.asarray(history, dtype=float)
    if weights0.shape != (len(names),):
        raise OutOfRangeError(f"w0 needs one value per presynaptic train ({len(names)}), got shape {weights0.shape}")
    n_bins = whole_bins(duration_s * 1000.0, bin_ms)
    decay = math.exp(-bin_ms / coupling_tau_ms)
    kicks = np.zeros(n_bins + 1)
    coupling = 0.0
    counts = np.zeros(n_bins)
    post: list[float] = []
    # pre spikes by bin: (time, unit), in time order
    flat = np.concatenate(pre_ms) if names else np.zeros(0)
    units = np.concatenate([np.full(len(t), i) for i, t in enumerate(pre_ms)]) if names else np.zeros(0, int)
    order = np.argsort(flat, kind="stable")
    flat, units = flat[order], units[order]
    bins = np.floor(flat / bin_ms).astype(np.int64)
    starts = np.searchsorted(bins, np.arange(n_bins + 1))
    state = None if rule is None else _RuleState(rule, parameters, len(names), dt_ms)
    for t in range(n_bins):
        coupling = decay * coupling + kicks[t]
        eta = baseline + coupling
        for k, h in enumerate(lags, start=1):
            if t - k >= 0:
                eta += h * counts[t - k]
        if eta > RUNAWAY:
            raise OutOfRangeError(
                f"the simulated log rate reached {eta:.3g} per bin at {t * bin_ms / 1000.0:g} s: the couplings ran "
                "away (lower the rule's amplitudes or w0)"
            )
        if likelihood == "poisson":
            count = int(rng.poisson(math.exp(eta)))
        else:
            count = int(rng.uniform() < 1.0 / (1.0 + math.exp(-eta)))
        counts[t] = count
        new_post = np.sort(rng.uniform(t * bin_ms, (t + 1) * bin_ms, count))
        post.extend(new_post.tolist())
        inside = slice(starts[t], starts[t + 1])
        events = [(s, PRE, int(u)) for s, u in zip(flat[inside], units[inside], strict=True)]
        events += [(s, POST, -1) for s in new_post]
        # the order the likelihood uses: time (on the Euler grid for a clock-driven rule), then pre before post
        grid = dt_ms if rule is not None and rule.clock_driven else None
        for s, kind, unit in sorted(events, key=lambda e: (e[0] if grid is None else round(e[0] / grid), e[1])):
            factor = 1.0 if state is None else state.step(s, kind, unit)
            if kind == PRE:
                first = t + 1
                phase = math.exp(-(first * bin_ms - s) / coupling_tau_ms)
                kicks[first] += weights0[unit] * factor * phase
    return Recording(
        np.asarray(post) / 1000.0,
        duration_s,
        input_spike_times_s={n: t / 1000.0 for n, t in zip(names, pre_ms, strict=True)},
        source=f"{name} (GLM, {'static' if rule is None else rule.name})",
        name=name,
    )


class _RuleState:
    """One parameter set of a rule, every unit side by side, stepped event by event (the backend's steps)."""

    def __init__(self, rule: Rule, parameters: Mapping[str, float] | None, count: int, dt_ms: float):
        self.rule = rule
        self.values, _size = torch_backend.parameter_tensors(rule, parameters, torch.float64)
        self.clock = rule.clock_driven
        self.dt_ms = dt_ms
        if self.clock:
            check_time_step(rule, dt_ms, parameters)
        self.weight = torch.ones(count, 1, dtype=torch.float64)
        self.rests = {t.name: torch_backend._rest(t, self.values, count, 1, torch.float64, None) for t in rule.traces}
        self.traces = dict(self.rests)
        self.taus = {t.name: self.values[t.tau] for t in rule.traces}
        self.ratios = {n: 1.0 - dt_ms / tau for n, tau in self.taus.items()}
        self.time = 0.0  # ms, or Euler steps for a clock-driven rule
        self.count = count

    def step(self, time_ms: float, kind: int, unit: int) -> float:
        """Advance to ``time_ms``, apply one event (PRE of ``unit``, or POST to every unit); the factor
        ``m(s^-)`` (times the response) of a PRE event, else 1."""
        rule, values = self.rule, self.values
        with torch.no_grad():
            now = float(np.rint(time_ms / self.dt_ms)) if self.clock else time_ms
            gap = torch.full((self.count, 1), now - self.time, dtype=torch.float64)
            self.time = now
            if self.clock:
                self.weight, self.traces = torch_backend._advance_clock(
                    rule, values, self.weight, self.traces, self.ratios, gap.to(torch.int64), self.dt_ms
                )
            else:
                self.traces = {
                    n: self.rests[n] + (tr - self.rests[n]) * torch_backend._relaxation(gap, self.taus[n])
                    for n, tr in self.traces.items()
                }
            kinds = torch.full((self.count, 1), SAMPLE, dtype=torch.int64)
            if kind == PRE:
                kinds[unit] = PRE
            else:
                kinds[:] = POST
            before = float(self.weight[unit, 0]) if kind == PRE else 1.0
            record = rule.response is not None and kind == PRE
            self.weight, self.traces, response = torch_backend._spike(
                rule, values, self.weight, self.traces, kinds, record
            )
            if record and response is not None:
                before *= float(response[unit, 0])
        return before
