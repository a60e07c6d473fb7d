"""The rate (tensor) reading of spiking rules: tensor-core limits, drift against spiking simulations, errors.

Tolerances: equalities with the tensor core in float64 at 1e-10 (rounding of a few hundred
operations); drifts of the spiking backend within 4 standard errors of the rate form (a
two-sided 4 SE band holds with probability 1 - 6e-5 for a correct prediction); the tensor
recurrence on constant rates against the rate form within 1e-3 relative (its step dt is 0.01 ms:
the per-step filter overshoots the continuous mean by dt / 2 tau <= 3e-4).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from neurofwp.plasticity.definition import RuleError, rule_from_toml
from neurofwp.plasticity.rate_reading import rate_reading
from neurofwp.plasticity.torch_backend import simulate
from neurofwp.protocols import Protocol
from neurofwp.tensor import delta_rule, hebbian_rule

DTYPE = torch.float64


def _inputs(seed: int, batch=2, steps=37, heads=3, d_key=5, d_value=4):
    generator = torch.Generator().manual_seed(seed)
    q = torch.randn(batch, steps, heads, d_key, generator=generator, dtype=DTYPE)
    k = torch.rand(batch, steps, heads, d_key, generator=generator, dtype=DTYPE) / d_key  # beta |k|^2 <= 2
    v = torch.randn(batch, steps, heads, d_value, generator=generator, dtype=DTYPE)
    return q, k, v


def _close(actual, expected, tolerance=1e-10):
    assert float((actual - expected).abs().max()) <= tolerance * max(1.0, float(expected.abs().max()))


# (a) where a reading is a tensor-core rule ---------------------------------------------------------


def test_spiking_delta_rule_is_the_delta_rule():
    """dt = tau_plus: the Euler factor 1 - dt/tau is 0, the trace x is the key k_t, and
    dW = eta x v^T - dt eta/tau x x^T W is delta_rule with beta = eta."""
    q, k, v = _inputs(0)
    reading = rate_reading("delta")
    assert reading.form == "delta"
    out, state = reading.apply(q, k, v, dt_ms=16.8, output_final_state=True)
    beta = torch.full(k.shape[:3], 0.05, dtype=DTYPE)
    expected, expected_state = delta_rule(q, k, v, beta, output_final_state=True)
    _close(out, expected)
    _close(state, expected_state)


def test_pair_stdp_with_traces_of_the_current_step_is_the_hebbian_rule():
    """dt >> tau (exp(-dt/tau) = 0 in float64): on_post reads the pre trace with the current step,
    x_t = k_t, so dW = A_plus k_t v_t^T; on_pre reads the post trace without it, 0."""
    q, k, v = _inputs(1)
    for a_minus in (0.0, 0.0105):
        reading = rate_reading("stdp", parameters={"A_minus": a_minus})
        out, state = reading.apply(q, k, v, dt_ms=1e5, output_final_state=True)
        expected, expected_state = hebbian_rule(q, k, 0.01 * v, output_final_state=True)
        _close(out, expected)
        _close(state, expected_state)


@pytest.mark.parametrize("name", ["stdp", "triplet", "delta", "stdp-modulated"])
@pytest.mark.parametrize("dt_ms", [0.5, 5.0])
def test_fast_forms_equal_the_step_loop(name, dt_ms):
    q, k, v = _inputs(2)
    reading = rate_reading(name, parameters={"A2_plus": 0.004, "A3_minus": 0.002} if name == "triplet" else None)
    fast, fast_state = reading.apply(q, k, v, dt_ms=dt_ms, output_final_state=True)
    loop, loop_state = reading.apply(q, k, v, dt_ms=dt_ms, output_final_state=True, mode="recurrent")
    _close(fast, loop)
    _close(fast_state, loop_state)


def test_pair_stdp_against_explicit_filtered_keys_and_values():
    """dW_t = A+ x_t v_t^T - A- k_t (y_t - v_t)^T with x_t = c+ x_{t-1} + k_t, y_t = c- y_{t-1} + v_t."""
    q, k, v = _inputs(3, batch=1, steps=20, heads=1)
    dt = 7.0
    c_plus, c_minus = math.exp(-dt / 16.8), math.exp(-dt / 33.7)
    x = torch.zeros(k.shape[-1], dtype=DTYPE)
    y = torch.zeros(v.shape[-1], dtype=DTYPE)
    memory = torch.zeros(k.shape[-1], v.shape[-1], dtype=DTYPE)
    outputs = []
    for t in range(k.shape[1]):
        kt, vt = k[0, t, 0], v[0, t, 0]
        x = c_plus * x + kt
        y_before = c_minus * y
        memory = memory + 0.01 * torch.outer(x, vt) - 0.0105 * torch.outer(kt, y_before)
        y = y_before + vt
        outputs.append(memory.T @ q[0, t, 0])
    out, _ = rate_reading("stdp").apply(q, k, v, dt_ms=dt)
    _close(out[0, :, 0], torch.stack(outputs))


def test_triplet_reading_is_a_hebbian_write_gated_by_the_slow_post_trace():
    reading = rate_reading("triplet")
    assert reading.form == "hebbian"
    post = next(t for t in reading.terms if t.kind == "post")
    assert post.key.endswith("*r1") and post.value == "o2"  # A3+ r1 ⊗ (v ⊙ o2)


def test_free_parameters_and_per_step_learning_rate_have_gradients():
    q, k, v = _inputs(4)
    eta = torch.full(k.shape[:3], 0.3, dtype=DTYPE, requires_grad=True)  # one learning rate per step
    tau = torch.tensor(16.8, dtype=DTYPE, requires_grad=True)
    reading = rate_reading("delta", free=("eta", "tau_plus_ms"))
    out, _ = reading.apply(q, k, v, dt_ms=16.8, parameters={"eta": eta, "tau_plus_ms": tau})
    expected, _ = delta_rule(q, k, v, eta.detach())
    _close(out.detach(), expected)
    out.pow(2).sum().backward()
    assert eta.grad is not None and tau.grad is not None
    assert bool(torch.isfinite(eta.grad).all()) and bool(torch.isfinite(tau.grad))


def test_decay_drift_runs_the_step_loop():
    """A drift on w itself, -lam w x / tau_plus, is a per-element decay W ⊙ (x ⊗ 1)."""
    rule = rule_from_toml(_DECAYING)
    q, k, v = _inputs(5, batch=1, steps=15, heads=1)
    reading = rate_reading(rule)
    assert reading.form == "recurrent"
    dt = 2.0
    c = 1 - dt / 20.0
    x = torch.zeros(k.shape[-1], dtype=DTYPE)
    memory = torch.zeros(k.shape[-1], v.shape[-1], dtype=DTYPE)
    outputs = []
    for t in range(k.shape[1]):
        x = c * x + k[0, t, 0]
        memory = memory + 0.1 * torch.outer(x, v[0, t, 0]) - dt * 0.5 / 20.0 * memory * x[:, None]
        outputs.append(memory.T @ q[0, t, 0])
    out, _ = reading.apply(q, k, v, dt_ms=dt)
    _close(out[0, :, 0], torch.stack(outputs))


_DECAYING = """
name = "decaying"
summary = "potentiation at post spikes, decay while the pre trace is up"
on_pre = "0"
on_post = "A * x"
drift = "-lam * w * x / tau"
[[parameters]]
name = "A"
default = 0.1
bounds = [0.0, 1.0]
[[parameters]]
name = "lam"
default = 0.5
bounds = [0.0, 1.0]
[[parameters]]
name = "tau_ms"
default = 20.0
bounds = [1.0, 100.0]
[[traces]]
name = "x"
tau = "tau"
source = "pre"
"""


# (b) mean drift: spiking simulations against the rate form -----------------------------------------


def _poisson_protocols(seed, count, rate_pre, rate_post, start_ms, end_ms, lag_ms=None, probability=0.0):
    """Pairs of protocols on the same trains: the whole train and the part before ``start_ms``."""
    rng = np.random.default_rng(seed)
    protocols = []
    for index in range(count):
        pre = np.sort(rng.uniform(0, end_ms, rng.poisson(rate_pre * end_ms / 1000)))
        background = rate_post - probability * rate_pre
        post = rng.uniform(0, end_ms, rng.poisson(background * end_ms / 1000))
        if probability > 0:
            assert lag_ms is not None
            triggered = pre[rng.random(pre.size) < probability] + lag_ms
            post = np.concatenate([post, triggered[triggered < end_ms]])
        post = np.sort(post)
        protocols.append(Protocol(f"whole {index}", tuple(pre), tuple(post), 1e-3, 1))
        protocols.append(Protocol(f"start {index}", tuple(pre[pre < start_ms]), tuple(post[post < start_ms]), 1e-3, 1))
    return protocols


def _measured_drift(rule, parameters, seed, rate_pre, rate_post, **correlation):
    """Mean dw/dt (1/s) over [1 s, 6 s] of 400 trains (traces stationary by 1 s), and its standard error."""
    start, end, count = 1000.0, 6000.0, 400
    protocols = _poisson_protocols(seed, count, rate_pre, rate_post, start, end, **correlation)
    weight = simulate(rule, protocols, parameters)[:, 0].numpy()
    drift = (weight[0::2] - weight[1::2]) / ((end - start) / 1000)
    return drift.mean(), drift.std(ddof=1) / math.sqrt(count)


@pytest.mark.parametrize(
    "rule, parameters, rates, correlation",
    [
        ("stdp", None, (20.0, 30.0), {}),
        ("stdp", None, (20.0, 30.0), {"lag_ms": 5.0, "probability": 0.3}),  # Kempter et al. (1999)
        ("triplet", {"A2_plus": 0.005, "A3_minus": 0.002}, (20.0, 40.0), {}),  # Pfister & Gerstner (2006)
    ],
    ids=["pair", "pair-correlated", "triplet"],
)
def test_mean_drift_of_spiking_simulations_is_the_rate_form(rule, parameters, rates, correlation):
    reading = rate_reading(rule, parameters=parameters)
    predicted = reading.mean_drift(*rates, **correlation)
    measured, error = _measured_drift(rule, parameters, 11, *rates, **correlation)
    assert abs(measured - predicted) <= 4 * error, (measured, error, predicted)


def test_rate_forms_are_the_published_ones():
    pair = rate_reading("stdp").mean_drift(20.0, 30.0, lag_ms=5.0, probability=0.3)
    kempter = 20 * 30 * (0.01 * 0.0168 - 0.0105 * 0.0337) + 0.3 * 20 * 0.01 * math.exp(-5 / 16.8)
    assert pair == pytest.approx(kempter, rel=1e-12)
    values = {"A2_plus": 0.005, "A3_plus": 0.0065, "A2_minus": 0.0071, "A3_minus": 0.002}
    triplet = rate_reading("triplet", parameters=values).mean_drift(20.0, 40.0)
    tau_plus, tau_minus, tau_x, tau_y = 0.0168, 0.0337, 0.101, 0.114
    pfister = 20 * 40 * (values["A2_plus"] * tau_plus + values["A3_plus"] * tau_plus * tau_y * 40) - 20 * 40 * (
        values["A2_minus"] * tau_minus + values["A3_minus"] * tau_minus * tau_x * 20
    )
    assert triplet == pytest.approx(pfister, rel=1e-12)


@pytest.mark.parametrize("rule", ["stdp", "triplet"])
def test_tensor_recurrence_on_constant_rates_drifts_at_the_rate_form(rule):
    """k_t = r_pre dt and v_t = r_post dt per step: the recurrence's dW per second after 1.2 s."""
    dt, steps = 0.01, 160_000
    rate_pre, rate_post = 20.0, 40.0
    k = torch.full((1, steps, 1, 1), rate_pre * dt / 1000, dtype=DTYPE)
    v = torch.full((1, steps, 1, 1), rate_post * dt / 1000, dtype=DTYPE)
    reading = rate_reading(rule)
    out, _ = reading.apply(torch.ones_like(k), k, v, dt_ms=dt)
    half = steps // 2
    drift = float(out[0, -1, 0, 0] - out[0, half, 0, 0]) / ((steps - 1 - half) * dt / 1000)
    assert drift == pytest.approx(reading.mean_drift(rate_pre, rate_post), rel=1e-3)


