"""Analysis tests: what one fast weight matrix can store under each rule."""

import pytest
import torch

from neurofwp.analysis import retrieval_curve
from neurofwp.tensor import delta_rule, hebbian_rule


def orthonormal_keys(n, dim, seed=0):
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(dim, dim, generator=g, dtype=torch.float64))
    return q[:, :n].T  # rows are orthonormal


def store(rule, keys, values, beta=1.0):
    k, v = keys[None, :, None, :], values[None, :, None, :]
    if rule == "delta":
        _, state = delta_rule(k, k, v, torch.full(k.shape[:3], beta, dtype=k.dtype), output_final_state=True)
    else:
        _, state = hebbian_rule(k, k, v, output_final_state=True)
    return keys @ state[0, 0]


@pytest.mark.parametrize("n", [1, 7, 16])
def test_delta_rule_recalls_orthonormal_keys_exactly(n):
    keys = orthonormal_keys(n, 16)
    values = torch.randn(n, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    assert torch.allclose(store("delta", keys, values), values, atol=1e-12)


def test_delta_rule_overwrites_a_repeated_key():
    """Writing a key twice keeps only the newest value (β = 1); the Hebbian rule sums both."""
    keys = orthonormal_keys(3, 8)
    keys = torch.cat([keys, keys[:1]])
    values = torch.randn(4, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    delta = store("delta", keys, values)
    hebbian = store("hebbian", keys, values)
    assert torch.allclose(delta[0], values[3], atol=1e-12)
    assert torch.allclose(hebbian[0], values[0] + values[3], atol=1e-12)


def test_hebbian_interferes_beyond_key_dimension():
    """More unit keys than Dk cannot be orthogonal: the sum rule's cross-talk corrupts every recall."""
    d_key, n = 16, 48
    g = torch.Generator().manual_seed(3)
    keys = torch.nn.functional.normalize(torch.randn(n, d_key, generator=g, dtype=torch.float64), dim=-1)
    values = torch.randn(n, 8, generator=g, dtype=torch.float64)
    error = ((store("hebbian", keys, values) - values) ** 2).sum() / (values**2).sum()
    # Expected cross-talk (n − 1)/Dk ≈ 2.9 for random unit keys; demand at least half of it.
    assert error > 0.5 * (n - 1) / d_key
    # Orthonormal keys up to Dk: no interference even for the sum rule.
    ortho = orthonormal_keys(d_key, d_key)
    assert torch.allclose(store("hebbian", ortho, values[:d_key]), values[:d_key], atol=1e-12)


def test_hebbian_crosstalk_matches_random_key_theory():
    """For random unit keys E[(k_i·k_j)²] = 1/Dk, so the sum rule's error is (S − 1)/Dk on average."""
    curve = retrieval_curve(
        [16, 64, 128], d_key=64, rules=["hebbian"], feature_maps_=["identity"], seeds=range(20), show_progress=False
    )
    measured = curve.sel(rule="hebbian", feature_map="identity").mean("seed")
    expected = (measured.n_pairs - 1) / 64
    assert (abs(measured - expected) / expected < 0.15).all()


def test_retrieval_curve_delta_beats_hebbian_and_is_labelled():
    curve = retrieval_curve([32, 64, 128], d_key=32, show_progress=False)
    assert curve.dims == ("rule", "feature_map", "seed", "n_pairs")
    assert curve.attrs["units"] == "1"
    assert list(curve.d_fast.values) == [32, 64]  # identity, DPFP nu=1
    mean = curve.mean("seed")
    assert (mean.sel(rule="delta") < mean.sel(rule="hebbian")).all()
    # Error grows with the number of stored pairs for every rule and map.
    assert (mean.diff("n_pairs") > 0).all()
