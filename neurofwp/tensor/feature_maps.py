r"""Feature maps :math:`\phi` applied to keys and queries before the fast-weight rules.

Every map is a :class:`FeatureMap` (an ``nn.Module``) acting on the last dim of its
input and reporting its output size with :meth:`FeatureMap.output_dim`. Build one by
name with :func:`get`; ``normalize_sum=True`` divides the features by their sum
(:math:`\phi / \sum_i \phi_i`), as Schlag et al. (2021) do for keys and queries.

=========== ================================================ ==================
name        :math:`\phi(x)`                                  output size
=========== ================================================ ==================
identity    :math:`x`                                        :math:`D`
elu+1       :math:`\mathrm{ELU}(x) + 1`                      :math:`D`
dpfp        see :class:`DPFP`                                :math:`2 \nu D`
favor+      see :class:`FavorPlus`                           ``num_features``
=========== ================================================ ==================
"""

from __future__ import annotations

import abc
import math

import torch
import torch.nn.functional as F
from torch import nn

from neurofwp.errors import DTypeError, OutOfRangeError, ShapeError, UnknownNameError

__all__ = ["FeatureMap", "Identity", "EluPlusOne", "DPFP", "FavorPlus", "sum_normalize", "get", "NAMES"]


def sum_normalize(x: torch.Tensor) -> torch.Tensor:
    r""":math:`\phi / \sum_i \phi_i` over the last dim; an all-zero feature vector stays zero."""
    total = x.sum(dim=-1, keepdim=True)
    return x / total.clamp_min(torch.finfo(x.dtype).tiny)


