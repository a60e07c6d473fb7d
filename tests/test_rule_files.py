"""Rule files: the TOML reader, its errors, the expression language and the rule metadata."""

import dataclasses
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from neurofwp import data, plasticity
from neurofwp.errors import NeurofwpError, OutOfRangeError, UnknownNameError
from neurofwp.plasticity import (
    RULES,
    Parameter,
    Rule,
    RuleError,
    RuleFileError,
    Trace,
    check_time_step,
    language,
    load_rule,
    resolve_rule,
    rule_from_toml,
)
from neurofwp.plasticity.expressions import evaluate
from neurofwp.protocols import make_protocol

RULE_FILES = Path(__file__).parent / "rules"
PAIR = [make_protocol("pair+", [0], [10], 1, 3), make_protocol("pair-", [10], [0], 1, 3)]


@pytest.mark.parametrize("name", list(RULES))
def test_every_built_in_round_trips_through_its_file_text(name):
    rule = RULES[name]
    assert rule_from_toml(rule.to_toml()) == rule
    assert rule.to_toml() == rule_from_toml(rule.to_toml()).to_toml()


def test_built_ins_are_files_with_their_metadata():
    folder = Path(plasticity.__file__).parent / "builtin_rules"
    assert {p.stem for p in folder.glob("*.toml")} == set(RULES)
    for name, rule in RULES.items():
        assert load_rule(folder / f"{name}.toml") == rule
    assert RULES["stdp"].free == ("A_plus", "A_minus")
    assert RULES["triplet"].free == ("A2_plus", "A3_plus", "A2_minus", "A3_minus", "tau_x_ms", "tau_y_ms")
    families = {name: RULES[name].family for name in ("stdp", "stdp-nearest", "triplet", "triplet-nearest")}
    families |= {name: RULES[name].family for name in ("delta", "stdp-modulated")}
    assert families == {
        "stdp": "hebbian",
        "stdp-nearest": "hebbian",
        "triplet": "biological",
        "triplet-nearest": "biological",
        "delta": "delta",
        "stdp-modulated": "learned-beta",
    }
    assert RULES["stdp"].label == "Hebbian (pair STDP)"


def test_file_rules_load_with_defaults_for_optional_keys():
    soft = load_rule(RULE_FILES / "stdp-soft.toml")
    assert (soft.name, soft.label, soft.family, soft.free) == ("stdp-soft", "soft-bound STDP", "hebbian", soft.free)
    assert soft.source == str(RULE_FILES / "stdp-soft.toml")
    decay = load_rule(RULE_FILES / "decay.toml")
    assert decay.label == "stdp-decay" and decay.free == tuple(decay.parameter_names)  # defaults: name, all
    assert decay.clock_driven
    assert rule_from_toml(soft.to_toml()) == soft


def test_resolve_accepts_names_paths_and_rules(tmp_path, monkeypatch):
    path = RULE_FILES / "stdp-soft.toml"
    assert resolve_rule("stdp") is RULES["stdp"]
    assert resolve_rule(str(path)) == resolve_rule(path) == load_rule(path)
    assert resolve_rule(RULES["delta"]) is RULES["delta"]
    assert plasticity.get_rule(path).name == "stdp-soft"
    monkeypatch.chdir(tmp_path)
    Path("stdp").write_text("not a rule")  # a built-in name wins over a file of that name
    assert resolve_rule("stdp") is RULES["stdp"]
    Path("mine").write_text(path.read_text())
    assert resolve_rule("mine").name == "stdp-soft"
    with pytest.raises(UnknownNameError, match=r"unknown rule 'hebb'; choose one of: stdp, .*or give the path") as e:
        resolve_rule("hebb")
    assert str(pickle.loads(pickle.dumps(e.value))) == str(e.value)
    with pytest.raises(RuleFileError, match=r"^missing\.toml: no such rule file$"):
        resolve_rule("missing.toml")


