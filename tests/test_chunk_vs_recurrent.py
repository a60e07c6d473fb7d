"""The chunkwise fast path equals the step-by-step reference, forward and every gradient."""

import pytest
import torch
from conftest import TOLERANCE, make_inputs, relative_error

from neurofwp.tensor import chunk, delta_rule, hebbian_rule

CASES = [
    # (B, T, H, Dk, Dv, chunk_size): T deliberately not a multiple of chunk_size
    pytest.param(2, 37, 3, 8, 5, 8, id="B2-T37-H3-D8x5-C8"),
    pytest.param(1, 100, 2, 16, 16, 16, id="B1-T100-H2-D16-C16"),
    pytest.param(1, 9, 1, 4, 6, 64, id="T-shorter-than-chunk"),
    pytest.param(1, 20, 2, 6, 3, 1, id="chunk-size-1"),
]


def run(rule, mode, inputs, chunk_size, normalize=False):
    common = dict(
        mode=mode,
        chunk_size=chunk_size,
        decay=inputs.get("decay"),
        initial_state=inputs.get("initial_state"),
        output_final_state=True,
    )
    if rule == "delta":
        return delta_rule(inputs["q"], inputs["k"], inputs["v"], inputs["beta"], **common)
    return hebbian_rule(inputs["q"], inputs["k"], inputs["v"], normalize=normalize, **common)


def loss_and_grads(rule, mode, inputs, chunk_size, weights, normalize=False):
    leaves = {name: x.detach().clone().requires_grad_(True) for name, x in inputs.items()}
    if rule == "hebbian":
        leaves.pop("beta")
    out, state = run(rule, mode, leaves, chunk_size, normalize)
    loss = (out * weights["out"]).sum() + (state * weights["state"][..., : state.shape[-1]]).sum()
    loss.backward()
    return out.detach(), state.detach(), {name: x.grad for name, x in leaves.items()}


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("decay", [False, True], ids=["plain", "decay"])
@pytest.mark.parametrize(
    "rule,normalize",
    [("delta", False), ("hebbian", False), ("hebbian", True)],
    ids=["delta", "hebbian", "hebbian-normalized"],
)
@pytest.mark.parametrize("B,T,H,Dk,Dv,C", CASES)
def test_chunk_matches_recurrent_forward_and_gradients(B, T, H, Dk, Dv, C, rule, normalize, decay, dtype, generator):
    inputs = make_inputs(
        B, T, H, Dk, Dv, dtype, generator, decay=decay, initial_state=True, normalize_extra=1 if normalize else 0
    )
    if normalize:  # positive features keep the normaliser away from zero
        inputs["q"], inputs["k"] = inputs["q"].abs(), inputs["k"].abs()
        inputs["initial_state"] = inputs["initial_state"].abs()
    weights = {
        "out": torch.randn(B, T, H, Dv, generator=generator, dtype=torch.float64).to(dtype),
        "state": torch.randn(B, H, Dk, Dv + 1, generator=generator, dtype=torch.float64).to(dtype),
    }
    ref_out, ref_state, ref_grads = loss_and_grads(rule, "recurrent", inputs, C, weights, normalize)
    out, state, grads = loss_and_grads(rule, "chunk", inputs, C, weights, normalize)
    tol = TOLERANCE[dtype]
    assert relative_error(out, ref_out) < tol
    assert relative_error(state, ref_state) < tol
    assert set(grads) == set(ref_grads)
    for name in ref_grads:
        assert relative_error(grads[name], ref_grads[name]) < tol, name


@pytest.mark.parametrize("rule", ["delta", "hebbian"])
@pytest.mark.parametrize("decay", [False, True], ids=["plain", "decay"])
def test_segmented_cpu_path_matches_recurrent(rule, decay, generator, monkeypatch):
    """Long CPU sequences are processed in segments that carry the state; segment borders are exact."""
    monkeypatch.setattr(chunk, "CPU_SEGMENT_STEPS", 16)
    inputs = make_inputs(1, 75, 2, 8, 4, torch.float64, generator, decay=decay, initial_state=True)
    weights = {
        "out": torch.randn(1, 75, 2, 4, dtype=torch.float64, generator=generator),
        "state": torch.randn(1, 2, 8, 5, dtype=torch.float64, generator=generator),
    }
    ref = loss_and_grads(rule, "recurrent", inputs, 8, weights)
    fast = loss_and_grads(rule, "chunk", inputs, 8, weights)
    assert chunk._segment_length(75, 8, torch.device("cpu")) == 16
    assert relative_error(fast[0], ref[0]) < 1e-10
    assert relative_error(fast[1], ref[1]) < 1e-10
    for name in ref[2]:
        assert relative_error(fast[2][name], ref[2][name]) < 1e-10, name


@pytest.mark.parametrize(
    "rule,normalize", [("delta", False), ("hebbian", False), ("hebbian", True)], ids=["delta", "hebbian", "normalized"]
)
@pytest.mark.parametrize("decay", [False, True], ids=["plain", "decay"])
def test_segmented_path_without_graph_matches_recurrent(rule, normalize, decay, generator, monkeypatch):
    """Without autograd, segments are written straight into the result: same output and final state."""
    monkeypatch.setattr(chunk, "CPU_SEGMENT_STEPS", 16)
    inputs = make_inputs(
        2, 75, 2, 8, 4, torch.float64, generator, decay=decay, initial_state=True, normalize_extra=int(normalize)
    )
    if normalize:  # positive features keep the normaliser away from zero
        inputs["q"], inputs["k"] = inputs["q"].abs(), inputs["k"].abs()
        inputs["initial_state"] = inputs["initial_state"].abs()
    ref_out, ref_state = run(rule, "recurrent", inputs, 8, normalize)
    with torch.no_grad():
        out, state = run(rule, "chunk", inputs, 8, normalize)
    assert not out.requires_grad
    assert relative_error(out, ref_out) < 1e-10
    assert relative_error(state, ref_state) < 1e-10


def test_long_sequence_default_segments(generator):
    """T > CPU_SEGMENT_STEPS with the default settings, float32 against the float64 reference."""
    inputs = make_inputs(1, 1300, 2, 16, 16, torch.float64, generator, decay=True)
    ref, _ = delta_rule(inputs["q"], inputs["k"], inputs["v"], inputs["beta"], mode="recurrent", decay=inputs["decay"])
    f32 = {name: x.float() for name, x in inputs.items()}
    fast, _ = delta_rule(f32["q"], f32["k"], f32["v"], f32["beta"], decay=f32["decay"])
    assert fast.dtype == torch.float32
    assert relative_error(fast, ref) < 1e-4


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("rule", ["delta", "hebbian"])
def test_cuda_matches_cpu(rule, generator):
    inputs = make_inputs(2, 300, 4, 32, 32, torch.float64, generator, decay=True, initial_state=True)
    cpu_out, cpu_state = run(rule, "chunk", inputs, 64)
    gpu_out, gpu_state = run(rule, "chunk", {n: x.cuda() for n, x in inputs.items()}, 64)
    assert relative_error(gpu_out.cpu(), cpu_out) < 1e-10
    assert relative_error(gpu_state.cpu(), cpu_state) < 1e-10
