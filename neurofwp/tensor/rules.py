r"""Public functional API of the fast-weight rules.

Conventions (shared by every rule):

* layout ``[B, T, H, D]``: batch, time, heads, features;
* fast-weight state ``S`` of shape ``[B, H, Dk, Dv]``; reading with a query gives
  :math:`o_t = S_t^\top q_t`, and each step is *read after write* (``o_t`` sees ``k_t, v_t``);
* ``q`` and ``k`` arrive already feature-mapped (:mod:`neurofwp.tensor.feature_maps`);
* ``scale`` multiplies ``q`` (default 1.0: no implicit :math:`1/\sqrt{D}`);
* ``decay`` (optional, ``[B, T, H]`` in ``(0, 1]``) is a forget gate applied before the
  write, :math:`S \leftarrow \alpha_t S`, which gives the gated variants of both rules;
* ``mode="recurrent"`` is the plain step-by-step loop (the reference);
  ``mode="chunk"`` is the chunkwise-parallel form (fast, same result);
* every function returns ``(o, final_state)``, ``final_state`` being ``None`` unless
  ``output_final_state=True``. Passing it back as ``initial_state`` continues the sequence;
* a NaN or inf in the output or the final state raises :class:`~neurofwp.errors.NonFiniteError`:
  naming the input that holds it, or, when every input is finite, the cause and the fix
  (for the delta rule, keys outside :math:`0 \le \beta_t \lVert k_t \rVert^2 \le 2`).
"""

from __future__ import annotations

from typing import overload

import torch

from neurofwp.errors import ShapeError
from neurofwp.tensor import _validate as check
from neurofwp.tensor import chunk as _chunk
from neurofwp.tensor import recurrent as _recurrent

__all__ = ["hebbian_rule", "delta_rule", "hebbian_step", "delta_step"]


def _initial(
    initial_state: torch.Tensor | None, q: torch.Tensor, shape: tuple[int, int, int, int], note: str = ""
) -> torch.Tensor:
    if initial_state is None:
        return q.new_zeros(shape)
    return check.check_state("initial_state", initial_state, q, shape, note)


