"""No silent NaN: finite inputs whose result is NaN or inf raise NonFiniteError naming the cause.

The delta rule's write :math:`S \\mapsto (I - \\beta k k^\\top) S + \\beta k v^\\top` is
non-expansive only while :math:`0 \\le \\beta \\lVert k \\rVert^2 \\le 2`; beyond it the fast
weights grow geometrically until they overflow. The README's example without
``normalize_sum=True`` is such a case (unnormalised DPFP keys, β‖k‖² above 100).
"""

from __future__ import annotations

import pytest
import torch

from neurofwp.errors import NonFiniteError
from neurofwp.tensor import delta_rule, delta_step, feature_maps, hebbian_rule, hebbian_step

STABILITY = "0 ≤ β‖k‖² ≤ 2"


def readme_inputs(normalize_sum: bool, T: int = 1000):
    """The README snippet (B, T, H, D = 1, 1000, 4, 32; DPFP with nu=2), seeded."""
    generator = torch.Generator().manual_seed(0)
    B, H, D = 1, 4, 32
    phi = feature_maps.get("dpfp", nu=2, normalize_sum=normalize_sum)
    q = phi(torch.randn(B, T, H, D, generator=generator))
    k = phi(torch.randn(B, T, H, D, generator=generator))
    v, beta = torch.randn(B, T, H, D, generator=generator), torch.rand(B, T, H, generator=generator)
    return q, k, v, beta


@pytest.mark.parametrize("mode", ["chunk", "recurrent"])
def test_readme_snippet_without_normalisation_raises(mode):
    """Before: 103,424 NaN of 128,000 outputs (chunk mode) and a NaN state, silently."""
    q, k, v, beta = readme_inputs(normalize_sum=False)
    assert all(bool(torch.isfinite(x).all()) for x in (q, k, v, beta))
    with pytest.raises(NonFiniteError) as caught:
        delta_rule(q, k, v, beta, mode=mode, output_final_state=True)
    message = str(caught.value)
    assert message.startswith("the delta rule produced NaN or inf from finite inputs")
    load = float((beta * k.square().sum(-1)).max())  # the largest β‖k‖² of the call, far above 2
    assert load > 100 and STABILITY in message and f"β‖k‖² reaches {load:.4g};" in message
    assert "normalize_sum=True" in message and "smaller beta" in message
    assert "\n" not in message


def test_readme_snippet_with_normalisation_is_finite_and_in_the_stable_range():
    q, k, v, beta = readme_inputs(normalize_sum=True)
    assert float((beta * k.square().sum(-1)).max()) <= 1.0  # ‖k‖₂ ≤ ‖k‖₁ = 1, β < 1
    o, state = delta_rule(q, k, v, beta, output_final_state=True)
    assert bool(torch.isfinite(o).all()) and bool(torch.isfinite(state).all())


def test_state_alone_non_finite_is_caught():
    """Only the final state is returned by some callers: a NaN there raises even when ``o`` is discarded."""
    q, k, v, beta = readme_inputs(normalize_sum=False, T=200)
    with pytest.raises(NonFiniteError, match="in the final state"):
        delta_rule(q, k, v, beta, output_final_state=False)


def test_streaming_delta_step_raises_on_the_step_that_overflows():
    """Raw torch.rand keys (‖k‖² ≈ D/3 ≈ 11) with β = 1: finite but huge first, then NaN."""
    generator = torch.Generator().manual_seed(0)
    B, H, D = 1, 2, 32
    state, largest = None, 0.0
    with pytest.raises(NonFiniteError, match=STABILITY):
        for _ in range(1000):
            k = torch.rand(B, H, D, generator=generator)
            out, state = delta_step(k, k, torch.randn(B, H, D, generator=generator), torch.ones(B, H), state)
            largest = max(largest, float(out.abs().max()))
    assert largest > 1e20  # the finite-but-meaningless phase the documentation warns about


def test_condition_met_but_values_overflow_says_so():
    """Unit keys (β‖k‖² = 1) but a query scaled past the float32 range: an overflow, not instability."""
    k = torch.nn.functional.one_hot(torch.arange(3) % 4, 4).float().reshape(1, 3, 1, 4)
    v = torch.full((1, 3, 1, 2), 1e30)
    with pytest.raises(NonFiniteError, match=r"the stability condition β‖k‖² ≤ 2 holds \(at most 1\).*overflowed"):
        delta_rule(k, k, v, torch.ones(1, 3, 1), scale=1e10)


@pytest.mark.parametrize("mode", ["chunk", "recurrent"])
def test_hebbian_overflow_names_the_sum(mode):
    """The Hebbian state is an unbounded sum: 10 writes of 3e38 overflow float32."""
    k = torch.nn.functional.normalize(torch.ones(1, 10, 2, 4), dim=-1)
    v = torch.full((1, 10, 2, 3), 3e38)
    with pytest.raises(NonFiniteError, match="Hebbian state .* unbounded sum and overflowed torch.float32") as caught:
        hebbian_rule(k, k, v, mode=mode)
    assert "v holds" not in str(caught.value)  # the inputs are finite and not blamed


def test_hebbian_zero_normaliser_is_named():
    """normalize=True with a signed (identity) feature map: zᵀq + eps can reach 0, giving 0/0."""
    k = torch.tensor([1.0, -1.0]).reshape(1, 1, 1, 2).expand(1, 4, 1, 2)
    q = torch.tensor([1.0, 1.0]).reshape(1, 1, 1, 2).expand(1, 4, 1, 2)  # zᵀq = 0 at every step
    v = torch.randn(1, 4, 1, 3)
    with pytest.raises(NonFiniteError, match="normaliser zᵀq \\+ eps reached zero"):
        hebbian_rule(q, k, v, normalize=True, eps=0.0)
    with pytest.raises(NonFiniteError, match="normaliser"):
        hebbian_step(q[:, 0], k[:, 0], v[:, 0], normalize=True, eps=0.0)


@pytest.mark.parametrize("normalize", [False, True])
def test_finite_results_do_not_raise(normalize):
    """Ordinary inputs still pass in both rules and modes."""
    q, k, v, beta = readme_inputs(normalize_sum=True, T=100)
    for mode in ("chunk", "recurrent"):
        out, _ = hebbian_rule(q, k, v, mode=mode, normalize=normalize)
        assert bool(torch.isfinite(out).all())
        out, _ = delta_rule(q, k, v, beta, mode=mode)
        assert bool(torch.isfinite(out).all())
