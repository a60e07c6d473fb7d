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


@pytest.mark.parametrize("mode", ["chunk", "recurrent"])
def test_large_finite_values_are_not_flagged(mode):
    """Sums of the inputs and of the result overflow float32 while every element is finite:
    neither the inputs nor the result may be mistaken for non-finite."""
    k = torch.nn.functional.one_hot(torch.arange(10) % 4, 4).float().reshape(1, 10, 1, 4).expand(2, 10, 3, 4)
    v = torch.full((2, 10, 3, 5), 3e38)
    out, state = delta_rule(k, k, v, torch.ones(2, 10, 3), mode=mode, output_final_state=True)
    assert not bool(torch.isfinite(out.sum())) and not bool(torch.isfinite(v.sum()))
    assert bool((out == 3e38).all()) and bool(torch.isfinite(state).all())


def test_swapped_layout_is_named_not_beta():
    """q, k, v as [B, H, T, D] (4 heads, 1000 steps) with beta [B, T, H]: an error about the layout."""
    q = torch.rand(1, 4, 1000, 32)
    beta = torch.rand(1, 1000, 4)
    with pytest.raises(ShapeError) as caught:
        delta_rule(q, q, q, beta)
    message = str(caught.value)
    assert message.startswith("q, k, v look like [B, H, T, D]"), message
    assert "[batch, time, heads, features]" in message and ".transpose(1, 2)" in message
    # The same with a decay gate, and with an initial state, for the rule without beta.
    with pytest.raises(ShapeError, match=r"^q, k, v look like \[B, H, T, D\].*\.transpose\(1, 2\)"):
        hebbian_rule(q, q, q, decay=beta)
    with pytest.raises(ShapeError, match=r"^q, k, v look like \[B, H, T, D\].*\.transpose\(1, 2\)"):
        hebbian_rule(q, q, q, initial_state=torch.zeros(1, 4, 32, 32))


def test_beta_in_heads_first_layout_is_named():
    """Correct q, k, v (more steps than heads) with beta [B, H, T]: beta is the one to transpose."""
    q, k, v, beta = inputs(T=10)
    with pytest.raises(ShapeError, match=r"^beta looks like \[B, H, T\].*transpose beta with \.transpose\(1, 2\)"):
        delta_rule(q, k, v, beta.transpose(1, 2))


def test_shape_messages_state_the_layout():
    q, k, v, beta = inputs()
    with pytest.raises(ShapeError, match=r"beta must have shape \[B, T, H\].*\[batch, time, heads, features\]"):
        delta_rule(q, k, v, beta[:1])
    with pytest.raises(ShapeError, match=r"v must share \[B, T, H\].*\[batch, time, heads, features\]"):
        hebbian_rule(q, k, v[:, :4])


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