def hebbian_rule(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    mode: str = "chunk",
    chunk_size: int = 64,
    scale: float = 1.0,
    decay: torch.Tensor | None = None,
    normalize: bool = False,
    initial_state: torch.Tensor | None = None,
    output_final_state: bool = False,
    eps: float = 1e-6,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    r"""Hebbian (sum-rule) fast weights, identical to causal linear attention.

    .. math::

        S_t = \alpha_t S_{t-1} + k_t v_t^\top, \qquad o_t = S_t^\top (\text{scale}\cdot q_t).

    With ``normalize=True`` the output is divided by the attention normaliser,
    :math:`o_t / (z_t^\top q_t + \epsilon)` with :math:`z_t = \alpha_t z_{t-1} + k_t`.
    The normaliser is carried as one more value column, so the state is then
    ``[B, H, Dk, Dv + 1]`` (its last column is ``z``), both as ``initial_state`` and as
    the returned final state.

    The state is an unbounded sum unless ``decay`` forgets; finite inputs whose result
    overflows (or, with ``normalize=True``, whose normaliser reaches zero) raise
    :class:`~neurofwp.errors.NonFiniteError` instead of returning NaN or inf.

    Args:
        q, k: feature-mapped queries and keys, ``[B, T, H, Dk]``.
        v: values, ``[B, T, H, Dv]``.
        mode: ``"chunk"`` (default) or ``"recurrent"``.
        chunk_size: steps per chunk in chunk mode (any T works; the last chunk is padded).
        scale: factor applied to ``q``.
        decay: optional forget gate ``[B, T, H]`` in ``(0, 1]``.
        normalize: divide by the normaliser :math:`z_t^\top q_t + \epsilon`.
        initial_state: state to start from (zeros when ``None``).
        output_final_state: also return the state after the last step.
        eps: added to the normaliser when ``normalize=True``.

    Returns:
        ``(o, final_state)`` with ``o`` of shape ``[B, T, H, Dv]``.
    """
    batch, steps, heads, d_key, d_value = check.check_qkv(q, k, v, finite=False)
    mode = check.check_mode(mode)
    chunk_size = check.check_chunk_size(chunk_size)
    scale = check.check_scale(scale)
    if decay is not None:
        check.check_per_step("decay", decay, q, 0.0, 1.0, low_open=True)
    inputs = {"q": q, "k": k, "v": v}
    width = d_value + 1 if normalize else d_value
    note = " (normalize=True carries the normaliser as a last column)" if normalize else ""
    state = _initial(initial_state, q, (batch, heads, d_key, width), note)
    if normalize:
        v = torch.cat([v, v.new_ones(*v.shape[:-1], 1)], dim=-1)
    if scale != 1.0:
        q = q * scale

    if steps == 0:
        raw = v.new_zeros(batch, 0, heads, width)
    elif mode == "recurrent":
        raw, state = _recurrent.hebbian_recurrent(q, k, v, decay, state)
    else:
        raw, state = _chunk.hebbian_chunk(q, k, v, decay, state, chunk_size)
    out = raw[..., :d_value] / (raw[..., d_value:] + eps) if normalize else raw

    def cause() -> str:
        # Only on failure: a finite numerator and state leave the normaliser as the culprit.
        finite_sum = bool(torch.isfinite(raw.detach()).all()) and bool(torch.isfinite(state.detach()).all())
        return check.hebbian_cause(q.dtype, normaliser=normalize and finite_sum)

    # Checked after the division, so that a zero normaliser is caught in the same single pass.
    check.check_result("the Hebbian rule", {"output": out, "final state": state}, inputs, cause)
    return out, (state if output_final_state else None)


def delta_rule(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    beta: torch.Tensor,
    *,
    mode: str = "chunk",
    chunk_size: int = 64,
    scale: float = 1.0,
    decay: torch.Tensor | None = None,
    initial_state: torch.Tensor | None = None,
    output_final_state: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    r"""Delta-rule fast weights (error-correcting writes with learning rate :math:`\beta_t`).

    .. math::

        \tilde S = \alpha_t S_{t-1}, \qquad
        S_t = \tilde S + \beta_t\, k_t \,(v_t - \tilde S^\top k_t)^\top, \qquad
        o_t = S_t^\top (\text{scale}\cdot q_t).

    ``beta`` is given per step and head, ``[B, T, H]``, in ``[0, 2]``. Without decay one
    step maps :math:`S \mapsto (I - \beta_t k_t k_t^\top) S + \beta_t k_t v_t^\top`, whose
    matrix has eigenvalue 1 orthogonally to :math:`k_t` and :math:`1 - \beta_t \lVert k_t \rVert^2`
    along it, so the write is stable (non-expansive) only while

    .. math::

        0 \le \beta_t \lVert k_t \rVert^2 \le 2 .

    Beyond it the stored value along :math:`k_t` is multiplied by
    :math:`|1 - \beta_t \lVert k_t \rVert^2| > 1` at each such step and grows geometrically:
    the result is either finite but meaningless (huge) or overflows to inf and NaN, which
    raises :class:`~neurofwp.errors.NonFiniteError` naming the condition. The condition
    itself is not checked (that would cost a pass over ``k``); it is met by construction
    with L2-normalised keys and :math:`\beta_t \le 2`, or with sum-normalised keys of a
    non-negative feature map (:math:`\lVert \phi \rVert_2 \le \lVert \phi \rVert_1 = 1`,
    ``feature_maps.get(..., normalize_sum=True)``; the default is ``False``).
    A layer with a *learned* learning rate computes :math:`\beta_t = \sigma(w_\beta^\top x_t)`
    and passes it here (:class:`neurofwp.tensor.FastWeightLayer`, whose keys always satisfy
    the condition).

    Arguments and return value as :func:`hebbian_rule`; the state is ``[B, H, Dk, Dv]``.
    """
    batch, steps, heads, d_key, d_value = check.check_qkv(q, k, v, finite=False)
    mode = check.check_mode(mode)
    chunk_size = check.check_chunk_size(chunk_size)
    scale = check.check_scale(scale)
    check.check_per_step("beta", beta, q, 0.0, 2.0)
    inputs = {"q": q, "k": k, "v": v}
    if decay is not None:
        check.check_per_step("decay", decay, q, 0.0, 1.0, low_open=True)
    state = _initial(initial_state, q, (batch, heads, d_key, d_value))
    if scale != 1.0:
        q = q * scale

    if steps == 0:
        out = v.new_zeros(batch, 0, heads, d_value)
    elif mode == "recurrent":
        out, state = _recurrent.delta_recurrent(q, k, v, beta, decay, state)
    else:
        out, state = _chunk.delta_chunk(q, k, v, beta, decay, state, chunk_size)
    results = {"output": out, "final state": state}
    check.check_result("the delta rule", results, inputs, lambda: check.delta_cause(inputs["k"], beta))
    return out, (state if output_final_state else None)


@overload
def _one_step(x: torch.Tensor, name: str, ndim: int) -> torch.Tensor: ...
@overload
def _one_step(x: None, name: str, ndim: int) -> None: ...
@overload
def _one_step(x: torch.Tensor | None, name: str, ndim: int) -> torch.Tensor | None: ...
def _one_step(x: torch.Tensor | None, name: str, ndim: int) -> torch.Tensor | None:
    if x is None:
        return None
    if not isinstance(x, torch.Tensor) or x.ndim != ndim:
        got = f"{x.ndim} dims" if isinstance(x, torch.Tensor) else type(x).__name__
        layout = "[B, H, D]" if ndim == 3 else "[B, H]"
        raise ShapeError(f"{name} of one step must have layout {layout}, got {got}")
    return x.unsqueeze(1)


def hebbian_step(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    state: torch.Tensor | None = None,
    *,
    scale: float = 1.0,
    decay: torch.Tensor | None = None,
    normalize: bool = False,
    eps: float = 1e-6,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One online step of :func:`hebbian_rule`: ``q, k [B, H, Dk]``, ``v [B, H, Dv]``, ``decay [B, H]``.

    Returns ``(o [B, H, Dv], new_state)``; feed ``new_state`` to the next call.
    """
    out, new_state = hebbian_rule(
        _one_step(q, "q", 3), _one_step(k, "k", 3), _one_step(v, "v", 3),
        mode="recurrent", scale=scale, decay=_one_step(decay, "decay", 2), normalize=normalize,
        initial_state=state, output_final_state=True, eps=eps,
    )  # fmt: skip
    assert new_state is not None
    return out[:, 0], new_state


def delta_step(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    beta: torch.Tensor,
    state: torch.Tensor | None = None,
    *,
    scale: float = 1.0,
    decay: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One online step of :func:`delta_rule`: ``q, k [B, H, Dk]``, ``v [B, H, Dv]``, ``beta, decay [B, H]``.

    Returns ``(o [B, H, Dv], new_state)``; feed ``new_state`` to the next call.
    """
    out, new_state = delta_rule(
        _one_step(q, "q", 3), _one_step(k, "k", 3), _one_step(v, "v", 3), _one_step(beta, "beta", 2),
        mode="recurrent", scale=scale, decay=_one_step(decay, "decay", 2),
        initial_state=state, output_final_state=True,
    )  # fmt: skip
    assert new_state is not None
    return out[:, 0], new_state
