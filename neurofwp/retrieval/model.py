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

- ``*-<rule>`` (a spiking rule as the write rule, :mod:`neurofwp.plasticity.rate_reading`): the
  pair :math:`(x_t)` is presented for ``dt_ms``; the key is the presynaptic activity
  :math:`k_t = \bar\phi(W_k x_t)` (sum-normalised, as for the delta rule), the value the postsynaptic
  activity :math:`v_t = \mathrm{onehot}(v_t) + W_v x_t` (``W_v`` trained from 0: the slow network
  programs the values too), and the rule's rate reading writes the fast weights :math:`W_L`.
  The read-out is L2-normalised, :math:`\hat y = W_L^\top \bar q / (\lVert W_L^\top \bar q \rVert + 10^{-6})`,
  so that the rule's amplitudes (about 1 % per pairing for the fitted biological values) set the
  pattern stored, not the scale read. Parameters are fixed (defaults, e.g. the values fitted to
  biological data, or those of a rule file) or, with ``+trained``, the rule's ``free`` parameters
  are trained with the slow network within their bounds (time constants on a log scale), and a
  learning rate (a parameter called ``eta`` or described as a learning rate) is programmed per
  step, :math:`\eta_t = \sigma(w_\eta^\top x_t + b_\eta)`.

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

from neurofwp.errors import OutOfRangeError, UnknownNameError
from neurofwp.plasticity.definition import Rule
from neurofwp.plasticity.rate_reading import RateReading, rate_reading
from neurofwp.plasticity.rules import RULES, resolve_rule
from neurofwp.retrieval.task import Batch, RetrievalTask
from neurofwp.tensor import feature_maps
from neurofwp.tensor.rules import delta_rule, hebbian_rule

__all__ = ["DT_MS", "MODEL_PATTERN", "ModelSpec", "RetrievalModel", "default_dt_ms", "learning_rate", "parse_model"]

#: The model names :func:`parse_model` accepts.
MODEL_PATTERN = (
    "softmax, or <map>-<rule>[@<dt>ms][+trained] with map linear | dpfp<nu> | favor<m> and rule sum | delta "
    "(tensor rules) or a spiking rule: a built-in name (stdp, triplet, ...) or rule:<built-in name or rule file path>"
)
_NAME = re.compile(
    r"(?P<map>linear|dpfp(?P<nu>[1-9]\d*)|favor(?P<m>[1-9]\d*))-(?P<update>.+?)"
    r"(?:@(?P<dt>\d+(?:\.\d*)?|\.\d+)ms)?(?P<trained>\+trained)?"
)
#: Presentation time of one pair for an event-driven rule (10 Hz); a clock-driven rule's default
#: is its shortest trace time constant (Euler factor 0: the spiking delta rule is the delta rule).
DT_MS = 100.0


@dataclass(frozen=True)
class ModelSpec:
    """A parsed model name such as ``dpfp2-delta`` or ``dpfp2-triplet+trained``."""

    name: str
    feature_map: str  # "linear", "dpfp", "favor" or "softmax"
    order: int  # DPFP nu or FAVOR+ m; 0 otherwise
    update: str  # "sum", "delta", "softmax" or "rule" (a spiking rule's rate reading)
    rule: str = ""  # for "rule": the built-in name or rule file path
    dt_ms: float = 0.0  # for "rule": presentation time of one pair
    trained: bool = False  # for "rule": its free parameters trained with the slow network

    def reading(self) -> RateReading:
        """The rate reading of the write rule (``update == "rule"``)."""
        rule = resolve_rule(self.rule)
        return rate_reading(rule, free=rule.free if self.trained else ())

    def describe(self) -> str:
        """The write rule and how its parameters are set (stored with the results)."""
        if self.update != "rule":
            return {"sum": "Hebbian (sum)", "delta": "delta, learned beta", "softmax": "softmax attention"}[self.update]
        reading = self.reading()
        if self.trained:
            rate = learning_rate(reading.rule)
            programmed = f"; learning rate {rate} programmed per step" if rate else ""
            how = f"trained: {', '.join(n for n in reading.free if n != rate) or 'none'}{programmed}"
        else:
            how = "fixed: " + ", ".join(f"{n}={v:g}" for n, v in reading.fixed)
        return f"rule {reading.rule.name} ({reading.form} form), dt={self.dt_ms:g} ms, parameters {how}"

    def d_dot(self, d_key: int) -> int:
        """Size of the fast-weight key space :math:`\\phi(k)`."""
        if self.feature_map == "dpfp":
            return 2 * self.order * d_key
        if self.feature_map == "favor":
            return self.order
        return d_key


def learning_rate(rule: Rule) -> str:
    """The rule's learning-rate parameter (named ``eta`` or described as a learning rate), or ``""``."""
    for p in rule.parameters:
        if p.name == "eta" or p.description.lower().startswith("learning rate"):
            return p.name
    return ""


