"""Brian2 and torch, both derived from one rule definition, give the same weights."""

from pathlib import Path

import numpy as np
import pytest

from neurofwp import data, plasticity
from neurofwp.plasticity import RULES, Parameter, Rule, Trace, load_rule
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


# Rules that exist only as files (tests/rules/), run by both backends from the file.
FILE_RULES = sorted(p for p in (Path(__file__).parent / "rules").glob("*.toml") if not p.name.startswith("bad-"))


@pytest.mark.parametrize("path", FILE_RULES, ids=[p.stem for p in FILE_RULES])
def test_rules_from_files(path):
    rule = load_rule(path)
    # a second parameter set with larger amplitudes, so that weight dependence and bounds matter
    parameters = {
        name: np.array([rule.parameter(name).default, value])
        for name, value in {"A_plus": 0.2, "A_minus": 0.3}.items()
        if name in rule.parameter_names
    }
    assert_agree(str(path), ADVERSARIAL, parameters)
    if not rule.clock_driven:  # a network of its own: beside the adversarial ones its grid would be finer
        assert_agree(str(path), data.protocols("sjostrom2001"), parameters)


def _functions_rule():
    """A rule with one weight change per function of the language, selected by one-hot k_ parameters."""
    terms = {"k_abs": "abs(x - c)", "k_min": "min(x, c)", "k_max": "max(x, c)"}
    terms |= {"k_clip": "clip(x, c, 2 * c)", "k_step": "step(x - c)", "k_time": "step(tau_plus - tau_ref)"}
    rule = Rule(
        name="functions",
        summary="one weight change per function of the rule language, selected by the k_ parameters",
        parameters=(
            *(Parameter(k, 0.0, (0.0, 1.0)) for k in terms),
            Parameter("c", 0.5, (0.0, 1.0)),
            Parameter("tau_plus_ms", 16.8, (1.0, 200.0)),
            Parameter("tau_ref_ms", 10.0, (1.0, 200.0)),
        ),
        traces=(Trace("x", "tau_plus", "pre"),),
        on_pre="0",
        on_post=" + ".join(f"{k} * {term}" for k, term in terms.items()),
    )
    one_hot = {k: np.eye(len(terms))[i] for i, k in enumerate(terms)}  # column i: only term i
    return rule, one_hot


def test_functions_of_the_rule_language_on_both_backends():
    """abs, min, max, clip and step give the same numbers in Brian2, torch and by hand."""
    rule, one_hot = _functions_rule()
    lags = [2, 5, 10, 20, 40]
    protocols = [make_protocol(f"+{lag}", [0], [lag], 1, 1) for lag in lags]
    assert_agree(rule, protocols, one_hot)
    x = np.exp(-np.array(lags) / 16.8)[:, None]
    by_hand = [np.abs(x - 0.5), np.minimum(x, 0.5), np.maximum(x, 0.5), np.clip(x, 0.5, 1.0), (x > 0.5) * 1.0]
    by_hand.append(np.ones_like(x))  # step(tau_plus - tau_ref) = step(16.8 ms - 10 ms): a step of a time
    w = plasticity.simulate(rule, protocols, one_hot)
    np.testing.assert_allclose(w - 1.0, np.hstack(by_hand), rtol=1e-12, atol=0)


@pytest.fixture
def numpy_target():
    """Brian2's numpy code generation for one test (the default is Cython where it compiles)."""
    import brian2

    before = brian2.prefs.codegen.target
    brian2.prefs.codegen.target = "numpy"
    yield
    brian2.prefs.codegen.target = before


def test_functions_in_numpy_code_generation(numpy_target):
    rule, one_hot = _functions_rule()
    protocols = [make_protocol(f"+{lag}", [0], [lag], 1, 1) for lag in (2, 10, 40)]
    assert_agree(rule, protocols, one_hot)
    assert_agree(str(Path(__file__).parent / "rules" / "stdp-capped.toml"), ADVERSARIAL)
