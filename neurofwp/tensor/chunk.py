r"""Chunkwise-parallel forms of the Hebbian and delta rules.

The sequence is cut into chunks of ``C`` steps. Inside a chunk everything is a dense,
batched matrix product; only the fast-weight state ``S`` (``[Dk, Dv]`` per head) is
carried from one chunk to the next, so memory is O(T·D + D²) per head and no T×T
matrix is ever formed.

Notation inside one chunk (rows are the chunk's steps ``t = 1..C``): ``Q, K [C, Dk]``,
``V [C, Dv]``, ``S_0`` the state entering the chunk, decay ``α_t`` with cumulative
product :math:`\gamma_t = \prod_{\tau \le t} \alpha_\tau` (all ones without decay),
:math:`\Gamma_{ti} = \gamma_t / \gamma_i` and ``M`` the causal mask (``i <= t``).

Both rules write :math:`S_t = \alpha_t S_{t-1} + k_t \delta_t^\top`, hence

.. math::

    S_t = \gamma_t S_0 + \sum_{i \le t} \Gamma_{ti} k_i \delta_i^\top, \qquad
    O = \mathrm{diag}(\gamma) Q S_0 + (Q K^\top \odot \Gamma \odot M) \Delta, \qquad
    S_C = \gamma_C S_0 + (\mathrm{diag}(\gamma_C / \gamma) K)^\top \Delta .

Hebbian rule: :math:`\Delta = V`.

Delta rule (WY / UT-transform form, Yang et al. 2024): the written vector is
:math:`\delta_t = \beta_t (v_t - \alpha_t S_{t-1}^\top k_t)`; expanding
:math:`\alpha_t S_{t-1}` with the sum above gives the unit lower-triangular system

.. math::

    (I + \mathrm{diag}(\beta)\,\mathrm{tril}_{-1}(K K^\top \odot \Gamma))\, \Delta
        = \mathrm{diag}(\beta) V - \mathrm{diag}(\beta \gamma) K S_0 ,

so with ``A`` that matrix and :math:`T = A^{-1}` (one batched triangular solve for all
chunks at once), :math:`U = T \mathrm{diag}(\beta) V`,
:math:`W = T \mathrm{diag}(\beta\gamma) K` and :math:`\Delta = U - W S_0`. Only this
last product and the state update are sequential over chunks.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _to_chunks(x: torch.Tensor, chunk_size: int, fill: float = 0.0) -> torch.Tensor:
    """``[B, T, H, *D]`` → ``[B, H, N, C, *D]``, padding T up to a multiple of C with ``fill``."""
    steps = x.shape[1]
    pad = (-steps) % chunk_size
    if pad:
        trailing = [0, 0] * (x.ndim - 2)
        x = F.pad(x, trailing + [0, pad], value=fill)
    batch, padded, heads = x.shape[:3]
    x = x.reshape(batch, padded // chunk_size, chunk_size, heads, *x.shape[3:])
    return x.movedim(3, 1).contiguous()


def _from_chunks(x: torch.Tensor, steps: int) -> torch.Tensor:
    """``[B, H, N, C, D]`` → ``[B, T, H, D]``, dropping the padding."""
    batch, heads, n_chunks, chunk_size, width = x.shape
    x = x.movedim(1, 3).reshape(batch, n_chunks * chunk_size, heads, width)
    return x[:, :steps]


class _ChunkGeometry:
    """Decay bookkeeping of one chunked sequence: ``γ`` terms and the masked ``Γ`` matrix."""

    def __init__(self, log_decay: torch.Tensor | None, chunk_size: int, like: torch.Tensor):
        self.causal = torch.ones(chunk_size, chunk_size, dtype=torch.bool, device=like.device).tril()
        if log_decay is None:
            self.gamma = None  # every γ is 1
            return
        cumulative = log_decay.cumsum(-1)  # [B, H, N, C]: log γ_t
        exponent = cumulative[..., :, None] - cumulative[..., None, :]
        # Mask before exp: above the diagonal the exponent is positive and may overflow.
        self.pairwise = torch.where(self.causal, exponent, float("-inf")).exp()  # Γ ⊙ M
        self.gamma = cumulative.exp()[..., None]  # [B, H, N, C, 1]
        self.to_end = (cumulative[..., -1:] - cumulative).exp()[..., None]  # γ_C / γ_t
        self.gamma_end = cumulative[..., -1].exp()[..., None, None]  # [B, H, N, 1, 1]

    def weight_lower(self, scores: torch.Tensor, strict: bool = False) -> torch.Tensor:
        """``scores ⊙ Γ ⊙ M`` (``M`` strictly lower when ``strict``).

        ``scores`` must be a fresh product that nothing else holds: it is masked in place
        (saves one pass over the ``C × C`` blocks; no backward formula reads it).
        """
        if self.gamma is None:
            return scores.tril_(-1) if strict else scores.tril_()
        weighted = scores * self.pairwise
        return weighted.tril_(-1) if strict else weighted


def _scan(
    q: torch.Tensor,
    k: torch.Tensor,
    intra: torch.Tensor,
    u: torch.Tensor,
    w: torch.Tensor | None,
    geometry: _ChunkGeometry,
    state: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Carry the state across chunks, then form every chunk's output in one batched pass.

    The sequential path per chunk is ``Δ_n = U_n − W_n S_n`` (``Δ = U`` for the Hebbian
    rule) and ``S_{n+1} = γ_C S_n + K̃_nᵀ Δ_n`` with ``K̃ = diag(γ_C/γ) K``. The states
    entering each chunk (``T/C`` matrices of ``Dk × Dv`` per head) are kept, so the
    outputs ``O_n = diag(γ) Q_n S_n + intra_n Δ_n`` are computed for all chunks at once.
    ``intra`` is ``Q Kᵀ ⊙ Γ ⊙ M``.
    """
    k_end = k if geometry.gamma is None else k * geometry.to_end
    k_end_t = k_end.transpose(-1, -2)
    if w is None and geometry.gamma is None:
        # Plain Hebbian: the state is a running sum of per-chunk outer products.
        outer = k_end_t @ u
        if outer.shape[2] <= 64:
            # A few additions beat cumsum along a strided dim (and its flip in backward) by ~5x on the CPU.
            partial = [state]
            for piece in outer.unbind(2):
                partial.append(partial[-1] + piece)
            starts, state = torch.stack(partial[:-1], dim=2), partial[-1]
        else:
            running = torch.cat([state.unsqueeze(2), outer], dim=2).cumsum(dim=2)
            starts, state = running[:, :, :-1], running[:, :, -1]
        written = u
    else:
        batch, heads = state.shape[:2]
        flat_state = state.flatten(0, 1)
        # Heads and batch merged once, then one view per chunk: [B·H, ...] operands without per-step indexing.
        u_steps = u.flatten(0, 1).unbind(1)
        k_steps = k_end_t.flatten(0, 1).unbind(1)
        w_steps = (None,) * len(u_steps) if w is None else w.flatten(0, 1).unbind(1)
        gamma_steps = (None,) * len(u_steps) if geometry.gamma is None else geometry.gamma_end.flatten(0, 1).unbind(1)
        collected, deltas = [], []
        for u_n, w_n, k_n, gamma_n in zip(u_steps, w_steps, k_steps, gamma_steps, strict=True):
            collected.append(flat_state)
            delta = u_n if w_n is None else torch.baddbmm(u_n, w_n, flat_state, alpha=-1.0)
            deltas.append(delta)
            if gamma_n is not None:
                flat_state = flat_state * gamma_n
            flat_state = torch.baddbmm(flat_state, k_n, delta)
        state = flat_state.unflatten(0, (batch, heads))
        starts = torch.stack(collected, dim=1).unflatten(0, (batch, heads))
        written = u if w is None else torch.stack(deltas, dim=1).unflatten(0, (batch, heads))

    q_start = q if geometry.gamma is None else q * geometry.gamma
    out = intra @ written
    # Accumulate Q S into the fresh product in place (through a view over the merged batch dims,
    # which `view` guarantees, where `flatten` could silently copy): no extra pass.
    out.view(-1, *out.shape[-2:]).baddbmm_(q_start.flatten(0, 2), starts.flatten(0, 2))
    return out, state


