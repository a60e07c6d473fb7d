"""Spiking rules as the write rule of the retrieval model: names, the model against its formula, training, results.

Tolerances: the model against the explicit formula in float64 at 1e-10.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import xarray as xr

from neurofwp import retrieval as rt
from neurofwp.analysis import capacity
from neurofwp.errors import UnknownNameError
from neurofwp.io import save_netcdf
from neurofwp.plasticity.definition import RuleError
from neurofwp.plasticity.rules import RULES
from neurofwp.sweeps import SweepError
from neurofwp.tensor import feature_maps

TINY = rt.TrainConfig(max_steps=30, batch_size=8, eval_every=10, eval_sequences=2)


def test_rule_names(tmp_path):
    spec = rt.parse_model("dpfp2-triplet")
    assert (spec.update, spec.rule, spec.dt_ms, spec.trained) == ("rule", "triplet", rt.DT_MS, False)
    assert spec.d_dot(64) == 256
    assert rt.parse_model("linear-stdp@20ms+trained").dt_ms == 20.0
    assert rt.parse_model("linear-stdp@20ms+trained").trained
    # the spiking delta rule: clock-driven, presented for its trace's time constant by default
    assert rt.parse_model("linear-rule:delta").dt_ms == 16.8
    path = tmp_path / "mine.toml"
    path.write_text(RULES["stdp"].to_toml().replace('name = "stdp"', 'name = "mine"'))
    spec = rt.parse_model(f"linear-rule:{path}")
    assert spec.reading().rule.name == "mine" and "fixed" in spec.describe()
    assert rt.parse_model("dpfp1-sum") == rt.ModelSpec("dpfp1-sum", "dpfp", 1, "sum")  # unchanged
    for bad in ("linear-sum+trained", "dpfp1-delta@10ms", "linear-nonsense", "linear-rule:"):
        with pytest.raises((UnknownNameError, OSError, ValueError)):
            rt.parse_model(bad)
    with pytest.raises(RuleError, match="stdp-nearest.*reset"):
        rt.parse_model("linear-stdp-nearest")
    with pytest.raises(RuleError, match="stdp-modulated.*not an outer-product write"):
        rt.parse_model("linear-stdp-modulated+trained")  # a and b trained: the gate reads both sides
    with pytest.raises(ValueError, match="dt_ms = 30 must be at most"):
        rt.parse_model("linear-rule:delta@30ms")


def test_stdp_model_is_its_formula():
    """W = sum_t A+ x_t v_t^T - A- k_t y_{t-1}^T (x, y filtered over steps of dt), read L2-normalised."""
    task = rt.RetrievalTask(1, 7)
    model = rt.RetrievalModel(task, rt.parse_model("dpfp1-stdp@40ms")).double()
    with torch.no_grad():
        model.to_value.weight.normal_(0.0, 0.1)  # programmed values, not only the one-hot ones
    batch = task.sample(3, np.random.default_rng(0))
    one_hot = torch.nn.functional.one_hot(batch.values, task.num_values).double()
    pairs = torch.cat([one_hot, model.key_embedding(batch.keys)], -1)
    keys = feature_maps.sum_normalize(model.phi(model.to_key(pairs)))
    queries = feature_maps.sum_normalize(model.phi(model.to_query(model.key_embedding(batch.queries))))
    values = one_hot + model.to_value(pairs)
    c_plus, c_minus = math.exp(-40 / 16.8), math.exp(-40 / 33.7)
    memory = torch.zeros(3, keys.shape[-1], task.num_values, dtype=torch.float64)
    x = torch.zeros_like(keys[:, 0])
    y = torch.zeros_like(values[:, 0])
    for t in range(keys.shape[1]):
        x = c_plus * x + keys[:, t]
        memory = memory + 0.01 * x[:, :, None] * values[:, t, None, :] - 0.0105 * keys[:, t, :, None] * y[:, None, :]
        y = c_minus * (y + values[:, t])
    out = torch.einsum("bkv,bqk->bqv", memory, queries)
    expected = out / (out.norm(dim=-1, keepdim=True) + 1e-6)
    torch.testing.assert_close(model(batch), expected, rtol=1e-10, atol=1e-10)


def test_trained_rule_parameters_and_learning_rate_get_gradients():
    task = rt.RetrievalTask(1, 6)
    model = rt.RetrievalModel(task, rt.parse_model("linear-rule:delta+trained")).double()
    assert set(model.rule_parameters) == {"tau_plus_ms"} and model.to_rate is not None  # eta is programmed
    batch = task.sample(4, np.random.default_rng(1))
    model(batch).pow(2).sum().backward()
    assert model.to_rate.weight.grad is not None and model.rule_parameters["tau_plus_ms"].grad is not None
    triplet = rt.RetrievalModel(task, rt.parse_model("dpfp1-triplet+trained"))
    values = triplet.rule_values()
    assert float(values["tau_y_ms"].detach()) == pytest.approx(114.0, rel=1e-6)  # starts at the default
    triplet(batch).pow(2).sum().backward()
    assert triplet.rule_parameters["A2_plus"].grad is not None  # at its lower bound 0, the gradient still flows


def test_sweep_states_the_rule_and_its_parameters(tmp_path):
    models = ["dpfp1-sum", "dpfp1-triplet", "linear-stdp+trained"]
    result = rt.sweep(1, models, [4], config=TINY, progress=False)
    assert bool(np.isfinite(result.best_eval_loss).all())
    described = dict(zip(result.model.values, result.write_rule.values, strict=True))
    assert described["dpfp1-sum"] == "Hebbian (sum)"
    assert "triplet" in described["dpfp1-triplet"] and "fixed: A2_minus=0.0071" in described["dpfp1-triplet"]
    assert "trained: A_plus, A_minus" in described["linear-stdp+trained"]
    assert 'name = "triplet"' in str(result.rule_toml.sel(model="dpfp1-triplet").values)
    with xr.open_dataset(save_netcdf(result, tmp_path / "rules.nc")) as saved:
        assert list(saved.write_rule.values) == list(described.values())


# the untrained capacity curve with spiking rules ----------------------------------------------------


def test_capacity_curve_of_a_spiking_rule_is_its_formula():
    """stdp at 100 ms per pair, error after the best gain g = sum r.v / sum r.r."""
    curve = capacity.retrieval_curve(
        [5, 9], d_key=6, d_value=4, rules=["stdp"], feature_maps_=["identity"], seeds=[2], show_progress=False
    )
    generator = torch.Generator().manual_seed(2)
    raw = torch.randn(9, 6, generator=generator, dtype=torch.float64)
    values = torch.randn(9, 4, generator=generator, dtype=torch.float64) / 2.0
    keys = torch.nn.functional.normalize(raw, dim=-1)
    c_plus, c_minus = math.exp(-100 / 16.8), math.exp(-100 / 33.7)
    for count in (5, 9):
        memory = torch.zeros(6, 4, dtype=torch.float64)
        x, y = torch.zeros(6, dtype=torch.float64), torch.zeros(4, dtype=torch.float64)
        for t in range(count):
            x = c_plus * x + keys[t]
            memory = memory + 0.01 * torch.outer(x, values[t]) - 0.0105 * torch.outer(keys[t], y)
            y = c_minus * (y + values[t])
        recalled = keys[:count] @ memory
        target = values[:count]
        gain = float((recalled * target).sum() / (recalled**2).sum())
        expected = float(((gain * recalled - target) ** 2).sum() / (target**2).sum())
        assert float(curve.sel(rule="stdp", n_pairs=count).item()) == pytest.approx(expected, rel=1e-10)


def test_capacity_per_rule():
    rules = ["hebbian", "delta", "stdp", "triplet", "rule:delta"]
    result = capacity.capacity(rules, seeds=range(2))
    assert list(result.rule.values) == rules and (result.values == result.values.round()).all()
    curve = capacity.retrieval_curve(
        capacity.CAPACITY_PAIRS, rules=["hebbian"], feature_maps_=["dpfp"], seeds=range(2), show_progress=False,
        best_gain=True,
    ).mean("seed")  # fmt: skip
    solved = curve.n_pairs.values[(curve.sel(rule="hebbian", feature_map="dpfp") <= 0.25).values]
    assert int(result.sel(rule="hebbian")) == solved.max()
    # the triplet write v ⊙ o2 is gated by the postsynaptic unit's earlier activity, which one-shot pairs lack
    assert int(result.sel(rule="triplet")) < int(result.sel(rule="hebbian"))
    as_object = capacity.capacity([RULES["stdp"]], seeds=range(2))  # a Rule, e.g. read from a file
    assert list(as_object.rule.values) == ["stdp"] and int(as_object[0]) == int(result.sel(rule="stdp"))
    with pytest.raises(UnknownNameError, match="unknown rule 'nonsense'"):
        capacity.capacity(["nonsense"])
    with pytest.raises(RuleError, match="stdp-nearest"):
        capacity.capacity(["stdp-nearest"])
    mixed = capacity.capacity(["stdp-nearest", "hebbian"], seeds=range(2), unreadable="nan")
    assert np.isnan(mixed.sel(rule="stdp-nearest")) and "reset" in str(mixed.reason.sel(rule="stdp-nearest").item())
    assert float(mixed.sel(rule="hebbian")) == float(result.sel(rule="hebbian"))
    with pytest.raises(ValueError, match="threshold"):
        capacity.capacity(["hebbian"], threshold=1.5)


def test_store_knows_the_rule_text(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text(RULES["stdp"].to_toml())
    store = str(tmp_path / "cells")
    rt.sweep(1, [f"linear-rule:{path}"], [4], config=TINY, store=store, progress=False)
    rt.sweep(1, [f"linear-rule:{path}"], [4], config=TINY, store=store, progress=False)  # the same: resumes
    path.write_text(RULES["stdp"].to_toml().replace("default = 0.01\n", "default = 0.02\n", 1))
    with pytest.raises(SweepError, match="differs in: rules"):
        rt.sweep(1, [f"linear-rule:{path}"], [4], config=TINY, store=store, progress=False)
