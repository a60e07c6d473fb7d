import math

import pytest
import torch

from neurofwp.errors import NeurofwpError, OutOfRangeError, UnknownNameError
from neurofwp.tensor import feature_maps as fm


def test_dpfp_hand_computed_example():
    # x = [1, -2, 3] → r = [relu(x), relu(-x)] = [1, 0, 3, 0, 2, 0]
    # roll(r, 1) = [0, 1, 0, 3, 0, 2] → r ⊙ roll(r, 1) = [0, 0, 0, 0, 0, 0]
    # roll(r, 2) = [2, 0, 1, 0, 3, 0] → r ⊙ roll(r, 2) = [2, 0, 3, 0, 6, 0]
    x = torch.tensor([1.0, -2.0, 3.0])
    assert torch.equal(fm.DPFP(nu=1)(x), torch.zeros(6))
    expected = torch.tensor([0.0, 0, 0, 0, 0, 0, 2, 0, 3, 0, 6, 0])
    assert torch.equal(fm.DPFP(nu=2)(x), expected)
    # ν = 3 adds r ⊙ roll(r, 3): roll(r, 3) = [0, 2, 0, 1, 0, 3] → [0, 0, 0, 0, 0, 0]
    assert torch.equal(fm.DPFP(nu=3)(x), torch.cat([expected, torch.zeros(6)]))


@pytest.mark.parametrize("nu", [1, 2, 3])
def test_dpfp_output_size_and_positivity(nu):
    x = torch.randn(4, 7, 16)
    phi = fm.get("dpfp", nu=nu)(x)
    assert phi.shape == (4, 7, 2 * nu * 16)
    assert fm.DPFP(nu).output_dim(16) == 2 * nu * 16
    assert (phi >= 0).all()


def test_dpfp_sum_normalized_sums_to_one():
    phi = fm.get("dpfp", nu=2, normalize_sum=True)(torch.randn(5, 8))
    assert torch.allclose(phi.sum(-1), torch.ones(5))


def test_sum_normalize_keeps_zero_vector_zero():
    assert torch.equal(fm.sum_normalize(torch.zeros(3)), torch.zeros(3))


def test_elu_plus_one_values():
    x = torch.tensor([-1.0, 0.0, 2.0])
    assert torch.allclose(fm.get("elu+1")(x), torch.tensor([math.exp(-1.0), 1.0, 3.0]))


@pytest.mark.parametrize("orthogonal", [True, False], ids=["orthogonal", "iid"])
def test_favor_plus_is_unbiased_for_exp_kernel(orthogonal):
    """E_W[φ(q)ᵀφ(k)] = exp(qᵀk). Mean over 200 independent draws (seeds 0..199, m = 128 features each)
    must lie within 4 standard errors and within 3 % of the exact kernel."""
    g = torch.Generator().manual_seed(7)
    q = torch.randn(8, generator=g, dtype=torch.float64) * 0.4
    k = torch.randn(8, generator=g, dtype=torch.float64) * 0.4
    estimates = []
    for seed in range(200):
        phi = fm.FavorPlus(8, 128, seed=seed, orthogonal=orthogonal).double()
        estimates.append(phi(q) @ phi(k))
    estimates = torch.stack(estimates)
    exact = torch.exp(q @ k)
    standard_error = estimates.std() / math.sqrt(len(estimates))
    assert abs(estimates.mean() - exact) < 4 * standard_error
    assert abs(estimates.mean() - exact) / exact < 0.03


def test_favor_plus_is_seeded_and_positive():
    a, b, c = fm.FavorPlus(6, 32, seed=1), fm.FavorPlus(6, 32, seed=1), fm.FavorPlus(6, 32, seed=2)
    x = torch.randn(3, 6)
    assert torch.equal(a(x), b(x))
    assert not torch.equal(a(x), c(x))
    assert (a(x) > 0).all() and a(x).shape == (3, 32)


def test_unknown_feature_map_names_the_choices():
    with pytest.raises(UnknownNameError, match="unknown feature map 'relu'.*dpfp"):
        fm.get("relu")


def test_bad_feature_map_parameters():
    with pytest.raises(OutOfRangeError, match="nu"):
        fm.DPFP(nu=0)
    with pytest.raises(NeurofwpError, match="input_dim"):
        fm.get("favor+")
    with pytest.raises(NeurofwpError, match="drawn for inputs of size 4"):
        fm.FavorPlus(4, 8)(torch.randn(2, 5))
