"""Inferring plasticity rules from spike recordings: the fast likelihood against the plain loop,
bad recordings, the command, and recovery from data drawn from the GLM itself."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from neurofwp.plasticity import get_rule, torch_backend
from neurofwp.recordings import Recording, naive, plastic

# A short recording with dense pairings: every term of every rule matters.
DURATION_S = 2.0


def short_trains(seed=0, units=3, duration_s=DURATION_S):
    rng = np.random.default_rng(seed)
    post = np.sort(rng.uniform(0, duration_s, int(25 * duration_s)))
    pre = {f"u{i}": np.sort(rng.uniform(0, duration_s, int(15 * duration_s))) for i in range(units)}
    pre["u0"] = np.sort(np.concatenate([pre["u0"], post[:10] - 0.003, post[10:20] + 0.002]).clip(0, duration_s))
    return Recording(post, duration_s, input_spike_times_s=pre, source="short")


PARAMETERS = {
    "stdp": {"A_plus": 0.05, "A_minus": 0.04, "tau_plus_ms": 16.8, "tau_minus_ms": 33.7},
    "triplet": {"A2_plus": 0.01, "A3_plus": 0.03, "A2_minus": 0.02, "A3_minus": 0.01},
    "delta": {"eta": 0.5, "tau_plus_ms": 12.0},
}


@pytest.mark.parametrize("name", ["stdp", "triplet", "delta"])
@pytest.mark.parametrize("likelihood", ["poisson", "bernoulli"])
def test_scan_equals_the_plain_loop(name, likelihood):
    """The prefix-scan log-likelihood and its gradient equal the spike-by-spike loop to 1e-10 (float64)."""
    rule = get_rule(name)
    trains = plastic.check_trains(short_trains())
    free = list(PARAMETERS[name])
    bounds = {n: rule.parameter(n).bounds for n in free}
    options = dict(bin_ms=1.0, history_lags=3, coupling_tau_ms=4.0, likelihood=likelihood, dt_ms=0.1)
    end_bin = int(DURATION_S * 1000)
    glms = {
        method: plastic.PlasticGLM(trains, rule, free=free, held={}, bounds=bounds, method=method, **options)
        for method in ("scan", "loop")
    }
    assert glms["scan"].events is not None and glms["scan"].method == "scan"
    theta0 = glms["scan"].pack(-3.0, [0.3, -0.2, 0.1], [], [0.8, -0.5, 0.4], PARAMETERS[name])
    results = {}
    for method, glm in glms.items():
        theta = torch.tensor(theta0, requires_grad=True)
        value = glm.log_likelihood(theta)
        (gradient,) = torch.autograd.grad(value, theta)
        results[method] = (float(value.detach()), gradient.numpy())

    theta = torch.tensor(theta0, requires_grad=True)
    parts = glms["scan"].split(theta)
    values = glms["scan"].rule_values(parts["unit"])
    tensors, _ = torch_backend.parameter_tensors(rule, values, torch.float64)
    value = naive.log_likelihood(
        trains, rule, tensors, baseline=parts["baseline"][0], history=parts["history"], w0=parts["w0"],
        end_bin=end_bin, **{k: v for k, v in options.items() if k != "history_lags"},
    )  # fmt: skip
    (gradient,) = torch.autograd.grad(value, theta)
    reference = (float(value.detach()), gradient.numpy())
    for method in ("scan", "loop"):
        assert abs(results[method][0] - reference[0]) <= 1e-10 * abs(reference[0]), method
        np.testing.assert_allclose(results[method][1], reference[1], rtol=1e-9, atol=1e-9 * abs(reference[0]))
    # the rule's parameters matter: the plastic likelihood differs from the static one
    static = plastic.PlasticGLM(trains, None, **options)
    theta_static = torch.as_tensor(theta0[: static.n_parameters])
    assert abs(float(static.log_likelihood(theta_static)) - reference[0]) > 1e-3


def test_weights_scan_equals_loop_with_trajectory_samples():
    trains = plastic.check_trains(short_trains(seed=3))
    samples = np.linspace(0, DURATION_S * 1000, 50)
    for name in ("stdp", "triplet", "delta"):
        rule = get_rule(name)
        grid = 0.1 if rule.clock_driven else None
        events = plastic.Events(trains.post_ms, trains.pre_ms, grid_ms=grid, samples_ms=samples)
        tensors, _ = torch_backend.parameter_tensors(rule, PARAMETERS[name], torch.float64)
        scan, _ = plastic.weights_before(rule, tensors, events, method="scan")
        loop, _ = plastic.weights_before(rule, tensors, events, method="loop")
        np.testing.assert_allclose(scan.numpy(), loop.numpy(), rtol=0, atol=1e-12)
        assert float((scan - 1).abs().max()) > 1e-3  # the weights moved
