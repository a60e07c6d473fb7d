r"""What a protocol table measures and how a rule predicts it, defined once for predict, fit and selection.

Two kinds of table (:mod:`neurofwp.protocols`):

- **weight change**: one observation per protocol with a ``dw_percent``; the model's is
  :math:`100\,(w_\text{end} - 1)` (percent), the scale its ``sem_percent`` (or 1);
- **train responses** (:class:`~neurofwp.protocols.TrainProtocol`): one observation per measured
  response; the model's is the rule's ``response`` at that presynaptic spike, divided by the
  train's first response when the table is normalised to the first (every first amplitude 1:
  then the first responses are 1 by construction and are not observations), the scale its
  ``sem`` (or 1).

The error of a fit is :math:`E = \frac1N \sum_n ((d_n - m_n)/s_n)^2` over the N observations.
Either every observation has an SEM or none has (:class:`~neurofwp.protocols.MissingSEMError`
names those without one).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from neurofwp.errors import NeurofwpError
from neurofwp.plasticity.rules import Rule
from neurofwp.protocols import MissingSEMError, Protocol, ProtocolError, check_sem, is_normalised, is_train_table


@dataclass(frozen=True)
class Observations:
    """The observations of a table: data and scale ``[N]``, and which protocol (and spike) each belongs to."""

    trains: bool  # train responses (else weight changes)
    data: np.ndarray
    scale: np.ndarray
    has_sem: bool
    protocol: np.ndarray  # [N] row of the protocol
    spike: np.ndarray  # [N] presynaptic spike within the train (0 for weight changes)
    normalised: bool

    @property
    def units(self) -> str:
        """Units of the data: percent (weight changes) or those of the amplitudes (1 when normalised)."""
        return "percent" if not self.trains else ("1" if self.normalised else "as measured")

    def __len__(self) -> int:
        return len(self.data)


def observations(protocols: Sequence[Protocol]) -> Observations:
    """The observations of ``protocols`` (module docstring); a table without any raises :class:`ProtocolError`."""
    if not is_train_table(protocols):
        if any(p.dw_percent is None for p in protocols):
            missing = next(p.name for p in protocols if p.dw_percent is None)
            raise ProtocolError(f"protocol {missing!r} has no dw_percent: there is nothing to fit")
        data = np.array([p.dw_percent for p in protocols], dtype=float)
        has_sem = check_sem(protocols)
        scale = np.array([p.sem_percent for p in protocols], dtype=float) if has_sem else np.ones(len(protocols))
        index = np.arange(len(protocols))
        return Observations(False, data, scale, has_sem, index, np.zeros_like(index), False)
    normalised = is_normalised(protocols)  # type: ignore[arg-type]
    rows: list[int] = []
    spikes: list[int] = []
    values: list[float] = []
    sems: list[float] = []
    for row, protocol in enumerate(protocols):
        amplitude = protocol.amplitude  # type: ignore[attr-defined]
        if amplitude is None:
            continue
        sem = protocol.sem or (np.nan,) * len(amplitude)  # type: ignore[attr-defined]
        for spike, (value, error) in enumerate(zip(amplitude, sem, strict=True)):
            if np.isnan(value) or (normalised and spike == 0):
                continue
            rows.append(row)
            spikes.append(spike)
            values.append(value)
            sems.append(error)
    if not values:
        raise ProtocolError("the trains have no measured responses (amplitude) to compare with")
    sem_array = np.asarray(sems, dtype=float)
    lacking = np.isnan(sem_array)
    if lacking.any() and not lacking.all():
        shown = ", ".join(f"{protocols[rows[i]].name!r} spike {spikes[i] + 1}" for i in np.flatnonzero(lacking)[:10])
        raise MissingSEMError(
            f"sem is missing for {int(lacking.sum())} of {len(values)} measured responses ({shown}); E divides each "
            "residual by its SEM, so give every measured response an SEM or none"
        )
    has_sem = not lacking.any()
    return Observations(
        True,
        np.asarray(values, dtype=float),
        sem_array if has_sem else np.ones(len(values)),
        has_sem,
        np.asarray(rows),
        np.asarray(spikes),
        normalised,
    )


def model(
    rule: Rule,
    protocols: Sequence[Protocol],
    observed: Observations,
    parameters: Mapping[str, object],
    *,
    dt_ms: float = 0.1,
    rows: Sequence[int] | None = None,
) -> torch.Tensor:
    """The model's value of every observation ``[N, M]`` (torch backend, differentiable).

    With ``rows``, only the observations of those protocols, in the order of ``observed``
    (the rest of the table is not simulated).
    """
    from neurofwp.plasticity import torch_backend

    keep = np.arange(len(observed)) if rows is None else np.flatnonzero(np.isin(observed.protocol, rows))
    chosen = sorted(set(observed.protocol[keep].tolist()))
    position = {row: i for i, row in enumerate(chosen)}
    local = torch.as_tensor([position[r] for r in observed.protocol[keep]], dtype=torch.long)
    subset = [protocols[r] for r in chosen]
    if not observed.trains:
        weights = torch_backend.simulate(rule, subset, parameters, dt_ms=dt_ms)
        return 100.0 * (weights[local] - 1.0)
    if rule.response is None:
        raise NeurofwpError(
            f"rule {rule.name!r} has no response (a per-spike efficacy) to compare with train responses"
        )
    responses = torch_backend.simulate_responses(rule, subset, parameters, dt_ms=dt_ms)  # [P, S, M], NaN-padded
    # gathered before normalising, so that no gradient passes through the NaN padding
    chosen_responses = responses[local, torch.as_tensor(observed.spike[keep], dtype=torch.long)]
    return chosen_responses / responses[local, 0] if observed.normalised else chosen_responses


def model_numpy(rule: Rule, protocols: Sequence[Protocol], observed: Observations, simulated: np.ndarray) -> np.ndarray:
    """The observations ``[N, M]`` from a backend's output: final weights ``[P, M]`` or responses ``[P, S, M]``."""
    if not observed.trains:
        return 100.0 * (simulated[observed.protocol] - 1.0)
    if observed.normalised:
        simulated = simulated / simulated[:, :1]
    return simulated[observed.protocol, observed.spike]