# (c) clear errors -----------------------------------------------------------------------------------


def test_rules_that_are_not_outer_product_writes_raise():
    with pytest.raises(RuleError, match=r"stdp-nearest.*traces.x.reset.*not linear in the activity"):
        rate_reading("stdp-nearest")
    with pytest.raises(RuleError, match=r"tsodyks-markram.*never changes w"):
        rate_reading("tsodyks-markram")
    # a learning rate sigmoid(a y_slow + b x_slow + c) with a and b trained reads both sides in one factor
    with pytest.raises(RuleError, match=r"stdp-modulated.*on_p.*presynaptic \(x_slow\).*postsynaptic \(y_slow\)"):
        rate_reading("stdp-modulated", free=("a", "b"))
    soft = _DECAYING.replace('on_post = "A * x"', 'on_post = "A * (1 - w) * x"').replace(
        'drift = "-lam * w * x / tau"\n', ""
    )
    with pytest.raises(RuleError, match=r"decaying.*on_post: reads w.*not an outer-product write"):
        rate_reading(rule_from_toml(soft))
    mixed = _DECAYING.replace('drift = "-lam * w * x / tau"\n', "").replace(
        'on_post = "A * x"', 'on_post = "A * exp(x * x)"'
    )
    assert rate_reading(rule_from_toml(mixed)).form == "hebbian"  # one side only: a key-side factor
    with pytest.raises(Exception, match="not linear in the traces"):
        rate_reading(rule_from_toml(mixed)).mean_drift(10.0, 10.0)
    with pytest.raises(Exception, match="only terms that read one side"):
        rate_reading("triplet").mean_drift(10.0, 20.0, lag_ms=5.0, probability=0.2)
