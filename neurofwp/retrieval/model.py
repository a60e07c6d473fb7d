r"""The retrieval model of Schlag, Irie & Schmidhuber (2021), section 6.1, on the tensor core.

Each pair :math:`(k_t, v_t)` is embedded as :math:`x_t = [\mathrm{onehot}(v_t); E k_t]`
(``E`` a trained key embedding of size ``int(2·S·1.1)``); the value written is the fixed
one-hot vector itself. With :math:`\phi` the feature map and a query key :math:`q`:

- ``*-sum`` (Hebbian, sum-normalised read-out):
  :math:`W = \sum_t \phi(W_k x_t)\, \mathrm{onehot}(v_t)^\top`,
  :math:`\hat y = W^\top \phi(W_q E q) / (z^\top \phi(W_q E q) + 10^{-6})`,
  :math:`z = \sum_t \phi(W_k x_t)`; this is :func:`neurofwp.tensor.hebbian_rule` with
  ``normalize=True``.
- ``*-delta`` (delta rule with a learned learning rate): keys and queries are
  sum-normalised, :math:`\bar k_t = \phi(W_k x_t) / \sum \phi(W_k x_t)`,
  :math:`\beta_t = \sigma(w_\beta^\top x_t + b_\beta)`,
  :math:`W_t = W_{t-1} + \beta_t \bar k_t (\mathrm{onehot}(v_t) - W_{t-1}^\top \bar k_t)^\top`,
  :math:`\hat y = W_L^\top \bar q`; this is :func:`neurofwp.tensor.delta_rule`.
- ``softmax``: :math:`\hat y = \sum_t \mathrm{softmax}_t(k_t^\top q / \sqrt{d})\, \mathrm{onehot}(v_t)`,
  the upper reference.

Feature maps by name: ``linear`` (ELU+1, size 64), ``dpfp<ν>`` (size 128ν), ``favor<m>``
(FAVOR+ with m positive random features, redrawn at every forward pass as in the
paper's code). The queries are read out by appending them as steps with zero keys, which
write nothing, so one call of the rule both stores the sequence and answers every query.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from neurofwp.errors import UnknownNameError
from neurofwp.retrieval.task import Batch, RetrievalTask
from neurofwp.tensor import feature_maps
from neurofwp.tensor.rules import delta_rule, hebbian_rule

__all__ = ["ModelSpec", "RetrievalModel", "parse_model", "MODEL_PATTERN"]

#: The model names :func:`parse_model` accepts.
MODEL_PATTERN = "softmax, or <map>-<rule> with map linear | dpfp<nu> | favor<m> and rule sum | delta"
_NAME = re.compile(r"(?P<map>linear|dpfp(?P<nu>[1-9]\d*)|favor(?P<m>[1-9]\d*))-(?P<update>sum|delta)")


@dataclass(frozen=True)
class ModelSpec:
    """A parsed model name such as ``dpfp2-delta``."""

    name: str
    feature_map: str  # "linear", "dpfp", "favor" or "softmax"
    order: int  # DPFP nu or FAVOR+ m; 0 otherwise
    update: str  # "sum", "delta" or "softmax"

    def d_dot(self, d_key: int) -> int:
        """Size of the fast-weight key space :math:`\\phi(k)`."""
        if self.feature_map == "dpfp":
            return 2 * self.order * d_key
        if self.feature_map == "favor":
            return self.order
        return d_key


def parse_model(name: str) -> ModelSpec:
    """``softmax`` or ``<map>-<rule>`` (see :data:`MODEL_PATTERN`)."""
    if name == "softmax":
        return ModelSpec(name, "softmax", 0, "softmax")
    match = _NAME.fullmatch(name) if isinstance(name, str) else None
    if match is None:
        raise UnknownNameError("retrieval model", name, [MODEL_PATTERN])
    kind = match["map"].rstrip("0123456789")
    order = int(match["nu"] or match["m"] or 0)
    return ModelSpec(name, kind, order, match["update"])


class RetrievalModel(nn.Module):
    """Slow network (key embedding, projections) programming one fast weight matrix."""

    def __init__(self, task: RetrievalTask, spec: ModelSpec, *, d_key: int = 64, favor_seed: int = 0):
        super().__init__()
        self.task, self.spec, self.d_key = task, spec, d_key
        n_values = task.num_values
        embedding = int(2 * task.num_keys * 1.1)
        self.key_embedding = nn.Embedding(task.num_keys, embedding)
        self.to_key = nn.Linear(embedding + n_values, d_key)
        self.to_query = nn.Linear(embedding, d_key)
        self.to_beta = nn.Linear(embedding + n_values, 1) if spec.update == "delta" else None
        nn.init.normal_(self.key_embedding.weight, 0.0, 1.0)
        if spec.update == "softmax":
            nn.init.xavier_uniform_(self.to_key.weight)
            nn.init.xavier_uniform_(self.to_query.weight)
        else:
            bound = 1.0 / math.sqrt(d_key)
            nn.init.uniform_(self.to_key.weight, -bound, bound)
            nn.init.uniform_(self.to_query.weight, -bound, bound)
        self.phi: feature_maps.FeatureMap | None = None
        if spec.feature_map == "linear":
            self.phi = feature_maps.get("elu+1")
        elif spec.feature_map == "dpfp":
            self.phi = feature_maps.get("dpfp", nu=spec.order)
        elif spec.feature_map == "favor":
            self.phi = feature_maps.get("favor+", d_key, num_features=spec.order, seed=favor_seed)
            self._favor_generator = torch.Generator().manual_seed(favor_seed)

    def forward(self, batch: Batch) -> torch.Tensor:
        """Predicted value vectors ``[B, Q, S]`` for every query of the batch."""
        one_hot = F.one_hot(batch.values, self.task.num_values).to(self.to_key.weight.dtype)
        pairs = torch.cat([one_hot, self.key_embedding(batch.keys)], dim=-1)
        keys = self.to_key(pairs)
        queries = self.to_query(self.key_embedding(batch.queries))
        if self.spec.update == "softmax":
            scores = torch.einsum("bld,bqd->bql", keys, queries) / math.sqrt(self.d_key)
            return scores.softmax(dim=-1) @ one_hot
        assert self.phi is not None
        if isinstance(self.phi, feature_maps.FavorPlus):
            self.phi.resample_(self._favor_generator)
        phi_k, phi_q = self.phi(keys), self.phi(queries)
        if self.spec.update == "delta":
            phi_k, phi_q = feature_maps.sum_normalize(phi_k), feature_maps.sum_normalize(phi_q)
        # Queries become extra steps with zero keys: they write nothing and read the final memory.
        n_queries = phi_q.shape[1]
        k = torch.cat([phi_k, phi_k.new_zeros(phi_k.shape[0], n_queries, phi_k.shape[2])], dim=1)[:, :, None]
        q = torch.cat([torch.zeros_like(phi_k), phi_q], dim=1)[:, :, None]
        v = torch.cat([one_hot, one_hot.new_zeros(one_hot.shape[0], n_queries, one_hot.shape[2])], dim=1)[:, :, None]
        if self.spec.update == "sum":
            out, _ = hebbian_rule(q, k, v, normalize=True, eps=1e-6)
        else:
            assert self.to_beta is not None
            beta = torch.sigmoid(self.to_beta(pairs))[..., 0]
            beta = torch.cat([beta, beta.new_zeros(beta.shape[0], n_queries)], dim=1)[:, :, None]
            out, _ = delta_rule(q, k, v, beta)
        return out[:, -n_queries:, 0]
