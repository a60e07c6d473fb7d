"""Short-term plasticity (Tsodyks–Markram): one definition, two backends, closed forms.

Convention (the rule ``tsodyks-markram``): at a presynaptic spike the response is A·u·R read
before the spike's updates, then R ← R(1 − u) and u ← u + U(1 − u); between spikes u relaxes
to U with τ_F and R to 1 with τ_D; initially u = U, R = 1.
"""

from pathlib import Path

import numpy as np
import pytest
import torch

from neurofwp.plasticity import brian2_backend, get_rule, torch_backend
from neurofwp.protocols import make_protocol

RULES = Path(__file__).parent / "rules"


def train(name, times_ms, post_ms=()):
    return make_protocol(name, list(times_ms), list(post_ms), 0.01, 1)


def regular(rate_hz, spikes=20):
    return train(f"{rate_hz:g} Hz", np.round(np.arange(spikes) * 1000.0 / rate_hz, 1))


def recovery(rate_hz=20.0, spikes=8, delays_ms=(50.0, 200.0, 800.0, 2000.0)):
    """A train, then single probe spikes after increasing delays."""
    times = list(np.arange(spikes) * 1000.0 / rate_hz)
    for delay in delays_ms:
        times.append(times[-1] + delay)
    return train("recovery", np.round(times, 1))


def poisson(rate_hz, spikes, seed):
    generator = np.random.default_rng(seed)
    times = np.round(np.cumsum(generator.exponential(1000.0 / rate_hz, spikes)), 1)
    return train(f"poisson {rate_hz:g} Hz", np.unique(times))


PROTOCOLS = [*(regular(r) for r in (5, 10, 20, 50, 100)), poisson(20, 30, 0), poisson(50, 30, 1), recovery()]
# Published sets: depressing (Tsodyks, Pawelzik & Markram 1998), facilitating (ibid.), a mixed one
TM_SETS = {
    "U": [0.5, 0.03, 0.25, 1.0],
    "tau_rec_ms": [800.0, 130.0, 700.0, 100.0],
    "tau_facil_ms": [0.0, 530.0, 20.0, 0.0],
    "A": [1.0, 2.0, 0.5, 1.0],
}


def as_tensors(values):
    return {name: torch.tensor(v, dtype=torch.float64) for name, v in values.items()}


@pytest.mark.parametrize(
    ("rule_name", "values"),
    [
        ("tsodyks-markram", TM_SETS),
        (str(RULES / "tm-depressing.toml"), {"U": [0.6, 0.2], "tau_rec_ms": [800.0, 150.0]}),
    ],
    ids=["tsodyks-markram", "tm-depressing"],
)
def test_brian2_and_torch_responses_agree(rule_name, values):
    """Regular trains 5-100 Hz, Poisson trains and recovery probes, every parameter set: ≤ 1e-6 relative."""
    rule = get_rule(rule_name)
    expected = brian2_backend.simulate_responses(rule, PROTOCOLS, {k: np.asarray(v) for k, v in values.items()})
    got = torch_backend.simulate_responses(rule, PROTOCOLS, as_tensors(values)).numpy()
    assert got.shape == expected.shape
    assert np.array_equal(np.isnan(got), np.isnan(expected))
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-12)


def test_stp_on_top_of_stdp_agrees_in_both_outputs():
    """w·u·R with pair STDP changing w: the responses and the final weight agree between backends."""
    rule = get_rule(RULES / "stdp-tm.toml")
    protocols = [
        train("pairs +10 ms", np.arange(10) * 50.0, np.arange(10) * 50.0 + 10),
        train("pairs -10 ms", np.arange(10) * 50.0 + 10, np.arange(10) * 50.0),
        poisson(30, 25, 2),
    ]
    values = {"U": [0.2, 0.6], "tau_facil_ms": [200.0, 0.0]}
    weights = brian2_backend.simulate(rule, protocols, values)
    np.testing.assert_allclose(torch_backend.simulate(rule, protocols, as_tensors(values)).numpy(), weights, rtol=1e-9)
    expected = brian2_backend.simulate_responses(rule, protocols, values)
    got = torch_backend.simulate_responses(rule, protocols, as_tensors(values)).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-12)
    assert not np.allclose(weights, 1.0)  # STDP did change w, so the responses read a changing w


def steady_state(U, tau_rec, tau_facil, rate_hz):
    """Closed form of the stationary u and R just before a spike of a regular train (docs/short_term.md)."""
    interval = 1000.0 / rate_hz
    f = np.exp(-interval / tau_facil) if tau_facil > 0 else 0.0
    d = np.exp(-interval / tau_rec)
    u = U / (1.0 - (1.0 - U) * f)
    R = (1.0 - d) / (1.0 - (1.0 - u) * d)
    return u, R


