r"""Associative retrieval sequences (Schlag, Irie & Schmidhuber 2021, section 6.1).

A sequence is ``L`` (key, value) pairs drawn from ``S`` keys and ``S`` values, followed by a
query key; the target is the value paired with the query at its last occurrence.

- Setting 1 (capacity): ``L = S``, keys and values drawn without replacement, so
  each key occurs once and all ``S`` associations must be stored.
- Setting 2 (update rules): ``L = 2S``, keys and values drawn with replacement, so keys
  recur with new values and the memory must overwrite old associations.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from neurofwp.errors import OutOfRangeError

__all__ = ["Batch", "RetrievalTask"]


@dataclass(frozen=True)
class Batch:
    """``keys``/``values`` ``[B, L]`` (int64 indices), ``queries``/``targets`` ``[B, Q]``."""

    keys: torch.Tensor
    values: torch.Tensor
    queries: torch.Tensor
    targets: torch.Tensor

    def to(self, device: str | torch.device) -> Batch:
        return Batch(*(t.to(device) for t in (self.keys, self.values, self.queries, self.targets)))


@dataclass(frozen=True)
class RetrievalTask:
    """Sampler for one setting (1 or 2) and one number of keys ``S``."""

    setting: int
    num_keys: int

    def __post_init__(self):
        if self.setting not in (1, 2):
            raise OutOfRangeError(f"setting must be 1 (capacity) or 2 (update rules), got {self.setting!r}")
        if isinstance(self.num_keys, bool) or not isinstance(self.num_keys, (int, np.integer)) or self.num_keys < 2:
            raise OutOfRangeError(f"the number of keys S must be an int >= 2, got {self.num_keys!r}")

    @property
    def num_values(self) -> int:
        return self.num_keys

    @property
    def length(self) -> int:
        """The sequence length L (S in setting 1, 2S in setting 2)."""
        return self.num_keys if self.setting == 1 else 2 * self.num_keys

    def _sequences(self, count: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        shape = (count, self.length)
        if self.setting == 1:
            keys = rng.random(shape).argsort(axis=1)
            values = rng.random(shape).argsort(axis=1)
        else:
            keys = rng.integers(0, self.num_keys, shape)
            values = rng.integers(0, self.num_values, shape)
        return keys, values

    @staticmethod
    def _last_occurrence(keys: np.ndarray, query: np.ndarray) -> np.ndarray:
        """Index of the last position where ``keys[b] == query[b, j]``, shape of ``query``."""
        positions = np.arange(keys.shape[1])
        hits = keys[:, None, :] == query[:, :, None]
        return np.where(hits, positions, -1).max(axis=-1)

    @staticmethod
    def _batch(keys, values, queries, targets) -> Batch:
        return Batch(
            *(torch.as_tensor(np.ascontiguousarray(a), dtype=torch.long) for a in (keys, values, queries, targets))
        )

    def sample(self, batch_size: int, rng: np.random.Generator) -> Batch:
        """A training batch: one query per sequence, a key drawn uniformly from the sequence."""
        keys, values = self._sequences(batch_size, rng)
        query = keys[np.arange(batch_size), rng.integers(0, self.length, batch_size)][:, None]
        last = self._last_occurrence(keys, query)
        return self._batch(keys, values, query, np.take_along_axis(values, last, axis=1))

    def sample_all_queries(self, rng: np.random.Generator) -> Batch:
        """One sequence queried at every distinct key it holds (``B = 1``, ``Q`` = number of distinct keys)."""
        keys, values = self._sequences(1, rng)
        query = np.unique(keys[0])[None, :]
        last = self._last_occurrence(keys, query)
        return self._batch(keys, values, query, np.take_along_axis(values, last, axis=1))
