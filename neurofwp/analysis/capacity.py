r"""Capacity of one fast weight matrix: store S associations, then retrieve them.

For each rule, S random key/value pairs are written into an empty fast weight matrix
in one pass (keys feature-mapped and scaled to unit length, values Gaussian with unit
expected norm); then every key is used as a query. The retrieval error is

.. math::

    E(S) = \frac{\sum_i \lVert S^\top \phi(k_i) - v_i \rVert^2}{\sum_i \lVert v_i \rVert^2},

0 for perfect recall and exactly 1 for a zero output (no recall at all); it is not bounded
above: cross-talk between stored pairs makes it exceed 1, worse than recalling nothing. The Hebbian (sum) rule adds
cross-talk :math:`\sum_{j \ne i} (\phi(k_i)^\top \phi(k_j)) v_j`, so its error grows like
:math:`(S - 1)/D_k` for random unit keys even below :math:`D_k`; the delta rule
(:math:`\beta = 1`) overwrites what is stored under each key, so it recalls the most
recent pairs exactly and degrades gracefully past :math:`D_k`. No training is involved.

Any spiking rule writes too, through its rate reading (:mod:`neurofwp.plasticity.rate_reading`):
one pair per step of :func:`neurofwp.retrieval.model.default_dt_ms` (100 ms for an event-driven
rule), keys as presynaptic and values as postsynaptic activity, parameters at their defaults (or a
rule file's). Its amplitudes (about 1 % per pairing for the fitted biological values) scale what is
recalled, so its error is taken after the best single read-out gain ``g``,

.. math::

    E(S) = \min_g \frac{\sum_i \lVert g\, r_i - v_i \rVert^2}{\sum_i \lVert v_i \rVert^2}
         = 1 - \frac{(\sum_i r_i^\top v_i)^2}{\sum_i \lVert r_i \rVert^2 \sum_i \lVert v_i \rVert^2} \in [0, 1],

(:math:`r_i = W^\top \phi(k_i)`), the counterpart of the L2-normalised read-out of the trained
retrieval models. :func:`capacity` condenses a curve into one number per rule: the largest ``S``
whose mean error is at most a threshold.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import torch
import xarray as xr
from tqdm.auto import tqdm

import neurofwp
from neurofwp.errors import OutOfRangeError, UnknownNameError
from neurofwp.plasticity.definition import Rule, RuleError
from neurofwp.plasticity.rate_reading import RateReading, rate_reading
from neurofwp.plasticity.rules import RULES as SPIKING_RULES
from neurofwp.retrieval.model import default_dt_ms
from neurofwp.tensor import feature_maps
from neurofwp.tensor.rules import delta_rule, hebbian_rule

RULES = ("hebbian", "delta")
BETA_GRID = np.union1d(np.round(np.geomspace(0.02, 2.0, 25), 4), [1.0])
#: How a spiking rule is named here: a built-in name other than ``delta`` (the tensor rule above),
#: or ``rule:<built-in name or rule file path>`` (``rule:delta`` is the spiking delta rule).
SPIKING = "a built-in spiking rule (stdp, triplet, ...) or rule:<name or rule file path>"


def spiking_reading(rule: str | Rule) -> RateReading | None:
    """The rate reading a rule name here stands for; None for ``hebbian``, ``delta``, ``delta-fitted-beta``."""
    if isinstance(rule, Rule):
        return rate_reading(rule)
    if rule in (*RULES, "delta-fitted-beta"):
        return None
    if rule.startswith("rule:"):
        return rate_reading(rule[len("rule:") :])
    if rule in SPIKING_RULES:
        return rate_reading(rule)
    raise UnknownNameError("rule", rule, [*RULES, "delta-fitted-beta", SPIKING])


def _store_and_recall(rule: str | Rule, keys: torch.Tensor, values: torch.Tensor, beta: float) -> torch.Tensor:
    """Write ``keys [S, Dk]``/``values [S, Dv]`` in order, return the recalled values ``[S, Dv]``."""
    k = keys[None, :, None, :]
    v = values[None, :, None, :]
    reading = spiking_reading(rule)
    if reading is not None:
        return keys @ reading.final_state(k, v, dt_ms=default_dt_ms(reading.rule))[0, 0]
    if rule == "hebbian":
        _, state = hebbian_rule(k, k, v, output_final_state=True)
    else:
        b = k.new_full(k.shape[:3], beta)
        _, state = delta_rule(k, k, v, b, output_final_state=True)
    assert state is not None  # output_final_state=True
    return keys @ state[0, 0]


def retrieval_curve(
    n_pairs: Sequence[int],
    *,
    d_key: int = 64,
    d_value: int = 64,
    rules: Iterable[str | Rule] = RULES,
    feature_maps_: Iterable[str] = ("identity", "dpfp"),
    dpfp_nu: int = 1,
    beta: float = 1.0,
    seeds: Iterable[int] = range(3),
    show_progress: bool = True,
    fitted_beta: bool = False,
    best_gain: bool = False,
) -> xr.DataArray:
    """Retrieval error :math:`E(S)` for every rule × feature map × seed × number of pairs.

    Args:
        n_pairs: the numbers of stored pairs S to try.
        d_key: raw key size before the feature map (DPFP turns it into ``2·nu·d_key``).
        d_value: value size.
        rules: ``"hebbian"``, ``"delta"`` and any spiking rule (:data:`SPIKING`, or a
            :class:`~neurofwp.plasticity.definition.Rule`, labelled by its name; error after the
            best read-out gain, module docstring).
        feature_maps_: ``"identity"``, ``"elu+1"``, ``"dpfp"``, ``"favor+"``.
        dpfp_nu: order of DPFP.
        beta: learning rate of the delta rule.
        seeds: one independent draw of keys and values per seed.
        show_progress: show a progress bar.
        fitted_beta: add the rule ``"delta-fitted-beta"``: the delta rule with the learning rate
            that minimises the retrieval error for each S (grid over β in [0.02, 2]), the
            best a single learned β can do.
        best_gain: take every rule's error after its best read-out gain (spiking rules always are),
            so that all rules are on one scale in [0, 1].

    Returns:
        DataArray ``retrieval_error`` with dims ``(rule, feature_map, seed, n_pairs)`` and
        the fast-weight key size of each map as coordinate ``d_fast``.
    """
    rules, maps, seeds = list(rules), list(feature_maps_), list(seeds)
    if fitted_beta and "delta-fitted-beta" not in rules:
        rules.append("delta-fitted-beta")
    for name, size in (("d_key", d_key), ("d_value", d_value)):
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise OutOfRangeError(f"{name} must be an int >= 1, got {size!r}")
    if not seeds:
        raise OutOfRangeError("seeds must name at least one seed")
    n_pairs = [int(s) for s in n_pairs]
    for rule in rules:
        spiking_reading(rule)  # unknown names and rules that are not outer-product writes raise here
    if not n_pairs or min(n_pairs) < 1:
        raise OutOfRangeError(f"n_pairs must be a non-empty list of counts >= 1, got {n_pairs}")
    maps_built = {}
    for name in maps:
        if name == "dpfp":
            maps_built[name] = feature_maps.get(name, d_key, nu=dpfp_nu)
        else:
            maps_built[name] = feature_maps.get(name, d_key)

    errors = np.full((len(rules), len(maps), len(seeds), len(n_pairs)), np.nan)
    cells = [(r, m, s) for r in range(len(rules)) for m in range(len(maps)) for s in range(len(seeds))]
    with tqdm(total=len(cells) * len(n_pairs), desc="retrieval", disable=not show_progress, unit="cell") as bar:
        for r, m, s in cells:
            generator = torch.Generator().manual_seed(seeds[s])
            largest = max(n_pairs)
            raw = torch.randn(largest, d_key, generator=generator, dtype=torch.float64)
            values = torch.randn(largest, d_value, generator=generator, dtype=torch.float64) / d_value**0.5
            keys = torch.nn.functional.normalize(maps_built[maps[m]](raw), dim=-1)
            for p, count in enumerate(n_pairs):
                target = values[:count]
                if rules[r] == "delta-fitted-beta":
                    candidates = [
                        _error(_store_and_recall("delta", keys[:count], target, b), target, gain=best_gain)
                        for b in BETA_GRID
                    ]
                    errors[r, m, s, p] = min(candidates)
                else:
                    recalled = _store_and_recall(rules[r], keys[:count], target, beta)
                    gain = best_gain or spiking_reading(rules[r]) is not None
                    errors[r, m, s, p] = _error(recalled, target, gain=gain)
                bar.update()

    return xr.DataArray(
        errors,
        dims=("rule", "feature_map", "seed", "n_pairs"),
        coords={
            "rule": [r.name if isinstance(r, Rule) else r for r in rules],
            "feature_map": maps,
            "seed": seeds,
            "n_pairs": n_pairs,
            "d_fast": ("feature_map", [maps_built[m].output_dim(d_key) for m in maps]),
        },
        name="retrieval_error",
        attrs={
            "units": "1",
            "long_name": "relative squared retrieval error",
            "d_key": d_key,
            "d_value": d_value,
            "dpfp_nu": dpfp_nu,
            "beta": beta,
            "best_gain": int(best_gain),
            "neurofwp_version": neurofwp.__version__,
        },
    )


def _error(recalled: torch.Tensor, target: torch.Tensor, *, gain: bool) -> float:
    """Relative squared error; with ``gain`` after the best scalar gain (module docstring)."""
    if gain:
        energy = float((recalled**2).sum())
        if energy > 0:
            recalled = recalled * (float((recalled * target).sum()) / energy)
    return float(((recalled - target) ** 2).sum() / (target**2).sum())


#: The S grid of :func:`capacity`.
CAPACITY_PAIRS = (1, 2, 4, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256)


def capacity(
    rules: Iterable[str | Rule],
    *,
    threshold: float = 0.25,
    n_pairs: Sequence[int] = CAPACITY_PAIRS,
    d_key: int = 64,
    feature_map: str = "dpfp",
    seeds: Iterable[int] = range(3),
    unreadable: str = "raise",
) -> xr.DataArray:
    """Capacity of each rule: the largest S of ``n_pairs`` whose mean retrieval error over ``seeds``
    (:func:`retrieval_curve` with ``best_gain=True``, so every rule is on one scale; ``feature_map``
    with ``d_key`` raw key size) is at most ``threshold``; 0 where even the smallest S is above it.
    DataArray ``capacity`` (float) with dim ``rule``.

    ``unreadable``: what a rule that is not an outer-product write does (its reading raises
    :class:`~neurofwp.plasticity.definition.RuleError`): ``"raise"``, or ``"nan"`` (its capacity is
    NaN and coordinate ``reason`` holds the error's message, empty for the others).
    """
    if not 0 < threshold < 1:
        raise OutOfRangeError(f"threshold must lie in (0, 1), got {threshold}")
    if unreadable not in ("raise", "nan"):
        raise UnknownNameError("unreadable", unreadable, ["raise", "nan"])
    rules = list(rules)
    names = [r.name if isinstance(r, Rule) else r for r in rules]
    reasons = [""] * len(rules)
    for index, rule in enumerate(rules):
        try:
            spiking_reading(rule)
        except RuleError as error:
            if unreadable == "raise":
                raise
            reasons[index] = str(error)
    readable = [r for r, reason in zip(rules, reasons, strict=True) if not reason]
    largest: np.ndarray = np.full(len(rules), np.nan)
    if feature_map == "dpfp":
        d_fast = feature_maps.get(feature_map, d_key, nu=1).output_dim(d_key)  # retrieval_curve's default order
    else:
        d_fast = feature_maps.get(feature_map, d_key).output_dim(d_key)
    seeds = list(seeds)
    if readable:
        curve = retrieval_curve(
            n_pairs, d_key=d_key, d_value=d_key, rules=readable, feature_maps_=(feature_map,), seeds=seeds,
            show_progress=False, best_gain=True,
        )  # fmt: skip
        mean = curve.sel(feature_map=feature_map).mean("seed")
        sizes = np.asarray(curve.n_pairs.values)
        found = iter(float(sizes[solved].max()) if solved.any() else 0.0 for solved in (mean.values <= threshold))
        largest = np.array([np.nan if reason else next(found) for reason in reasons])
    return xr.DataArray(
        largest,
        dims=("rule",),
        coords={"rule": names, "reason": ("rule", reasons)},
        name="capacity",
        attrs={
            "units": "1",
            "long_name": f"largest number of stored pairs S with mean retrieval error <= {threshold:g}",
            "threshold": threshold,
            "feature_map": feature_map,
            "d_key": d_key,
            "d_fast": d_fast,
            "n_seeds": len(seeds),
            "neurofwp_version": neurofwp.__version__,
        },
    )