def test_a_user_rule_named_like_a_built_in_keeps_its_own_metadata(tmp_path):
    text = (RULE_FILES / "stdp-soft.toml").read_text().replace('name = "stdp-soft"', 'name = "stdp"')
    text = text.replace('free = ["A_plus", "A_minus"]', 'free = ["A_minus"]')
    path = tmp_path / "stdp.toml"
    path.write_text(text)
    mine = resolve_rule(str(path))
    assert mine.name == "stdp" and mine.free == ("A_minus",) and mine.label == "soft-bound STDP"
    assert mine != RULES["stdp"] and RULES["stdp"].free == ("A_plus", "A_minus")


def test_predict_records_the_full_definition():
    path = RULE_FILES / "stdp-soft.toml"
    result = plasticity.predict(str(path), data.protocols("sjostrom2001"))
    assert result.attrs["rule"] == "stdp-soft"
    assert result.attrs["rule_file"] == str(path)
    assert rule_from_toml(result.attrs["rule_definition"]) == load_rule(path)
    built_in = plasticity.predict("triplet", data.protocols("sjostrom2001"))
    assert rule_from_toml(built_in.attrs["rule_definition"]) == RULES["triplet"]
    assert "rule_file" not in built_in.attrs


def test_weight_dependence_acts_on_both_sides():
    """Soft-bound depression scales with w: from w = 1 it equals plain STDP with A_minus scaled by w."""
    soft = load_rule(RULE_FILES / "stdp-soft.toml")
    single = [make_protocol("pre-post", [10], [0], 1, 1)]  # one depression event at w = 1
    w = plasticity.simulate(soft, single, {"A_minus": 0.02})[0, 0]
    assert w == pytest.approx(1 - 0.02 * np.exp(-10 / 33.7), rel=1e-12)
    twice = [make_protocol("two", [10], [0], 1, 2)]  # the second depression reads the lowered w
    w1 = 1 - 0.02 * np.exp(-10 / 33.7)
    expected = w1 - 0.02 * w1 * np.exp(-10 / 33.7) * (1 + np.exp(-1000 / 33.7))
    assert plasticity.simulate(soft, twice, {"A_minus": 0.02})[0, 0] == pytest.approx(expected, rel=1e-9)


# One rule file per kind of mistake: (file, the key the message must name, a fragment of the reason)
MISTAKES = [
    ("bad-syntax", "on_pre", "cannot parse"),
    ("bad-unknown-name", "on_pre", "unknown name 'yy'; did you mean 'y'"),
    ("bad-units", "on_post", "units differ across +: x (dimensionless) and tau_plus (time)"),
    ("bad-drift-units", "drift", "is dimensionless; a drift dw/dt is 1/time"),
    ("bad-drift-nonlinear", "drift", "linear in w"),
    ("bad-drift-forever", "drift", "must be 0 when every trace is 0"),
    ("bad-comparison", "on_post", "write step(a - b)"),
    ("bad-function", "on_post", "calls sin()"),
    ("bad-trace-clash", "traces.A_plus.name", "already the parameter A_plus"),
    ("bad-helper-clash", "helpers[0]", "'w' is the synaptic weight"),
    ("bad-reserved-name", "parameters[1].name", "'ms' is the name of a Brian2 unit"),
    ("bad-default", "parameters.A_minus.default", "2 lies outside the bounds [0, 1]"),
    ("bad-bounds", "parameters.A_plus.bounds", "needs low < high"),
    ("bad-duplicate", "parameters.A_plus.name", "names two parameters"),
    ("bad-missing", "on_post", "is missing"),
    ("bad-missing-default", "parameters.A_minus.default", "is missing"),
    ("bad-free", "free", "unknown parameter 'A_minsu'; did you mean 'A_minus'"),
    ("bad-source", "traces.y.source", "'dendrite' is not one of pre, post, modulator"),
    ("bad-tau", "traces.y.tau", "'A_minus' is not a time parameter"),
    ("bad-key", "dirft", "unknown key; did you mean 'drift'"),
    ("bad-trace-key", "traces.y.nearest", "unknown key"),
    ("bad-type", "on_post", "must be text, got float 0.01"),
    ("bad-toml", "", "not valid TOML"),
    ("bad-zero-tau", "parameters.tau_rec_ms.bounds", "may_be_zero = true allows 0"),
    ("bad-zero-tau-in-expression", "response", "reads tau_rec, which may be 0"),
    ("bad-rest-units", "traces.R.rest", "must be dimensionless, like the trace"),
    ("bad-rest-with-drift", "traces.R.on_spike", "needs an event-driven rule (no drift)"),
    ("bad-on-spike-name", "traces.R.on_spike", "unknown name 'uu'"),
    ("bad-on-spike-reset", "traces.R.reset", "leave reset out"),
    ("bad-response-units", "response", "is time; an efficacy is dimensionless"),
]


