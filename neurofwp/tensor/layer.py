r"""The fast weight layer: a slow network that programs fast weights at every step.

For an input sequence :math:`x_t \in \mathbb{R}^{d_\text{model}}` and each head,

.. math::

    k_t = \mathrm{norm}(\phi(W_k x_t)),\quad q_t = \mathrm{norm}(\phi(W_q x_t)),\quad v_t = W_v x_t,\quad
    \beta_t = \sigma(w_\beta^\top x_t + b_\beta),\quad
    \alpha_t = \sigma(w_\alpha^\top x_t + b_\alpha)\ \text{(optional)},

the fast weights ``S`` are written by the chosen rule (:func:`~neurofwp.tensor.hebbian_rule`
or :func:`~neurofwp.tensor.delta_rule`, whose learning rate is the *learned, dynamic*
:math:`\beta_t`) and read with :math:`q_t`; the heads' outputs are concatenated and
projected back: :math:`y_t = W_o [S_t^{(h)\top} q_t^{(h)}]_h`. This is the Fast Weight
Programmer of Schlag, Irie & Schmidhuber (2021); with the Hebbian rule it is a linear
Transformer layer.

The keys always satisfy the delta rule's stability condition
:math:`0 \le \beta_t \lVert k_t \rVert^2 \le 2` unless ``key_norm="none"``: ``"sum"`` divides
:math:`\phi` by its L1 norm, :math:`\lVert k \rVert_1 = 1`, hence
:math:`\lVert k \rVert_2^2 \le \lVert k \rVert_1^2 = 1`; ``"l2"`` gives :math:`\lVert k \rVert_2 = 1`
(an all-zero feature vector stays zero under both). With :math:`\beta_t = \sigma(\cdot) \in (0, 1)`,
or a constant :math:`\beta \in [0, 2]`, :math:`\beta_t \lVert k_t \rVert^2 \le \beta_t \le 2`.
"""

from __future__ import annotations

from typing import Any, TypedDict

import torch
from torch import nn

from neurofwp.errors import DTypeError, OutOfRangeError, ShapeError, UnknownNameError
from neurofwp.tensor import feature_maps
from neurofwp.tensor._validate import check_finite
from neurofwp.tensor.rules import delta_rule, delta_step, hebbian_rule, hebbian_step

RULES = ("hebbian", "delta")
KEY_NORMS = ("sum", "l2", "none")


class Program(TypedDict):
    """What :meth:`FastWeightLayer.program` returns; only ``decay`` may be absent (``None``)."""

    q: torch.Tensor
    k: torch.Tensor
    v: torch.Tensor
    beta: torch.Tensor
    decay: torch.Tensor | None


