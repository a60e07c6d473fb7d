"""Brian2 and torch, both derived from one rule definition, give the same weights."""

import numpy as np
import pytest

from neurofwp import data, plasticity
from neurofwp.plasticity import RULES
from neurofwp.protocols import make_protocol

EVENT_DRIVEN = [name for name, rule in RULES.items() if not rule.clock_driven]


def assert_agree(rule, protocols, parameters=None, **options):
    brian = plasticity.simulate(rule, protocols, parameters, backend="brian2", **options)
    torch_ = plasticity.simulate(rule, protocols, parameters, backend="torch", **options)
    change = np.abs(torch_ - 1.0)
    difference = np.abs(brian - torch_)
    # relative 1e-6 on the weight change, or 1e-9 absolute where the change is ~0
    ok = (difference <= 1e-6 * change) | (difference <= 1e-9)
    assert ok.all(), (
        f"{rule}: worst difference {difference.max():.3e} at {np.unravel_index(difference.argmax(), difference.shape)}"
    )


ADVERSARIAL = [
    make_protocol("dt=0", [0], [0], 1, 5),
    make_protocol("dt=0 at 50 Hz", [0], [0], 50, 20),
    make_protocol("overlapping +10 at 50 Hz", [0], [10], 50, 60),
    make_protocol("overlapping -10 at 50 Hz", [10], [0], 50, 60),
    make_protocol("100 repetitions", [0], [6], 5, 100),
    make_protocol("burst triplets", [0, 10], [5, 15, 17], 20, 10),
    make_protocol("post only", [], [0, 7], 10, 4),
    make_protocol("pre only", [0, 3], [], 10, 4),
    make_protocol("neuromodulator pulses", [10], [15], 4, 6, mod_times_ms=[0, 15]),
]


def test_three_factor_rule_with_modulator_pulses():
    protocols = [
        make_protocol("pulse then pair", [10], [20], 2, 5, mod_times_ms=[0]),
        make_protocol("pulse at the pre spike", [10], [20], 2, 5, mod_times_ms=[10]),
        make_protocol("no pulse", [10], [20], 2, 5),
    ]
    assert_agree("stdp-modulated", protocols, {"g": 3.0, "c": -2.0, "a": 0.5})


@pytest.mark.parametrize("rule", list(RULES))
def test_adversarial_protocols(rule):
    assert_agree(rule, ADVERSARIAL)


# Bi & Poo in Brian2 is 600 000 steps of 0.1 ms per rule: two rules in the default run, all in the slow one.
DATASET_CASES = [(rule, "sjostrom2001") for rule in EVENT_DRIVEN] + [
    pytest.param(rule, "bipoo1998", marks=[pytest.mark.slow])  # 45 protocols at 1 Hz: the longest Brian2 runs
    for rule in EVENT_DRIVEN
]


@pytest.mark.parametrize("rule,dataset", DATASET_CASES)
def test_bundled_datasets(rule, dataset):
    assert_agree(rule, data.protocols(dataset))


@pytest.mark.slow
def test_delta_rule_on_bi_poo():
    assert_agree("delta", data.protocols("bipoo1998"))


@pytest.mark.slow
def test_delta_rule_on_sjostrom():  # 600 s of simulated time on a 0.1 ms grid in Brian2
    assert_agree("delta", data.protocols("sjostrom2001"))


def test_many_parameter_sets_side_by_side():
    parameters = {"A3_plus": np.array([6.5e-3, 1e-2, 0.0]), "tau_y_ms": np.array([114.0, 50.0, 200.0])}
    assert_agree("triplet", data.protocols("sjostrom2001"), parameters)
