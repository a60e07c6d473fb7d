import pytest
import torch

# Small tensors throughout, and tests that start worker processes beside this one: a single
# intra-op thread avoids OpenMP threads spinning against each other on a loaded machine.
torch.set_num_threads(1)


def relative_error(actual: torch.Tensor, expected: torch.Tensor) -> float:
    """Relative RMS error ‖actual − expected‖ / ‖expected‖ (computed in float64)."""
    actual, expected = actual.detach().double(), expected.detach().double()
    return float((actual - expected).norm() / expected.norm().clamp_min(1e-300))


# Stated tolerances for fast path vs reference, in relative RMS error.
TOLERANCE = {torch.float64: 1e-10, torch.float32: 1e-4}


@pytest.fixture
def generator():
    return torch.Generator().manual_seed(1234)


def make_inputs(
    batch, steps, heads, d_key, d_value, dtype, generator, *, decay=False, initial_state=False, normalize_extra=0
):
    """Random inputs with L2-normalised keys (the delta rule is a contraction along each key)."""

    def randn(*shape):
        return torch.randn(*shape, generator=generator, dtype=torch.float64).to(dtype)

    q = randn(batch, steps, heads, d_key)
    k = torch.nn.functional.normalize(randn(batch, steps, heads, d_key), dim=-1)
    v = randn(batch, steps, heads, d_value)
    beta = torch.rand(batch, steps, heads, generator=generator, dtype=torch.float64).to(dtype)
    inputs = {"q": q, "k": k, "v": v, "beta": beta}
    if decay:
        inputs["decay"] = (0.8 + 0.2 * torch.rand(batch, steps, heads, generator=generator, dtype=torch.float64)).to(
            dtype
        )
    if initial_state:
        inputs["initial_state"] = randn(batch, heads, d_key, d_value + normalize_extra)
    return inputs


@pytest.fixture
def run_cli():
    """Invoke the ``neurofwp`` command line in-process; returns click's Result (exit_code, output)."""
    from click.testing import CliRunner

    from neurofwp.cli import main

    def invoke(*args: str):
        return CliRunner().invoke(main, list(args))

    return invoke
