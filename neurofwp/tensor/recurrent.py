r"""The reference form of every fast-weight rule: one write per time step.

These functions are the single definition of each rule's update. The recurrent mode
loops over them step by step; the chunkwise mode (:mod:`neurofwp.tensor.chunk`) is an
algebraic rearrangement of the same recurrence and is tested against this loop.

State layout ``S[b, h]`` is a ``[Dk, Dv]`` matrix mapping a key to a value: reading with
a query gives :math:`o = S^\top q`.
"""

from __future__ import annotations

import torch


def apply_decay(state: torch.Tensor, decay: torch.Tensor | None) -> torch.Tensor:
    r"""Forget gate :math:`S \leftarrow \alpha_t S`, applied before the write; ``decay`` is ``[B, H]``."""
    if decay is None:
        return state
    return decay[..., None, None] * state


def read(state: torch.Tensor, query: torch.Tensor) -> torch.Tensor:
    r"""Read the fast weights: :math:`o = S^\top q`, ``state [B, H, Dk, Dv]``, ``query [B, H, Dk]``."""
    return torch.einsum("bhkv,bhk->bhv", state, query)


def hebbian_write(
    state: torch.Tensor, key: torch.Tensor, value: torch.Tensor, decay: torch.Tensor | None = None
) -> torch.Tensor:
    r"""Hebbian (sum) rule: :math:`S_t = \alpha_t S_{t-1} + k_t v_t^\top`."""
    state = apply_decay(state, decay)
    return state + key[..., :, None] * value[..., None, :]


def delta_write(
    state: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    beta: torch.Tensor,
    decay: torch.Tensor | None = None,
) -> torch.Tensor:
    r"""Delta rule: :math:`S_t = \tilde S + \beta_t k_t (v_t - \tilde S^\top k_t)^\top`,
    :math:`\tilde S = \alpha_t S_{t-1}`.

    The write replaces (a fraction ``beta`` of) the value currently stored under ``key``
    by the new value, instead of only adding to it.
    """
    state = apply_decay(state, decay)
    error = value - read(state, key)
    return state + beta[..., None, None] * key[..., :, None] * error[..., None, :]


def _steps(x: torch.Tensor | None, steps: int) -> tuple:
    """Per-step views along time. ``unbind``'s backward is one stack; indexing ``x[:, t]`` in
    the loop would build a full-length zero gradient per step (quadratic in T)."""
    return (None,) * steps if x is None else x.unbind(1)


def hebbian_recurrent(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    decay: torch.Tensor | None,
    state: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Loop :func:`hebbian_write` then :func:`read` over time; inputs ``[B, T, H, D]``, state ``[B, H, Dk, Dv]``."""
    outputs = []
    steps = q.shape[1]
    per_step = zip(q.unbind(1), k.unbind(1), v.unbind(1), _steps(decay, steps), strict=True)
    for q_t, k_t, v_t, decay_t in per_step:
        state = hebbian_write(state, k_t, v_t, decay_t)
        outputs.append(read(state, q_t))
    return torch.stack(outputs, dim=1), state


def delta_recurrent(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    beta: torch.Tensor,
    decay: torch.Tensor | None,
    state: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Loop :func:`delta_write` then :func:`read` over time; inputs ``[B, T, H, D]``, ``beta [B, T, H]``."""
    outputs = []
    steps = q.shape[1]
    per_step = zip(q.unbind(1), k.unbind(1), v.unbind(1), beta.unbind(1), _steps(decay, steps), strict=True)
    for q_t, k_t, v_t, beta_t, decay_t in per_step:
        state = delta_write(state, k_t, v_t, beta_t, decay_t)
        outputs.append(read(state, q_t))
    return torch.stack(outputs, dim=1), state