def test_every_mistake_file_is_covered():
    on_disk = {p.stem for p in RULE_FILES.glob("bad-*.toml")}
    assert on_disk == {name for name, _key, _reason in MISTAKES}


@pytest.mark.parametrize("name,key,reason", MISTAKES, ids=[m[0] for m in MISTAKES])
def test_a_mistake_is_one_line_naming_file_and_key(name, key, reason, tmp_path, monkeypatch):
    path = RULE_FILES / f"{name}.toml"
    monkeypatch.chdir(tmp_path)  # nothing may be written
    with pytest.raises(RuleFileError) as raised:
        plasticity.predict(str(path), PAIR)
    message = str(raised.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: {key}: " if key else f"{path}: "), message
    assert reason in message, message
    assert isinstance(raised.value, NeurofwpError) and isinstance(raised.value, ValueError)
    assert str(pickle.loads(pickle.dumps(raised.value))) == message  # intact across processes
    assert list(tmp_path.iterdir()) == []


def _pair_rule(**changes):
    base = dict(
        name="probe",
        summary="",
        parameters=(
            Parameter("A_plus", 0.01, (0.0, 1.0)),
            Parameter("tau_plus_ms", 16.8, (1.0, 200.0)),
        ),
        traces=(Trace("x", "tau_plus", "pre"),),
        on_pre="0",
        on_post="A_plus * x",
    )
    return Rule(**{**base, **changes})


def test_rules_built_in_python_are_checked_too():
    with pytest.raises(RuleError, match=r"rule 'probe': traces.A_plus.name: 'A_plus' is already the parameter") as e:
        _pair_rule(traces=(Trace("A_plus", "tau_plus", "pre"),))
    assert str(pickle.loads(pickle.dumps(e.value))) == str(e.value)
    with pytest.raises(RuleError, match="unknown name 'tau_plus_ms'; parameters appear without their _ms suffix"):
        _pair_rule(on_post="A_plus * x / tau_plus_ms")
    with pytest.raises(RuleError, match=r"summed.prediction: 'w \* x' is dimensionless, but its unit is 'Hz'"):
        _pair_rule(summed=(("prediction", "w * x", "Hz"),))
    with pytest.raises(RuleError, match="free: unknown parameter 'eta'"):
        _pair_rule(free=("eta",))
    with pytest.raises(RuleError, match="'t' has a special meaning in Brian2"):
        _pair_rule(traces=(Trace("t", "tau_plus", "pre"),), on_post="A_plus * t")
    with pytest.raises(RuleError, match="'exp' is a function name"):
        _pair_rule(helpers=(("exp", "x"),))
    with pytest.raises(RuleError, match="drift: .* must be w times an expression without w"):
        _pair_rule(drift="-x / tau_plus")  # no w: torch's exact integration needs w · g(traces)
    with pytest.raises(RuleError, match="drift: .* must be 0 when every trace is 0"):
        _pair_rule(drift="-A_plus * w * (x + 1) / tau_plus")
    assert _pair_rule(drift="-A_plus * x * w / tau_plus").clock_driven
    assert dataclasses.replace(_pair_rule(), label="mine").label == "mine"


def test_the_language_checks_units_by_dimension_analysis():
    dims = {"x": language.DIMENSIONLESS, "tau": language.TIME, "w": language.DIMENSIONLESS}
    assert language.dimension("x / tau", dims) == -1
    assert language.dimension("sqrt(tau * tau)", dims) == 1
    assert language.dimension("tau ** 2 / tau", dims) == 1
    assert language.dimension("step(tau - 2 * tau) + min(x, 1)", dims) == 0
    for bad, reason in [
        ("x + tau", "units differ"),
        ("exp(tau)", r"exp\(\) needs a dimensionless argument"),
        ("clip(tau, 0, 1)", "same units"),
        ("tau ** x", "needs a number as exponent"),
    ]:
        with pytest.raises(language.ExpressionError, match=reason):
            language.dimension(bad, dims)
    for bad, reason in [
        ("w > 0.5", "write step"),
        ("x if w else 0", "use step, min, max, clip"),
        ("x.real", "Attribute"),
        ("clip(x, 0)", r"clip\(\) takes 3 argument"),
        ("'x'", "only numbers"),
        ("", "empty"),
    ]:
        with pytest.raises(language.ExpressionError, match=reason):
            language.parse(bad)


def test_brian2_unit_names_match_brian2():
    from brian2.equations.equations import DEFAULT_UNITS

    assert set(DEFAULT_UNITS) == set(language.BRIAN2_UNITS)


def test_functions_on_tensors():
    x = torch.tensor([-1.0, 0.0, 0.3, 2.0], dtype=torch.float64)
    namespace = {"x": x}
    assert evaluate("abs(x)", namespace).tolist() == [1.0, 0.0, 0.3, 2.0]
    assert evaluate("min(x, 0.5)", namespace).tolist() == [-1.0, 0.0, 0.3, 0.5]
    assert evaluate("max(x, 0.5)", namespace).tolist() == [0.5, 0.5, 0.5, 2.0]
    assert evaluate("clip(x, 0, 1)", namespace).tolist() == [0.0, 0.0, 0.3, 1.0]
    assert evaluate("step(x)", namespace).tolist() == [0.0, 0.0, 1.0, 1.0]
    assert float(evaluate("exp(0) + min(2, 3)", {})) == 3.0


def test_the_time_step_check_is_one_function():
    delta = RULES["delta"]
    check_time_step(delta, 0.1)
    check_time_step(RULES["stdp"], 100.0)  # event-driven: exact whatever the step
    with pytest.raises(OutOfRangeError, match="dt_ms = 0.1 must be smaller .*; tau_plus_ms can be 0.05 ms"):
        check_time_step(delta, 0.1, {"tau_plus_ms": np.array([20.0, 0.05])})
    with pytest.raises(OutOfRangeError, match="tau_plus_ms can be 0.5 ms"):
        check_time_step(delta, 1.0, {"tau_plus_ms": torch.tensor([0.5], requires_grad=True)})


BAD_LITERALS = ["5", "true", "[]", '["x"]', "[[1, 2]]", "{a = 1}", '""', '"w >"']


@pytest.mark.parametrize("literal", BAD_LITERALS)
def test_a_wrong_value_anywhere_is_a_rule_file_error(literal):
    """Every line `key = value` of a good file, its value replaced: one RuleFileError naming the key, no crash."""
    lines = (RULE_FILES / "stdp-soft.toml").read_text().splitlines()
    for index, line in enumerate(lines):
        if " = " not in line or line.startswith("#"):
            continue
        key = line.split(" = ")[0]
        text = "\n".join([*lines[:index], f"{key} = {literal}", *lines[index + 1 :]])
        try:
            rule = rule_from_toml(text, "f.toml")
        except RuleFileError as error:
            assert "\n" not in str(error) and str(error).startswith("f.toml: ")
            assert key in str(error) or str(error).startswith("f.toml: not valid TOML"), (key, str(error))
        else:  # only text where text belongs can pass
            assert isinstance(getattr(rule, key, ""), str) or key == "description", (key, literal)
