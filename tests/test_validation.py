"""Bad input gets a clear error that names the problem."""

import pytest
import torch

from neurofwp.errors import DTypeError, NeurofwpError, NonFiniteError, OutOfRangeError, ShapeError, UnknownNameError
from neurofwp.tensor import delta_rule, delta_step, hebbian_rule


def inputs(T=10, dtype=torch.float32):
    q = torch.randn(2, T, 3, 4, dtype=dtype)
    k = torch.nn.functional.normalize(torch.randn(2, T, 3, 4, dtype=dtype), dim=-1)
    v = torch.randn(2, T, 3, 5, dtype=dtype)
    beta = torch.rand(2, T, 3, dtype=dtype)
    return q, k, v, beta


def test_errors_are_value_or_type_errors_of_one_family():
    assert issubclass(ShapeError, ValueError) and issubclass(ShapeError, NeurofwpError)
    assert issubclass(DTypeError, TypeError) and issubclass(DTypeError, NeurofwpError)


def test_mismatched_q_k_shapes():
    q, k, v, beta = inputs()
    with pytest.raises(ShapeError, match=r"q and k must have the same shape.*\(2, 10, 3, 4\).*\(2, 10, 3, 6\)"):
        hebbian_rule(q, torch.randn(2, 10, 3, 6), v)


def test_value_with_other_time_length():
    q, k, v, beta = inputs()
    with pytest.raises(ShapeError, match="v must share"):
        delta_rule(q, k, v[:, :5], beta)


def test_wrong_ndim_names_layout():
    q, k, v, beta = inputs()
    with pytest.raises(ShapeError, match=r"q must have 4 dims \[B, T, H, Dk\], got 3 dims"):
        hebbian_rule(q[0], k, v)


def test_beta_wrong_shape():
    q, k, v, beta = inputs()
    with pytest.raises(ShapeError, match=r"beta must have shape \[B, T, H\]"):
        delta_rule(q, k, v, beta[:, :, :2])


@pytest.mark.parametrize("bad", [-0.1, 2.5])
def test_beta_outside_zero_two(bad):
    q, k, v, beta = inputs()
    beta[0, 3, 1] = bad
    with pytest.raises(OutOfRangeError, match=r"beta must lie in \[0, 2\]"):
        delta_rule(q, k, v, beta)


@pytest.mark.parametrize("bad", [0.0, 1.5])
def test_decay_outside_zero_one(bad):
    q, k, v, beta = inputs()
    decay = torch.full_like(beta, 0.9)
    decay[1, 0, 0] = bad
    with pytest.raises(OutOfRangeError, match=r"decay must lie in \(0, 1\]"):
        hebbian_rule(q, k, v, decay=decay)


@pytest.mark.parametrize("name", ["q", "k", "v", "beta"])
@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_values_are_named(name, value):
    q, k, v, beta = inputs()
    tensors = {"q": q, "k": k, "v": v, "beta": beta}
    tensors[name][0, 1, 2, ...] = value
    with pytest.raises(NonFiniteError, match=f"{name} holds 1 non-finite|{name} holds"):
        delta_rule(**tensors)


def test_large_finite_values_are_not_flagged():
    """A sum that overflows float32 must not be mistaken for a non-finite input."""
    q, k, v, beta = inputs()
    v = torch.full_like(v, 3e38)
    hebbian_rule(q, k, v, mode="recurrent")  # no error; the result may overflow, the input is valid


def test_unknown_mode():
    q, k, v, beta = inputs()
    with pytest.raises(UnknownNameError, match="unknown mode 'fused'.*chunk, recurrent"):
        hebbian_rule(q, k, v, mode="fused")


@pytest.mark.parametrize("size,error", [(0, OutOfRangeError), (-3, OutOfRangeError), (2.0, DTypeError)])
def test_bad_chunk_size(size, error):
    q, k, v, beta = inputs()
    with pytest.raises(error, match="chunk_size"):
        delta_rule(q, k, v, beta, chunk_size=size)


def test_unsupported_and_mixed_dtypes():
    q, k, v, beta = inputs()
    with pytest.raises(DTypeError, match="float16"):
        hebbian_rule(q.half(), k.half(), v.half())
    with pytest.raises(DTypeError, match="v has dtype torch.float64 but q has torch.float32"):
        hebbian_rule(q, k, v.double())
    with pytest.raises(DTypeError, match="torch.Tensor"):
        hebbian_rule(q.numpy(), k, v)


def test_initial_state_shape_is_checked():
    q, k, v, beta = inputs()
    with pytest.raises(ShapeError, match=r"initial_state must have shape \[B, H, Dk, Dv\] = \(2, 3, 4, 5\)"):
        delta_rule(q, k, v, beta, initial_state=torch.zeros(2, 3, 5, 4))
    with pytest.raises(ShapeError, match="normaliser"):
        hebbian_rule(q, k, v, normalize=True, initial_state=torch.zeros(2, 3, 4, 5))


def test_step_api_checks_layout():
    q, k, v, beta = inputs()
    with pytest.raises(ShapeError, match=r"q of one step must have layout \[B, H, D\]"):
        delta_step(q, k[:, 0], v[:, 0], beta[:, 0])


def test_scale_must_be_finite_number():
    q, k, v, beta = inputs()
    with pytest.raises(NonFiniteError, match="scale"):
        hebbian_rule(q, k, v, scale=float("nan"))
