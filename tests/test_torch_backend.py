"""The torch backend: batched over protocols and parameter sets, differentiable in every parameter."""

from pathlib import Path

import numpy as np
import pytest
import torch

from neurofwp import data
from neurofwp.errors import NeurofwpError
from neurofwp.plasticity import RULES, get_rule
from neurofwp.plasticity.torch_backend import simulate
from neurofwp.protocols import make_protocol

SMALL = [
    make_protocol("pair+", [0], [8], 20, 6),
    make_protocol("pair-", [8], [0], 20, 6),
    make_protocol("burst", [0, 12], [5, 9], 10, 4),
    make_protocol("modulated pair", [4], [9], 10, 4, mod_times_ms=[0]),
]


def nudged_defaults(rule):
    """Defaults moved off zero so that every parameter has an effect (zero amplitudes hide gradients)."""
    values = {}
    for p in rule.parameters:
        value = p.default if p.default != 0 else 0.3 * (p.bounds[1] if p.bounds[1] < 1 else 0.01)
        values[p.name] = value
    if rule.name == "stdp-modulated":
        values.update(a=0.5, b=-0.3, c=0.2, g=1.0)
    return values


# Rules that exist only as files: weight-dependent depression, and a drift that reads w.
FILE_RULES = [str(Path(__file__).parent / "rules" / f"{name}.toml") for name in ("stdp-soft", "decay")]


# Rules that change the persistent weight (short-term plasticity rules change only their response,
# tested in test_short_term.py)
WEIGHT_RULES = [name for name in RULES if RULES[name].changes_weight]


@pytest.mark.parametrize("method", ["auto", "sequential"])
@pytest.mark.parametrize("rule_name", WEIGHT_RULES + FILE_RULES, ids=lambda name: Path(name).stem)
def test_gradcheck_every_parameter(rule_name, method):
    rule = get_rule(rule_name)
    start = nudged_defaults(rule)
    names = rule.parameter_names
    leaves = [torch.tensor([start[n]], dtype=torch.float64, requires_grad=True) for n in names]

    def weights(*values):
        return simulate(rule, SMALL, dict(zip(names, values, strict=True)), dt_ms=0.5, method=method)

    assert torch.autograd.gradcheck(weights, leaves, eps=1e-6, atol=1e-7, rtol=1e-5)
    out = weights(*leaves).sum()
    grads = torch.autograd.grad(out, leaves)
    assert all(float(g.abs()) > 0 for g in grads), {n: float(g) for n, g in zip(names, grads, strict=True)}


def test_batched_parameter_sets_equal_separate_runs():
    protocols = data.protocols("sjostrom2001")
    a3 = [6.5e-3, 2e-3, 9e-3, 0.0]
    tau = [114.0, 80.0, 150.0, 20.0]
    batched = simulate(
        "triplet",
        protocols,
        {"A3_plus": torch.tensor(a3, dtype=torch.float64), "tau_y_ms": torch.tensor(tau, dtype=torch.float64)},
    )
    assert batched.shape == (10, 4)
    for column, (a, t) in enumerate(zip(a3, tau, strict=True)):
        single = simulate("triplet", protocols, {"A3_plus": a, "tau_y_ms": t})
        assert torch.allclose(batched[:, column : column + 1], single, rtol=1e-13, atol=0)


def test_float32_is_close_to_float64():
    protocols = data.protocols("bipoo1998")
    w64 = simulate("stdp", protocols)
    w32 = simulate("stdp", protocols, dtype=torch.float32)
    assert w32.dtype == torch.float32
    assert np.allclose(w32.numpy(), w64.numpy(), rtol=1e-5)


# Every rule whose spike updates do not read w has the parallel form; the file rule `decay` is
# clock-driven with a drift that reads w, `stdp-soft` reads w at spikes (sequential only).
PARALLEL_RULES = [name for name in [*WEIGHT_RULES, *FILE_RULES] if "soft" not in name]


@pytest.mark.parametrize("rule_name", PARALLEL_RULES, ids=lambda name: Path(name).stem)
def test_parallel_form_equals_event_by_event_reference(rule_name):
    """Every event at once (prefix scan of the traces, all gaps' Euler products together) equals
    stepping from event to event: values and gradients to 1e-10 relative, on every bundled dataset
    (clock-driven rules: on one) and on protocols with neuromodulator pulses, for three random
    parameter sets at once."""
    rule = get_rule(rule_name)
    generator = np.random.default_rng(7)
    # clock-driven rules record every Euler step for autograd: one dataset on a 0.5 ms grid keeps
    # that within memory and seconds
    datasets = ["sjostrom2001"] if rule.clock_driven else data.list()
    protocols = SMALL + [p for name in datasets for p in data.protocols(name)]
    dt_ms = 0.5 if rule.clock_driven else 0.1
    shortest = 5 * dt_ms if rule.clock_driven else 1.0
    values = {}
    for p in rule.parameters:
        low, high = (max(p.bounds[0], shortest), min(p.bounds[1], 150.0)) if p.is_time else p.bounds
        if not p.is_time:
            high = min(high, 10 * abs(p.default) + 0.05) if low >= 0 else high
        values[p.name] = torch.tensor(generator.uniform(low, high, 3), requires_grad=True)
    runs = {}
    for method in ("sequential", "parallel"):
        weights = simulate(rule, protocols, values, dt_ms=dt_ms, method=method)
        gradients = torch.autograd.grad((weights * torch.linspace(0.5, 1.5, 3)).sum(), list(values.values()))
        runs[method] = (weights.detach(), gradients)
    reference, fast = runs["sequential"], runs["parallel"]
    np.testing.assert_allclose(fast[0].numpy(), reference[0].numpy(), rtol=1e-10, atol=1e-12)
    for name, got, expected in zip(values, fast[1], reference[1], strict=True):
        np.testing.assert_allclose(got.numpy(), expected.numpy(), rtol=1e-8, atol=1e-12, err_msg=name)


def test_rule_reading_w_at_spikes_runs_sequentially():
    soft = get_rule(FILE_RULES[0])
    with pytest.raises(NeurofwpError, match="read w"):
        simulate(soft, SMALL, method="parallel")
    np.testing.assert_array_equal(simulate(soft, SMALL).numpy(), simulate(soft, SMALL, method="sequential").numpy())
