r"""What a protocol dataset varies, read from its protocols, so that figures follow the data, not its name.

- ``window``: every protocol is one pre- and one postsynaptic spike per repetition, at one
  repetition rate and count, over at least four timings :math:`\Delta t = t_\text{post} - t_\text{pre}`
  (an STDP window, Bi & Poo 1998). Drawn as weight change against :math:`\Delta t`.
- ``frequency``: single pairings at a few timings, each at two or more repetition rates
  (Sjöström et al. 2001). Drawn as weight change against the rate, a line per timing.
- ``protocols``: anything else (triplets, quadruplets, bursts, neuromodulation). Drawn
  protocol by protocol.
- ``trains``: train responses (:class:`~neurofwp.protocols.TrainProtocol`, short-term
  plasticity): the response to every presynaptic spike of each train. Drawn train by train,
  response against spike number.

For the first two, :func:`curve_protocols` gives dense protocols on which a fitted rule
is evaluated to draw it as a smooth curve beside the data.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from neurofwp.protocols import Protocol, is_train_table, make_protocol

__all__ = ["Structure", "classify", "curve_protocols", "timing_ms"]

KINDS = ("window", "frequency", "protocols", "trains")
#: Smallest number of distinct timings that make a window.
MIN_WINDOW_TIMINGS = 4
#: Repetition rates (Hz) of frequency curves: their periods lie on the 0.1 ms grid of the clock-driven rules.
CURVE_FREQUENCIES_HZ = (0.1, 0.2, 0.5, 1, 2, 4, 5, 8, 10, 16, 20, 25, 40, 50, 80, 100)


@dataclass(frozen=True)
class Structure:
    """How a dataset's protocols differ: ``kind`` (one of :data:`KINDS`), and for single pairings their
    timings (ms, ``t_post - t_pre``) and repetition rates (Hz), and the repetition count of a window."""

    kind: str
    timings_ms: tuple[float, ...] = ()
    rates_hz: tuple[float, ...] = ()
    n_repeats: int = 0

    @property
    def x_label(self) -> str:
        return {
            "window": "Δt = t_post − t_pre (ms)",
            "frequency": "repetition rate (Hz)",
            "trains": "presynaptic spike",
        }.get(self.kind, "protocol")


def timing_ms(protocol: Protocol) -> float | None:
    """``t_post - t_pre`` of a single pairing; None for anything with more spikes or a third factor."""
    if len(protocol.pre_times_ms) != 1 or len(protocol.post_times_ms) != 1 or protocol.mod_times_ms:
        return None
    return round(protocol.post_times_ms[0] - protocol.pre_times_ms[0], 6)


def classify(protocols: Sequence[Protocol]) -> Structure:
    """The :class:`Structure` of a protocol set (see the module docstring for the rules)."""
    if protocols and is_train_table(protocols):
        return Structure("trains")
    timings = [timing_ms(p) for p in protocols]
    if not protocols or any(t is None for t in timings):
        return Structure("protocols")
    rates = sorted({p.repeat_hz for p in protocols})
    counts = {p.n_repeats for p in protocols}
    distinct = sorted({t for t in timings if t is not None})
    if len(rates) == 1 and len(counts) == 1 and len(distinct) >= MIN_WINDOW_TIMINGS:
        return Structure("window", tuple(distinct), tuple(rates), counts.pop())
    by_timing = {t: {p.repeat_hz for p, s in zip(protocols, timings, strict=True) if s == t} for t in distinct}
    if len(rates) >= 2 and all(len(r) >= 2 for r in by_timing.values()) and len(counts) == 1:
        return Structure("frequency", tuple(distinct), tuple(rates), counts.pop())
    return Structure("protocols")


def _pairing(name: str, timing_ms: float, rate_hz: float, n_repeats: int) -> Protocol:
    pre, post = (0.0, timing_ms) if timing_ms >= 0 else (-timing_ms, 0.0)
    return make_protocol(name, [pre], [post], rate_hz, n_repeats)


def curve_protocols(structure: Structure) -> tuple[np.ndarray, list[Protocol]]:
    """Dense protocols to draw a fitted rule as a curve: ``(x, protocols)``.

    ``window``: Δt on a 1 ms grid 10 ms beyond the data on each side, x = Δt (ms).
    ``frequency``: every timing at :data:`CURVE_FREQUENCIES_HZ` up to the highest measured
    rate and the measured rates themselves; x has one row per timing, ``[timing, rate]``.
    ``protocols``, ``trains``: none.
    """
    if structure.kind == "window":
        low, high = np.floor(min(structure.timings_ms)) - 10, np.ceil(max(structure.timings_ms)) + 10
        grid = np.round(np.arange(low, high + 0.5, 1.0), 1)
        rate = structure.rates_hz[0]
        return grid, [_pairing(f"{dt:+.1f}", float(dt), rate, structure.n_repeats) for dt in grid]
    if structure.kind == "frequency":
        top = max(structure.rates_hz)
        rates = sorted({r for r in CURVE_FREQUENCIES_HZ if r <= top} | set(structure.rates_hz))
        pairs = [(t, r) for t in structure.timings_ms for r in rates]
        protocols = [_pairing(f"{t:+g}ms@{r:g}Hz", t, r, structure.n_repeats) for t, r in pairs]
        return np.array(pairs), protocols
    return np.empty((0,)), []
