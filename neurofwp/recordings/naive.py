r"""The plastic-coupling GLM's log-likelihood written plainly: the reference of :mod:`neurofwp.recordings.plastic`.

One presynaptic unit at a time, spike by spike in time order, the rule steps through the
torch backend's own event and drift steps (``_spike``, ``_relaxation``, ``_advance_clock``),
and every presynaptic spike's weight is read just before it; then the log rate of every bin is
summed term by term. Slow (a Python step per spike and per bin) and meant for short
recordings: the fast path (prefix scans over all units at once) is tested against it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import torch

from neurofwp.plasticity import torch_backend
from neurofwp.plasticity.expressions import evaluate
from neurofwp.plasticity.rules import Rule
from neurofwp.protocols import POST, PRE
from neurofwp.recordings import trajectories
from neurofwp.recordings.plastic import SpikeTrains

# The kernel is summed to where it has decayed to e^-40 (below float64 resolution relative to 1).
SPAN = 40.0


def presynaptic_factors(
    rule: Rule, values: Mapping[str, torch.Tensor], post_ms: np.ndarray, pre_ms: np.ndarray, dt_ms: float | None
) -> list[torch.Tensor]:
    """The rule's factor :math:`m(s^-)` (times the ``response``, if any) at each of one unit's presynaptic
    spikes, stepping spike by spike from :math:`m = 1`; ``dt_ms`` is the Euler grid of a clock-driven rule,
    or None for its drift integrated exactly over each gap (:func:`gap_log_factor`)."""
    events = sorted([(float(t), PRE) for t in pre_ms] + [(float(t), POST) for t in post_ms])
    if dt_ms is not None:  # on the Euler grid, pre before post within a step
        events = sorted((float(np.rint(t / dt_ms)), kind) for t, kind in events)
    weight = torch.ones(1, 1, dtype=torch.float64)
    rests = {t.name: torch_backend._rest(t, values, 1, 1, torch.float64, None) for t in rule.traces}
    traces = dict(rests)
    taus = {t.name: values[t.tau] for t in rule.traces}
    factors = []
    now = events[0][0] if events else 0.0
    for time, kind in events:
        gap = time - now
        now = time
        if dt_ms is not None:
            ratios = {name: 1.0 - dt_ms / tau for name, tau in taus.items()}
            steps = torch.full((1, 1), int(gap), dtype=torch.int64)
            weight, traces = torch_backend._advance_clock(rule, values, weight, traces, ratios, steps, dt_ms)
        else:
            if rule.clock_driven:
                weight = weight * torch.exp(gap_log_factor(rule, values, traces, gap))
            elapsed = torch.full((1, 1), gap, dtype=torch.float64)
            traces = {
                name: rests[name] + (tr - rests[name]) * torch_backend._relaxation(elapsed, taus[name])
                for name, tr in traces.items()
            }
        before = weight[0, 0]
        kinds = torch.full((1, 1), kind, dtype=torch.int64)
        record = rule.response is not None and kind == PRE
        weight, traces, response = torch_backend._spike(rule, values, weight, traces, kinds, record)
        if kind == PRE:
            factors.append(before * response[0, 0] if record and response is not None else before)
    return factors


def gap_log_factor(rule: Rule, values: Mapping[str, torch.Tensor], traces: Mapping[str, torch.Tensor], gap_ms: float):
    r""":math:`\int_0^\Delta g(\text{traces}(s))\,ds` of the drift :math:`dw/dt = w\,g` over one gap of
    ``gap_ms``, the traces starting at ``traces`` and decaying exactly: node by node, the Gauss–Legendre sum
    of :func:`neurofwp.recordings.trajectories.drift_integrals` in :math:`u = e^{-s/\tau_r}`."""
    assert rule.drift is not None
    taus = {t.name: values[t.tau] for t in rule.traces}
    reference = max(taus.values(), key=lambda tau: float(tau.detach()))
    low = torch.exp(-gap_ms / reference)
    nodes, weights = np.polynomial.legendre.leggauss(trajectories.QUADRATURE_NODES)
    total = torch.zeros_like(low)
    for node, weight in zip(nodes, weights, strict=True):
        u = low + (1.0 - low) * (0.5 * (float(node) + 1.0))
        namespace: dict = dict(values)
        for name, tr in traces.items():
            namespace[name] = tr * u ** (reference / taus[name])
        namespace["w"] = 1.0
        total = total + float(weight) * evaluate(rule.drift, torch_backend.with_sums(rule, namespace)) / u
    return reference * (1.0 - low) * 0.5 * total


def log_likelihood(
    trains: SpikeTrains,
    rule: Rule | None,
    values: Mapping[str, torch.Tensor] | None,
    *,
    baseline: torch.Tensor,
    history: torch.Tensor,
    w0: torch.Tensor,
    bin_ms: float,
    coupling_tau_ms: float,
    likelihood: str,
    end_bin: int,
    dt_ms: float | None = 0.1,
) -> torch.Tensor:
    r"""Log-likelihood (nats) of the bins before ``end_bin`` (:mod:`neurofwp.recordings.plastic`'s equations),
    plainly: ``values`` are the rule's parameter tensors by symbol; ``rule`` None is the static GLM;
    ``dt_ms`` the Euler step of a clock-driven rule, None for its exact drift (:func:`gap_log_factor`)."""
    end_ms = end_bin * bin_ms
    post = trains.post_ms
    counts = np.bincount((post[post < end_ms] // bin_ms).astype(np.int64), minlength=end_bin)[:end_bin]
    span = max(1, math.ceil(SPAN * coupling_tau_ms / bin_ms))
    coupling: list[list[torch.Tensor]] = [[] for _ in range(end_bin)]
    for unit, pre in enumerate(trains.pre_ms):
        pre = pre[pre < end_ms]
        if rule is None:
            factors: Sequence[torch.Tensor] = [torch.ones((), dtype=torch.float64)] * len(pre)
        else:
            assert values is not None
            grid = dt_ms if rule.clock_driven else None
            factors = presynaptic_factors(rule, values, post[post < end_ms], pre, grid)
        for s, factor in zip(pre, factors, strict=True):
            first = int(math.floor(s / bin_ms)) + 1
            for t in range(first, min(first + span, end_bin)):
                coupling[t].append(w0[unit] * factor * math.exp(-(t * bin_ms - s) / coupling_tau_ms))
    total = torch.zeros((), dtype=torch.float64)
    for t in range(end_bin):
        eta = baseline + sum(history[k - 1] * float(counts[t - k]) for k in range(1, len(history) + 1) if t >= k)
        eta = eta + sum(coupling[t], torch.zeros((), dtype=torch.float64))
        y = float(counts[t])
        if likelihood == "poisson":
            total = total + y * eta - torch.exp(eta) - math.lgamma(y + 1.0)
        else:
            total = total + (1.0 if y > 0 else 0.0) * eta - torch.nn.functional.softplus(eta)
    return total
