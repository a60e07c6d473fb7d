"""The spiking rules against analytic results and published numbers."""

import math

import numpy as np
import pytest

from neurofwp import data, plasticity
from neurofwp.errors import NonFiniteError, OutOfRangeError, UnknownNameError
from neurofwp.plasticity import torch_backend
from neurofwp.protocols import make_protocol

BACKENDS = ["torch", "brian2"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_single_pair_gives_the_stdp_window(backend):
    deltas = [1.0, 5.0, 10.0, 40.0]
    protocols = [make_protocol(f"+{d}", [0], [d], 1, 1) for d in deltas]
    protocols += [make_protocol(f"-{d}", [d], [0], 1, 1) for d in deltas]
    params = {"A_plus": 0.01, "A_minus": 0.012, "tau_plus_ms": 16.8, "tau_minus_ms": 33.7}
    w = plasticity.simulate("stdp", protocols, params, backend=backend)[:, 0]
    expected = [0.01 * math.exp(-d / 16.8) for d in deltas] + [-0.012 * math.exp(-d / 33.7) for d in deltas]
    assert np.allclose(w - 1, expected, rtol=1e-12, atol=0)


@pytest.mark.parametrize("backend", BACKENDS)
def test_simultaneous_spikes_process_pre_first(backend):
    w = plasticity.simulate("stdp", [make_protocol("zero", [0], [0], 1, 1)], backend=backend)[0, 0]
    assert w - 1 == pytest.approx(0.01, rel=1e-12)  # pre first: x = 1 when the post spike reads it


def test_triplet_reproduces_pfister_gerstner_on_sjostrom():
    """Visual cortex, all-to-all, minimal model of Pfister & Gerstner (2006): E ≈ 0.41 on these data."""
    params = {
        "A2_plus": 0.0,
        "A3_plus": 6.5e-3,
        "A2_minus": 7.1e-3,
        "A3_minus": 0.0,
        "tau_plus_ms": 16.8,
        "tau_minus_ms": 33.7,
        "tau_y_ms": 114.0,
    }
    result = plasticity.predict("triplet", data.protocols("sjostrom2001"), params)
    assert result.attrs["E"] == pytest.approx(0.41, abs=0.02)
    # the frequency dependence that a pair rule lacks: LTP grows with frequency at +10 ms
    plus = result.dw_percent_model.sel(protocol=[f"pair+10ms@{f}Hz" for f in ("0.1", "10", "20", "40", "50")])
    assert (plus.diff("protocol") > 0).all()


def test_pair_rule_has_no_frequency_dependence_at_low_rates():
    """All-to-all pair STDP at well separated repetitions: each pairing contributes the same amount."""
    low = [make_protocol(f"{hz}", [0], [10], hz, 60) for hz in (0.1, 0.5, 1.0)]
    w = plasticity.simulate("stdp", low)[:, 0]
    assert np.allclose(w - 1, 60 * 0.01 * math.exp(-10 / 16.8), rtol=1e-6)


def test_nearest_spike_differs_from_all_to_all_only_when_traces_overlap():
    isolated = [make_protocol("iso", [0], [10], 1, 5)]
    dense = [make_protocol("dense", [0, 2, 4], [10], 20, 5)]
    for rule in ("stdp", "triplet"):
        all_to_all = plasticity.simulate(rule, isolated)
        nearest = plasticity.simulate(f"{rule}-nearest", isolated)
        assert np.allclose(all_to_all, nearest, rtol=1e-9)
    assert not np.allclose(plasticity.simulate("stdp", dense), plasticity.simulate("stdp-nearest", dense))


def test_modulated_rule_reduces_to_pair_stdp():
    protocols = data.protocols("sjostrom2001")
    pair = plasticity.simulate("stdp", protocols)
    saturated = plasticity.simulate("stdp-modulated", protocols, {"c": 40.0})  # β = σ(40) = 1
    assert np.allclose(saturated, pair, rtol=1e-12)
    half = plasticity.simulate("stdp-modulated", protocols)  # a = b = c = 0: β = 1/2
    assert np.allclose(half - 1, (pair - 1) / 2, rtol=1e-12)
    # a > 0: β grows with postsynaptic activity, so the change at 50 Hz is larger than with β = 1/2
    boosted = plasticity.simulate("stdp-modulated", protocols, {"a": 2.0})
    assert abs(boosted[4, 0] - 1) > abs(half[4, 0] - 1)
    assert np.allclose(boosted[0] - 1, (pair[0] - 1) / 2, rtol=1e-3)  # at 0.1 Hz the slow traces have vanished


@pytest.mark.parametrize("backend", BACKENDS)
def test_neuromodulator_sets_the_learning_rate(backend):
    """Three-factor rule: a pulse 20 ms before the post spike sets β = σ(g·e^{-20/τ_mod} + c)."""
    protocol = [make_protocol("one", [10], [20], 1, 1, mod_times_ms=[0])]
    w = plasticity.simulate("stdp-modulated", protocol, {"g": 3.0, "c": -2.0}, backend=backend)[0, 0]
    beta = 1 / (1 + math.exp(-(3.0 * math.exp(-20 / 200) - 2.0)))
    assert w - 1 == pytest.approx(0.01 * beta * math.exp(-10 / 16.8), rel=1e-12)
    without = plasticity.simulate(
        "stdp-modulated", [make_protocol("none", [10], [20], 1, 1)], {"g": 3.0, "c": -2.0}, backend=backend
    )[0, 0]
    assert without - 1 == pytest.approx(0.01 * (1 / (1 + math.exp(2.0))) * math.exp(-10 / 16.8), rel=1e-12)


def test_delta_rule_euler_converges_to_the_exact_solution():
    """One presynaptic spike (x jumps to 1, decays with τ) and no post spike: dw/dt = −η w x²/τ gives
    w(∞) = exp(−η/2) exactly; the forward-Euler result approaches it at first order in dt."""
    eta, tau = 0.4, 10.0
    protocol = [make_protocol("pre", [0], [], 1, 1)]
    exact = math.exp(-eta / 2)
    errors = []
    for dt in (0.4, 0.2, 0.1, 0.05):
        w = torch_backend.simulate("delta", protocol, {"eta": eta, "tau_plus_ms": tau}, dt_ms=dt)
        errors.append(abs(float(w) - exact))
    assert errors[-1] < 1e-3 * exact
    ratios = [a / b for a, b in zip(errors, errors[1:], strict=False)]  # successive pairs
    assert all(1.8 < r < 2.2 for r in ratios), ratios


def test_delta_rule_learns_the_post_rate_prediction():
    """Paired pre→post at a fixed lag: for small η the weight converges to the least-squares value whose
    prediction w·x/τ matches the post spike, w* = x(t_post) / ∫x²/τ dt = 2 e^{-5/20} (from w = 1)."""
    protocol = [make_protocol("pair", [0], [5], 2, 1500)]
    w = float(plasticity.simulate("delta", protocol, {"eta": 0.02, "tau_plus_ms": 20.0})[0, 0])
    x_at_post = math.exp(-5 / 20)
    integral = 0.5  # ∫ (e^{-t/τ})² dt / τ over one repetition (the trace has vanished after 500 ms)
    assert w == pytest.approx(x_at_post / integral, rel=0.01)


def test_bad_parameters_are_named():
    protocols = data.protocols("sjostrom2001")
    with pytest.raises(UnknownNameError, match="parameter of rule 'stdp'.*A_plus"):
        plasticity.simulate("stdp", protocols, {"A_plsu": 0.1})
    with pytest.raises(OutOfRangeError, match="tau_minus_ms must be > 0"):
        plasticity.simulate("stdp", protocols, {"tau_minus_ms": 0.0}, backend="brian2")
    with pytest.raises(NonFiniteError, match="A_plus"):
        plasticity.simulate("stdp", protocols, {"A_plus": float("nan")})
    with pytest.raises(UnknownNameError, match="unknown rule 'hebb'"):
        plasticity.simulate("hebb", protocols)
    with pytest.raises(UnknownNameError, match="unknown backend 'nest'"):
        plasticity.simulate("stdp", protocols, backend="nest")
    with pytest.raises(OutOfRangeError, match="dt_ms"):
        plasticity.simulate("delta", protocols, {"tau_plus_ms": 0.05})