def default_dt_ms(rule: Rule) -> float:
    """:data:`DT_MS` for an event-driven rule; a clock-driven rule's shortest trace time constant."""
    if not rule.clock_driven:
        return DT_MS
    by_symbol = {p.symbol: p for p in rule.parameters}
    return min(by_symbol[t.tau].default for t in rule.traces)


def parse_model(name: str) -> ModelSpec:
    """``softmax`` or ``<map>-<rule>[@<dt>ms][+trained]`` (see :data:`MODEL_PATTERN`).

    A spiking rule's reading is derived here, so a rule that is not an outer-product write
    raises :class:`~neurofwp.plasticity.definition.RuleError` before any training.
    """
    if name == "softmax":
        return ModelSpec(name, "softmax", 0, "softmax")
    match = _NAME.fullmatch(name) if isinstance(name, str) else None
    if match is None:
        raise UnknownNameError("retrieval model", name, [MODEL_PATTERN])
    kind = match["map"].rstrip("0123456789")
    order = int(match["nu"] or match["m"] or 0)
    update = match["update"]
    if update in ("sum", "delta"):
        if match["dt"] or match["trained"]:
            raise UnknownNameError("retrieval model", name, [MODEL_PATTERN])
        return ModelSpec(name, kind, order, update)
    if update.startswith("rule:"):
        rule = resolve_rule(update[len("rule:") :])
    elif update in RULES:
        rule = RULES[update]
    else:
        raise UnknownNameError("retrieval model", name, [MODEL_PATTERN])
    dt_ms = float(match["dt"]) if match["dt"] else default_dt_ms(rule)
    if not dt_ms > 0:
        raise OutOfRangeError(f"retrieval model {name!r}: the presentation time must be > 0 ms")
    source = update[len("rule:") :] if update.startswith("rule:") else update
    spec = ModelSpec(name, kind, order, "rule", source, dt_ms, bool(match["trained"]))
    reading = spec.reading()  # not an outer-product write: RuleError now
    if rule.clock_driven:  # the Euler factor 1 - dt/tau must stay >= 0
        probe = torch.zeros(1, 1, 1, 1, dtype=torch.float64)
        reading.traces(probe, probe, dt_ms=dt_ms)
    return spec


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
        self.reading: RateReading | None = None
        self.to_value: nn.Linear | None = None
        self.to_rate: nn.Linear | None = None
        self.rule_parameters = nn.ParameterDict()
        if spec.update == "rule":
            self.reading = spec.reading()
            self.to_value = nn.Linear(embedding + n_values, n_values)
            nn.init.zeros_(self.to_value.weight)  # values start as the one-hot vectors
            nn.init.zeros_(self.to_value.bias)
            rate = learning_rate(self.reading.rule) if spec.trained else ""
            if rate:
                self.to_rate = nn.Linear(embedding + n_values, 1)
            for name in self.reading.free:
                if name != rate:
                    p = self.reading.rule.parameter(name)
                    start = math.log(p.default) if p.is_time else p.default
                    self.rule_parameters[name] = nn.Parameter(torch.tensor(start))
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
        if self.spec.update == "rule":
            return self._rule_forward(pairs, one_hot, phi_k, phi_q)
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

    def rule_values(self, pairs: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """The trained rule parameters within their bounds (time constants from a log scale, at least
        ``dt_ms`` for a clock-driven rule), and with ``pairs`` the programmed learning rate ``[B, L, 1]``."""
        assert self.reading is not None
        rule = self.reading.rule
        values = {}
        for name, raw in self.rule_parameters.items():
            p = rule.parameter(name)
            low, high = p.bounds
            if p.is_time:
                low = max(low, self.spec.dt_ms) if rule.clock_driven else low
                log_low = math.log(low) if low > 0 else -math.inf
                values[name] = torch.exp(torch.clamp(raw, log_low, math.log(high)))
            else:
                values[name] = torch.clamp(raw, low, high)
        if self.to_rate is not None and pairs is not None:
            p = rule.parameter(learning_rate(rule))
            values[p.name] = min(1.0, p.bounds[1]) * torch.sigmoid(self.to_rate(pairs))
        return values

    def _rule_forward(self, pairs, one_hot, phi_k, phi_q) -> torch.Tensor:
        assert self.reading is not None and self.to_value is not None
        keys, queries = feature_maps.sum_normalize(phi_k), feature_maps.sum_normalize(phi_q)
        values = one_hot + self.to_value(pairs)
        memory = self.reading.final_state(
            keys[:, :, None], values[:, :, None], dt_ms=self.spec.dt_ms, parameters=self.rule_values(pairs)
        )
        out = torch.einsum("bkv,bqk->bqv", memory[:, 0], queries)
        return out / (out.norm(dim=-1, keepdim=True) + 1e-6)