class FastWeightLayer(nn.Module):
    """Multi-head fast weight layer (see the module docstring for the equations).

    Args:
        d_model: input and output size.
        num_heads: number of heads ``H``.
        head_dim: key/query size per head before the feature map (default ``d_model // H``,
            which then must divide evenly).
        value_dim: value size per head (default ``head_dim``).
        rule: ``"delta"`` (default) or ``"hebbian"``.
        feature_map: a name of :mod:`neurofwp.tensor.feature_maps` or a ``FeatureMap``.
        feature_map_options: keyword arguments of the feature map (``nu=`` for DPFP, ...).
        key_norm: ``"sum"`` (divide features by their sum, :math:`\\phi / \\sum_i |\\phi_i|`, the
            plain sum for the non-negative maps; default except for ``identity``), ``"l2"`` (unit
            length; default for ``identity``) or ``"none"``. The delta rule is stable when
            :math:`0 \\le \\beta \\lVert \\phi(k) \\rVert^2 \\le 2`, which both norms ensure (see the
            module docstring); with ``"none"`` meeting it is up to the feature map, and
            :func:`~neurofwp.tensor.delta_rule` raises ``NonFiniteError`` if the fast weights diverge.
        learned_beta: compute :math:`\\beta_t = \\sigma(w_\\beta^\\top x_t + b_\\beta)` (delta rule); otherwise
            use the constant ``beta``.
        beta: constant learning rate when ``learned_beta=False``.
        gated: learn a forget gate :math:`\\alpha_t = \\sigma(w_\\alpha^\\top x_t + b_\\alpha)` (gated variants).
        normalize: attention normaliser of the Hebbian rule (see :func:`~neurofwp.tensor.rules.hebbian_rule`).
        mode, chunk_size: passed to the rule.
    """

    def __init__(
        self,
        d_model: int,
        num_heads: int = 4,
        head_dim: int | None = None,
        value_dim: int | None = None,
        *,
        rule: str = "delta",
        feature_map: str | feature_maps.FeatureMap = "dpfp",
        feature_map_options: dict | None = None,
        key_norm: str | None = None,
        learned_beta: bool = True,
        beta: float = 1.0,
        gated: bool = False,
        normalize: bool = False,
        mode: str = "chunk",
        chunk_size: int = 64,
    ):
        super().__init__()
        if rule not in RULES:
            raise UnknownNameError("rule", rule, RULES)
        for name, value in (("d_model", d_model), ("num_heads", num_heads)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise OutOfRangeError(f"{name} must be an int >= 1, got {value!r}")
        for name, size in (("head_dim", head_dim), ("value_dim", value_dim)):
            if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 1):
                raise OutOfRangeError(f"{name} must be an int >= 1 or None, got {size!r}")
        if head_dim is None:
            # d_model // num_heads would silently drop the remainder (d_model=10, 4 heads: size 2).
            if d_model % num_heads:
                raise OutOfRangeError(
                    f"d_model must be divisible by num_heads when head_dim is not given, got d_model={d_model} "
                    f"and num_heads={num_heads}; choose num_heads among the divisors of {d_model} "
                    "or pass head_dim explicitly"
                )
            head_dim = d_model // num_heads
        value_dim = value_dim or head_dim
        if isinstance(feature_map, str):
            feature_map = feature_maps.get(feature_map, head_dim, **(feature_map_options or {}))
        if key_norm is None:
            key_norm = "l2" if isinstance(feature_map, feature_maps.Identity) else "sum"
        if key_norm not in KEY_NORMS:
            raise UnknownNameError("key_norm", key_norm, KEY_NORMS)
        if not 0.0 <= beta <= 2.0:
            raise OutOfRangeError(f"beta must lie in [0, 2], got {beta}")

        self.rule, self.mode, self.chunk_size, self.normalize = rule, mode, chunk_size, normalize
        self.num_heads, self.head_dim, self.value_dim = num_heads, head_dim, value_dim
        self.feature_map, self.key_norm = feature_map, key_norm
        self.learned_beta, self.beta, self.gated = learned_beta, beta, gated
        self.query_key = nn.Linear(d_model, 2 * num_heads * head_dim, bias=False)
        self.value = nn.Linear(d_model, num_heads * value_dim, bias=False)
        self.beta_proj = nn.Linear(d_model, num_heads) if learned_beta and rule == "delta" else None
        self.decay_proj = nn.Linear(d_model, num_heads) if gated else None
        self.out = nn.Linear(num_heads * value_dim, d_model, bias=False)

    @property
    def fast_dim(self) -> int:
        """Key size of the fast weights, ``Dk`` = feature map output size."""
        return self.feature_map.output_dim(self.head_dim)

    def _norm(self, phi: torch.Tensor) -> torch.Tensor:
        if self.key_norm == "sum":
            # The L1 norm, not the signed sum: equal for non-negative maps, and for a signed
            # φ (identity with key_norm="sum") it still gives ‖φ‖₂ ≤ 1, so β‖k‖² ≤ 2 holds.
            total = phi.abs().sum(dim=-1, keepdim=True)
            return phi / total.clamp_min(torch.finfo(phi.dtype).tiny)
        if self.key_norm == "l2":
            return torch.nn.functional.normalize(phi, dim=-1)
        return phi

    def program(self, x: torch.Tensor) -> Program:
        """The slow network's instructions for ``x [..., d_model]``: q, k ``[..., H, Dk]``, v, beta, decay."""
        heads = self.num_heads
        q, k = self.query_key(x).unflatten(-1, (2, heads, self.head_dim)).unbind(-3)
        v = self.value(x).unflatten(-1, (heads, self.value_dim))
        q, k = self._norm(self.feature_map(q)), self._norm(self.feature_map(k))
        if self.beta_proj is not None:
            beta = torch.sigmoid(self.beta_proj(x))
        else:
            beta = x.new_full((*x.shape[:-1], heads), self.beta)
        decay = torch.sigmoid(self.decay_proj(x)) if self.decay_proj is not None else None
        return {"q": q, "k": k, "v": v, "beta": beta, "decay": decay}

    def _check_input(self, x: torch.Tensor, ndim: int, layout: str) -> None:
        if not isinstance(x, torch.Tensor) or x.ndim != ndim or x.shape[-1] != self.query_key.in_features:
            got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ShapeError(
                f"FastWeightLayer expects x of layout {layout} with d_model={self.query_key.in_features}, got {got}"
            )
        weight = self.query_key.weight
        if x.dtype != weight.dtype or x.device != weight.device:
            raise DTypeError(
                f"x is {x.dtype} on {x.device} but the layer's weights are {weight.dtype} on {weight.device}; "
                "convert one of them (x.to(...) or layer.to(...))"
            )
        check_finite("x", x)

    def forward(
        self, x: torch.Tensor, state: torch.Tensor | None = None, return_state: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Map ``x [B, T, d_model]`` to ``y [B, T, d_model]``; optionally start from and return the fast weights."""
        self._check_input(x, 3, "[B, T, d_model]")
        p = self.program(x)
        common: dict[str, Any] = dict(
            mode=self.mode, chunk_size=self.chunk_size, decay=p["decay"], initial_state=state, output_final_state=True
        )
        if self.rule == "delta":
            o, final = delta_rule(p["q"], p["k"], p["v"], p["beta"], **common)
        else:
            o, final = hebbian_rule(p["q"], p["k"], p["v"], normalize=self.normalize, **common)
        assert final is not None  # output_final_state=True
        y = self.out(o.flatten(-2))
        return (y, final) if return_state else y

    def step(self, x: torch.Tensor, state: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """One online step: ``x [B, d_model]`` → ``(y [B, d_model], new_state)``."""
        self._check_input(x, 2, "[B, d_model]")
        p = self.program(x)
        if self.rule == "delta":
            o, new_state = delta_step(p["q"], p["k"], p["v"], p["beta"], state, decay=p["decay"])
        else:
            o, new_state = hebbian_step(p["q"], p["k"], p["v"], state, decay=p["decay"], normalize=self.normalize)
        return self.out(o.flatten(-2)), new_state