@pytest.mark.parametrize(("U", "tau_rec", "tau_facil"), [(0.5, 800.0, 0.0), (0.03, 130.0, 530.0), (0.2, 300.0, 50.0)])
@pytest.mark.parametrize("rate_hz", [5.0, 20.0, 100.0])
def test_steady_state_efficacy_of_a_regular_train(U, tau_rec, tau_facil, rate_hz):
    rule = get_rule("tsodyks-markram")
    responses = torch_backend.simulate_responses(
        rule, [regular(rate_hz, spikes=400)], {"U": U, "tau_rec_ms": tau_rec, "tau_facil_ms": tau_facil, "A": 2.0}
    )[0, :, 0].numpy()
    u, R = steady_state(U, tau_rec, tau_facil, rate_hz)
    assert responses[-1] == pytest.approx(2.0 * u * R, rel=1e-9)


@pytest.mark.parametrize(("U", "tau_rec", "tau_facil"), [(0.5, 800.0, 0.0), (0.03, 130.0, 530.0), (0.7, 100.0, 30.0)])
def test_paired_pulse_ratio_versus_interval(U, tau_rec, tau_facil):
    """PPR(Δ) = (1 + (1 − U) e^{−Δ/τ_F}) (1 − U e^{−Δ/τ_D}); facilitation wins at short Δ when U is small."""
    intervals = [5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 3000.0]
    rule = get_rule("tsodyks-markram")
    pairs = [train(f"{d:g} ms", [0.0, d]) for d in intervals]
    values = {"U": U, "tau_rec_ms": tau_rec, "tau_facil_ms": tau_facil}
    responses = torch_backend.simulate_responses(rule, pairs, values)
    ratio = (responses[:, 1, 0] / responses[:, 0, 0]).numpy()
    delta = np.asarray(intervals)
    f = np.exp(-delta / tau_facil) if tau_facil > 0 else 0.0
    expected = (1.0 + (1.0 - U) * f) * (1.0 - U * np.exp(-delta / tau_rec))
    np.testing.assert_allclose(ratio, expected, rtol=1e-12)
    if U < 0.1:
        assert ratio[1] > 1.5  # facilitating pair at 10 ms
    else:
        assert ratio[1] < 1.0


def test_depression_with_full_utilisation_by_hand():
    """U = 1, τ_F = 0: a spike releases everything, so each later response is the recovery 1 − e^{−Δ/τ_D}."""
    times = [0.0, 50.0, 150.0, 160.0, 1160.0]
    responses = torch_backend.simulate_responses(
        "tsodyks-markram", [train("uneven", times)], {"U": 1.0, "tau_rec_ms": 100.0, "A": 3.0}
    )[0, :, 0].numpy()
    by_hand = [3.0] + [3.0 * (1.0 - np.exp(-gap / 100.0)) for gap in np.diff(times)]
    np.testing.assert_allclose(responses, by_hand, rtol=1e-13)


def test_responses_are_differentiable_in_every_parameter():
    rule = get_rule("tsodyks-markram")
    names = rule.parameter_names
    leaves = [torch.tensor([v], dtype=torch.float64, requires_grad=True) for v in (0.3, 200.0, 80.0, 1.5)]
    protocols = [regular(20, 6), recovery(spikes=4, delays_ms=(100.0, 400.0))]

    def responses(*values):
        out = torch_backend.simulate_responses(rule, protocols, dict(zip(names, values, strict=True)))
        return torch.nan_to_num(out, nan=0.0)

    assert torch.autograd.gradcheck(responses, leaves, eps=1e-6, atol=1e-8, rtol=1e-5)


def test_no_facilitation_is_the_limit_of_a_short_tau_facil():
    """τ_F = 0 (u = U at every spike) equals τ_F → 0+."""
    protocols = [regular(50, 10), poisson(40, 20, 3)]
    zero = torch_backend.simulate_responses("tsodyks-markram", protocols, {"tau_facil_ms": 0.0})
    tiny = torch_backend.simulate_responses("tsodyks-markram", protocols, {"tau_facil_ms": 1e-4})
    np.testing.assert_allclose(zero.numpy(), tiny.numpy(), rtol=1e-12)


def test_a_rule_without_response_says_so():
    with pytest.raises(Exception, match="has no response"):
        torch_backend.simulate_responses("stdp", [regular(10, 3)])
    with pytest.raises(Exception, match="has no parallel form"):
        torch_backend.simulate("tsodyks-markram", [regular(10, 3)], method="parallel")
