"""The reference recurrence itself, against independent expectations."""

import numpy as np
import pytest
import torch
from conftest import make_inputs, relative_error

from neurofwp.tensor import delta_rule, delta_step, hebbian_rule, hebbian_step


def numpy_delta(q, k, v, beta, decay):
    """The delta rule written directly from its equations, one head and batch at a time, in numpy."""
    B, T, H, Dk = q.shape
    out = np.zeros(v.shape)
    for b in range(B):
        for h in range(H):
            S = np.zeros((Dk, v.shape[-1]))
            for t in range(T):
                S = decay[b, t, h] * S
                S = S + beta[b, t, h] * np.outer(k[b, t, h], v[b, t, h] - S.T @ k[b, t, h])
                out[b, t, h] = S.T @ q[b, t, h]
    return out


def test_delta_rule_matches_numpy_transcription(generator):
    x = make_inputs(2, 30, 2, 5, 3, torch.float64, generator, decay=True)
    expected = numpy_delta(*(x[n].numpy() for n in ("q", "k", "v", "beta", "decay")))
    for mode in ("recurrent", "chunk"):
        out, _ = delta_rule(x["q"], x["k"], x["v"], x["beta"], decay=x["decay"], mode=mode, chunk_size=7)
        assert relative_error(out, torch.from_numpy(expected)) < 1e-12


@pytest.mark.parametrize("normalize", [False, True])
@pytest.mark.parametrize("mode", ["recurrent", "chunk"])
def test_hebbian_equals_causal_linear_attention(mode, normalize, generator):
    """Schlag et al. 2021: the Hebbian FWP is causal linear attention, (φ(Q)φ(K)ᵀ ⊙ M) V (normalised by row sums)."""
    x = make_inputs(2, 50, 3, 6, 4, torch.float64, generator)
    phi_q, phi_k = torch.nn.functional.elu(x["q"]) + 1, torch.nn.functional.elu(x["k"]) + 1
    scores = torch.einsum("bthd,bshd->bhts", phi_q, phi_k).tril()
    attention = torch.einsum("bhts,bshv->bthv", scores, x["v"])
    if normalize:
        attention = attention / (scores.sum(-1).transpose(1, 2)[..., None] + 1e-6)
    out, _ = hebbian_rule(phi_q, phi_k, x["v"], mode=mode, chunk_size=16, normalize=normalize)
    assert relative_error(out, attention) < 1e-10


def test_scale_multiplies_queries(generator):
    x = make_inputs(1, 20, 2, 4, 4, torch.float64, generator)
    scaled, _ = delta_rule(x["q"], x["k"], x["v"], x["beta"], scale=0.125)
    manual, _ = delta_rule(x["q"] * 0.125, x["k"], x["v"], x["beta"])
    assert relative_error(scaled, manual) < 1e-14


def test_decay_one_is_no_decay(generator):
    x = make_inputs(1, 20, 2, 4, 4, torch.float64, generator)
    ones = torch.ones_like(x["beta"])
    a, _ = delta_rule(x["q"], x["k"], x["v"], x["beta"], decay=ones)
    b, _ = delta_rule(x["q"], x["k"], x["v"], x["beta"])
    assert relative_error(a, b) < 1e-14


def test_delta_rule_with_beta_zero_never_writes(generator):
    x = make_inputs(1, 20, 2, 4, 4, torch.float64, generator, initial_state=True)
    out, state = delta_rule(
        x["q"], x["k"], x["v"], torch.zeros_like(x["beta"]), initial_state=x["initial_state"], output_final_state=True
    )
    assert torch.equal(state, x["initial_state"])
    assert relative_error(out, torch.einsum("bhkv,bthk->bthv", x["initial_state"], x["q"])) < 1e-14


@pytest.mark.parametrize("rule", ["delta", "hebbian"])
@pytest.mark.parametrize("mode", ["recurrent", "chunk"])
@pytest.mark.parametrize("split", [1, 13, 32, 49])
def test_chaining_equals_one_run(rule, mode, split, generator):
    """Running [0, t) then [t, T) with the carried state equals running [0, T)."""
    x = make_inputs(2, 50, 2, 6, 5, torch.float64, generator, decay=True)

    def call(sl, state):
        common = dict(mode=mode, chunk_size=8, decay=x["decay"][:, sl], initial_state=state, output_final_state=True)
        if rule == "delta":
            return delta_rule(x["q"][:, sl], x["k"][:, sl], x["v"][:, sl], x["beta"][:, sl], **common)
        return hebbian_rule(x["q"][:, sl], x["k"][:, sl], x["v"][:, sl], **common)

    whole, whole_state = call(slice(None), None)
    first, state = call(slice(0, split), None)
    second, state = call(slice(split, None), state)
    assert relative_error(torch.cat([first, second], dim=1), whole) < 1e-12
    assert relative_error(state, whole_state) < 1e-12


def test_chaining_with_normaliser_state(generator):
    x = make_inputs(1, 40, 2, 6, 5, torch.float64, generator)
    q, k = x["q"].abs(), x["k"].abs()
    whole, _ = hebbian_rule(q, k, x["v"], normalize=True)
    first, state = hebbian_rule(q[:, :17], k[:, :17], x["v"][:, :17], normalize=True, output_final_state=True)
    assert state.shape == (1, 2, 6, 6)  # Dv + 1: the normaliser z is the last column
    second, _ = hebbian_rule(q[:, 17:], k[:, 17:], x["v"][:, 17:], normalize=True, initial_state=state)
    assert relative_error(torch.cat([first, second], 1), whole) < 1e-12


@pytest.mark.parametrize("rule", ["delta", "hebbian"])
def test_streaming_steps_equal_sequence(rule, generator):
    x = make_inputs(2, 25, 3, 4, 4, torch.float64, generator, decay=True)
    if rule == "delta":
        whole, final = delta_rule(x["q"], x["k"], x["v"], x["beta"], decay=x["decay"], output_final_state=True)
    else:
        whole, final = hebbian_rule(x["q"], x["k"], x["v"], decay=x["decay"], output_final_state=True)
    state, outputs = None, []
    for t in range(25):
        if rule == "delta":
            o, state = delta_step(
                x["q"][:, t], x["k"][:, t], x["v"][:, t], x["beta"][:, t], state, decay=x["decay"][:, t]
            )
        else:
            o, state = hebbian_step(x["q"][:, t], x["k"][:, t], x["v"][:, t], state, decay=x["decay"][:, t])
        outputs.append(o)
    assert relative_error(torch.stack(outputs, 1), whole) < 1e-12
    assert relative_error(state, final) < 1e-12


def test_empty_sequence_returns_initial_state(generator):
    x = make_inputs(1, 0, 2, 3, 3, torch.float64, generator, initial_state=True)
    out, state = delta_rule(
        x["q"], x["k"], x["v"], x["beta"], initial_state=x["initial_state"], output_final_state=True
    )
    assert out.shape == (1, 0, 2, 3)
    assert torch.equal(state, x["initial_state"])