class FeatureMap(nn.Module, abc.ABC):
    """Base class: ``forward`` maps ``[..., D]`` to ``[..., output_dim(D)]``."""

    def __init__(self, normalize_sum: bool = False):
        super().__init__()
        self.normalize_sum = normalize_sum

    def output_dim(self, input_dim: int) -> int:
        """Size of φ(x) for an input of size ``input_dim`` (the fast weights' key size ``Dk``)."""
        return input_dim

    @abc.abstractmethod
    def features(self, x: torch.Tensor) -> torch.Tensor:
        """φ(x) before the optional sum normalisation; each map defines it."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """φ(x) on the last dim of ``x``, divided by its sum when ``normalize_sum``."""
        if not isinstance(x, torch.Tensor):
            raise DTypeError(f"feature maps take a torch.Tensor, got {type(x).__name__}")
        if x.ndim < 1:
            raise ShapeError("feature maps act on the last dim; got a 0-dim tensor")
        phi = self.features(x)
        return sum_normalize(phi) if self.normalize_sum else phi

    def extra_repr(self) -> str:
        return f"normalize_sum={self.normalize_sum}"


class Identity(FeatureMap):
    r""":math:`\phi(x) = x` (plain linear attention; not positive, so not for ``normalize_sum``)."""

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return x


class EluPlusOne(FeatureMap):
    r""":math:`\phi(x) = \mathrm{ELU}(x) + 1` (Katharopoulos et al. 2020), positive, size :math:`D`."""

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return F.elu(x) + 1.0


class DPFP(FeatureMap):
    r"""Deterministic parameter-free projection (Schlag, Irie & Schmidhuber 2021, Eq. 13).

    With :math:`r(x) = [\mathrm{ReLU}(x), \mathrm{ReLU}(-x)] \in \mathbb{R}^{2D}`,

    .. math::

        \phi_{\nu}(x) = \big[\, r(x) \odot \mathrm{roll}(r(x), i) \,\big]_{i = 1..\nu}
        \in \mathbb{R}^{2 \nu D},

    where :math:`\mathrm{roll}(r, i)_j = r_{j - i}` (cyclic) and the blocks for
    :math:`i = 1, \dots, \nu` are concatenated.
    """

    def __init__(self, nu: int = 1, normalize_sum: bool = False):
        super().__init__(normalize_sum)
        if isinstance(nu, bool) or not isinstance(nu, int) or nu < 1:
            raise OutOfRangeError(f"DPFP order nu must be an int >= 1, got {nu!r}")
        self.nu = nu

    def output_dim(self, input_dim: int) -> int:
        return 2 * self.nu * input_dim

    def features(self, x: torch.Tensor) -> torch.Tensor:
        r = torch.cat([F.relu(x), F.relu(-x)], dim=-1)
        if self.nu > r.shape[-1] - 1:
            raise OutOfRangeError(f"DPFP order nu={self.nu} needs nu < 2*D = {r.shape[-1]}")
        return torch.cat([r * r.roll(shifts=i, dims=-1) for i in range(1, self.nu + 1)], dim=-1)

    def extra_repr(self) -> str:
        return f"nu={self.nu}, " + super().extra_repr()


class FavorPlus(FeatureMap):
    r"""FAVOR+ positive random features (Choromanski et al. 2021).

    .. math::

        \phi(x) = \frac{1}{\sqrt{m}} \exp\!\big(W x - \tfrac{1}{2}\lVert x \rVert^2\big),
        \qquad \mathbb{E}_W[\phi(q)^\top \phi(k)] = \exp(q^\top k),

    with ``m = num_features`` rows of ``W`` drawn from :math:`\mathcal{N}(0, I_D)`; with
    ``orthogonal=True`` (default) the rows are orthogonal within blocks of ``D`` and
    rescaled to chi-distributed norms, which keeps the expectation and lowers the variance.
    The draw is fixed by ``seed`` and stored as a buffer (it moves with ``.to()``).
    """

    projection: torch.Tensor  # registered buffer, [num_features, input_dim]

    def __init__(
        self,
        input_dim: int,
        num_features: int = 64,
        *,
        seed: int = 0,
        orthogonal: bool = True,
        normalize_sum: bool = False,
    ):
        super().__init__(normalize_sum)
        for name, value in (("input_dim", input_dim), ("num_features", num_features)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise OutOfRangeError(f"FAVOR+ {name} must be an int >= 1, got {value!r}")
        self.input_dim, self.num_features, self.seed, self.orthogonal = input_dim, num_features, seed, orthogonal
        generator = torch.Generator().manual_seed(seed)
        self.register_buffer("projection", self._draw(generator), persistent=True)

    def _draw(self, generator: torch.Generator) -> torch.Tensor:
        d, m = self.input_dim, self.num_features
        gaussian = torch.randn(m, d, generator=generator, dtype=torch.float64)
        if not self.orthogonal:
            return gaussian.float()
        blocks = []
        for start in range(0, m, d):
            square = torch.randn(d, d, generator=generator, dtype=torch.float64)
            q, r = torch.linalg.qr(square)
            # Fix the sign convention of QR so that the directions are uniform (Haar).
            q = q * torch.sign(torch.diagonal(r)).where(torch.diagonal(r) != 0, 1.0)
            blocks.append(q.T[: min(d, m - start)])
        directions = torch.cat(blocks, dim=0)
        norms = gaussian.norm(dim=1, keepdim=True)  # chi(d)-distributed, like Gaussian rows
        return (directions * norms).float()

    @torch.no_grad()
    def resample_(self, generator: torch.Generator) -> FavorPlus:
        """Draw a new projection in place from ``generator`` (feature redrawing, as Performers do in training)."""
        self.projection.copy_(self._draw(generator).to(self.projection))
        return self

    def output_dim(self, input_dim: int) -> int:
        return self.num_features

    def features(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != self.input_dim:
            raise ShapeError(f"FAVOR+ was drawn for inputs of size {self.input_dim}, got last dim {x.shape[-1]}")
        projection = self.projection.to(dtype=x.dtype, device=x.device)
        exponent = x @ projection.T - 0.5 * (x * x).sum(dim=-1, keepdim=True)
        return exponent.exp() / math.sqrt(self.num_features)

    def extra_repr(self) -> str:
        return (
            f"input_dim={self.input_dim}, num_features={self.num_features}, seed={self.seed}, " + super().extra_repr()
        )


NAMES = ("identity", "elu+1", "dpfp", "favor+")


def get(name: str, input_dim: int | None = None, *, normalize_sum: bool = False, **options) -> FeatureMap:
    """Build a feature map by name: ``identity``, ``elu+1``, ``dpfp`` (``nu=``), ``favor+``
    (``num_features=``, ``seed=``).

    ``input_dim`` is needed by ``favor+`` only (its random projection has that width).
    """
    allowed = {"dpfp": ("nu",), "favor+": ("num_features", "seed", "orthogonal")}.get(name, ())
    for option in options:
        if option not in allowed:
            raise UnknownNameError(f"option of feature map {name!r}", option, allowed or ("(none)",))
    if name == "identity":
        return Identity(normalize_sum, **options)
    if name == "elu+1":
        return EluPlusOne(normalize_sum, **options)
    if name == "dpfp":
        return DPFP(normalize_sum=normalize_sum, **options)
    if name == "favor+":
        if input_dim is None:
            raise ShapeError("favor+ needs input_dim (the key/query size it projects)")
        return FavorPlus(input_dim, normalize_sum=normalize_sum, **options)
    raise UnknownNameError("feature map", name, NAMES)