# On the CPU, segments of about this many steps keep every per-chunk intermediate in
# cache; on a GPU one segment spans the whole sequence (all chunks in parallel).
CPU_SEGMENT_STEPS = 1024


def _segment_length(steps: int, chunk_size: int, device: torch.device) -> int:
    if device.type != "cpu":
        return steps
    return max(1, CPU_SEGMENT_STEPS // chunk_size) * chunk_size


def _segmented(run, inputs: list[torch.Tensor | None], chunk_size: int, state: torch.Tensor):
    """Run ``run(pieces, state) -> (chunked out, state)`` over consecutive segments, carrying the state.

    Inputs are cut with ``torch.split`` (whose backward is one concatenation) rather than
    sliced per segment (each slice's backward would materialise a full-length gradient,
    quadratic in T). Each segment's output is put back in the ``[B, T, H, D]`` layout
    while it is small; with autograd the pieces are concatenated at the end, without it
    they are written into the preallocated result as they come.
    """
    first = inputs[0]
    assert first is not None, "the first input (q) is always given"
    length = _segment_length(first.shape[1], chunk_size, first.device)
    split = [None if x is None else torch.split(x, length, dim=1) for x in inputs]
    segments = split[0]
    assert segments is not None
    # Without a graph to record, each segment is written straight into the result, so the
    # segment outputs are never all alive at once (at T = 32768 that halves the fresh
    # memory a call touches, and first touch of a page is what a long call pays for).
    # With one, torch.cat, not slice assignment: its backward splits the gradient, where a
    # chain of in-place slice copies would clone the whole gradient once per segment.
    write_through = len(segments) > 1 and not _needs_graph(inputs, state)
    result, pieces = None, []
    for index, segment in enumerate(segments):
        out, state = run([None if x is None else x[index] for x in split], state)
        piece = _from_chunks(out, segment.shape[1])
        if not write_through:
            pieces.append(piece)
            continue
        if result is None:
            result = piece.new_empty(*first.shape[:3], piece.shape[-1])
        result[:, index * length : index * length + segment.shape[1]] = piece
    if result is None:
        result = pieces[0] if len(pieces) == 1 else torch.cat(pieces, dim=1)
    return result, state


def _needs_graph(inputs: list[torch.Tensor | None], state: torch.Tensor) -> bool:
    return torch.is_grad_enabled() and any(x is not None and x.requires_grad for x in [*inputs, state])


def hebbian_chunk(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    decay: torch.Tensor | None,
    state: torch.Tensor,
    chunk_size: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Chunkwise Hebbian rule; same inputs and result as :func:`neurofwp.tensor.recurrent.hebbian_recurrent`."""
    chunk_size = min(chunk_size, q.shape[1])

    def run(pieces: list, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        q, k, v, decay = pieces
        qc, kc, vc = (_to_chunks(x, chunk_size) for x in (q, k, v))
        log_decay = None if decay is None else _to_chunks(decay.log(), chunk_size)
        geometry = _ChunkGeometry(log_decay, chunk_size, q)
        intra = geometry.weight_lower(qc @ kc.transpose(-1, -2))
        return _scan(qc, kc, intra, vc, None, geometry, state)

    return _segmented(run, [q, k, v, decay], chunk_size, state)


def delta_chunk(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    beta: torch.Tensor,
    decay: torch.Tensor | None,
    state: torch.Tensor,
    chunk_size: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Chunkwise delta rule (WY form); same result as :func:`neurofwp.tensor.recurrent.delta_recurrent`."""
    chunk_size = min(chunk_size, q.shape[1])

    def run(pieces: list, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        q, k, v, beta, decay = pieces
        qc, kc, vc = (_to_chunks(x, chunk_size) for x in (q, k, v))
        beta_c = _to_chunks(beta, chunk_size)  # [B, H, N, C]; padding writes nothing
        log_decay = None if decay is None else _to_chunks(decay.log(), chunk_size)
        geometry = _ChunkGeometry(log_decay, chunk_size, q)

        intra = geometry.weight_lower(qc @ kc.mT)
        lower = geometry.weight_lower(kc @ kc.mT, strict=True) * beta_c[..., None]
        # T = A⁻¹ with A = I + lower unit lower-triangular (diagonal implied, not read), then
        # U = T diag(β) V and W = T diag(βγ) K as plain matrix products: on the CPU one solve
        # against the identity plus two products is faster than one solve against [βV | βγK].
        eye = torch.eye(chunk_size, dtype=lower.dtype, device=lower.device).expand_as(lower)
        inverse = torch.linalg.solve_triangular(lower, eye, upper=False, unitriangular=True)
        inverse_beta = inverse * beta_c[..., None, :]
        u = inverse_beta @ vc
        w = inverse_beta @ (kc if geometry.gamma is None else kc * geometry.gamma)
        return _scan(qc, kc, intra, u, w, geometry, state)

    return _segmented(run, [q, k, v, beta, decay], chunk_size, state)
