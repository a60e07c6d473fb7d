"""Synthetic associative retrieval (Schlag et al. 2021): tasks, models against explicit formulas, training, sweeps."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
import xarray as xr

from neurofwp import retrieval as rt
from neurofwp.errors import OutOfRangeError, UnknownNameError

TINY = rt.TrainConfig(max_steps=30, batch_size=8, eval_every=10, eval_sequences=2)


@pytest.mark.parametrize("setting", [1, 2])
def test_targets_are_the_value_at_the_last_occurrence(setting):
    task = rt.RetrievalTask(setting, 7)
    rng = np.random.default_rng(3)
    for batch in (task.sample(50, rng), task.sample_all_queries(rng)):
        keys, values = batch.keys.numpy(), batch.values.numpy()
        assert keys.shape[1] == (7 if setting == 1 else 14)
        for b in range(keys.shape[0]):
            for query, target in zip(batch.queries[b].tolist(), batch.targets[b].tolist(), strict=True):
                last = max(i for i, k in enumerate(keys[b]) if k == query)
                assert target == values[b, last]
    if setting == 1:
        batch = task.sample(20, rng)
        for row in (*batch.keys, *batch.values):
            assert sorted(row.tolist()) == list(range(7))  # without replacement: every key and value once
    all_queries = task.sample_all_queries(rng)
    assert sorted(all_queries.queries[0].tolist()) == sorted(set(all_queries.keys[0].tolist()))


def test_model_names():
    assert rt.parse_model("dpfp3-sum").d_dot(64) == 384
    assert rt.parse_model("favor128-sum").d_dot(64) == 128
    assert rt.parse_model("linear-delta").d_dot(64) == 64
    assert rt.parse_model("softmax").update == "softmax"
    for bad in ("dpfp0-sum", "linear", "relu-sum", "dpfp2-hebb", 3):
        with pytest.raises(UnknownNameError, match="retrieval model"):
            rt.parse_model(bad)
    with pytest.raises(OutOfRangeError, match="setting"):
        rt.RetrievalTask(3, 10)
    with pytest.raises(OutOfRangeError, match="keys S"):
        rt.RetrievalTask(1, 1)
    with pytest.raises(OutOfRangeError, match="max_steps"):
        rt.TrainConfig(max_steps=0)


def _inputs(model, batch):
    one_hot = torch.nn.functional.one_hot(batch.values, model.task.num_values).double()
    pairs = torch.cat([one_hot, model.key_embedding(batch.keys)], -1)
    return one_hot, pairs, model.phi(model.to_key(pairs)), model.phi(model.to_query(model.key_embedding(batch.queries)))


@pytest.mark.parametrize("name", ["linear-sum", "dpfp2-sum"])
def test_sum_model_is_the_papers_normalised_sum(name):
    task = rt.RetrievalTask(1, 9)
    model = rt.RetrievalModel(task, rt.parse_model(name)).double()
    batch = task.sample(4, np.random.default_rng(0))
    one_hot, _, k, q = _inputs(model, batch)
    memory = torch.einsum("blv,blk->bvk", one_hot, k)  # Σ v kᵀ
    z = k.sum(1)
    expected = torch.einsum("bvk,bqk->bqv", memory, q) / (torch.einsum("bk,bqk->bq", z, q)[..., None] + 1e-6)
    torch.testing.assert_close(model(batch), expected, rtol=1e-10, atol=1e-12)


def test_delta_model_is_the_papers_loop():
    """The paper's form: v̄ = W k̄; W ← W − v̄ k̄ᵀ + (β v + (1 − β) v̄) k̄ᵀ, read with the sum-normalised query."""
    task = rt.RetrievalTask(2, 6)
    model = rt.RetrievalModel(task, rt.parse_model("dpfp1-delta")).double()
    batch = task.sample_all_queries(np.random.default_rng(1))
    one_hot, pairs, k, q = _inputs(model, batch)
    k = k / k.sum(-1, keepdim=True)
    q = q / q.sum(-1, keepdim=True)
    beta = torch.sigmoid(model.to_beta(pairs))
    memory = torch.zeros(1, task.num_values, k.shape[-1], dtype=torch.float64)
    for t in range(k.shape[1]):
        recalled = torch.einsum("bvk,bk->bv", memory, k[:, t])
        new = beta[:, t] * one_hot[:, t] + (1 - beta[:, t]) * recalled
        memory = memory - torch.einsum("bv,bk->bvk", recalled, k[:, t]) + torch.einsum("bv,bk->bvk", new, k[:, t])
    expected = torch.einsum("bvk,bqk->bqv", memory, q)
    torch.testing.assert_close(model(batch), expected, rtol=1e-10, atol=1e-12)


def test_softmax_model_and_gradients():
    task = rt.RetrievalTask(1, 5)
    model = rt.RetrievalModel(task, rt.parse_model("softmax")).double()
    batch = task.sample(3, np.random.default_rng(2))
    out = model(batch)
    assert out.shape == (3, 1, 5)
    torch.testing.assert_close(out.sum(-1), torch.ones(3, 1, dtype=torch.float64))  # a convex mix of one-hots
    for name in ("dpfp1-delta", "favor16-sum", "linear-sum"):
        model = rt.RetrievalModel(task, rt.parse_model(name))
        model(batch).square().sum().backward()
        assert model.to_key.weight.grad is not None and model.to_key.weight.grad.abs().sum() > 0
        assert model.key_embedding.weight.grad.abs().sum() > 0


def test_train_is_seeded_and_stops_by_its_rules():
    first = rt.train(2, "dpfp1-delta", 5, seed=4, config=TINY)
    again = rt.train(2, "dpfp1-delta", 5, seed=4, config=TINY)
    other = rt.train(2, "dpfp1-delta", 5, seed=5, config=TINY)
    assert first["eval_loss"] == again["eval_loss"] and first["eval_loss"] != other["eval_loss"]
    assert first["steps"] == 30 and len(first["eval_loss"]) == 3
    assert first["best_eval_loss"] == min(first["eval_loss"])
    # patience 0: the first evaluation that does not improve ends training
    impatient = rt.train(
        1, "linear-sum", 6, config=dataclasses.replace(TINY, max_steps=1000, patience=0, learning_rate=1e-9)
    )
    losses = impatient["eval_loss"]
    assert losses[-1] >= min(losses[:-1]) and all(b < a for a, b in zip(losses[:-2], losses[1:-1], strict=True))
    assert impatient["steps"] == 10 * len(losses)
    # reaching the stop loss ends training at once
    solved = rt.train(1, "softmax", 4, config=dataclasses.replace(TINY, max_steps=1000, stop_loss=10.0))
    assert solved["steps"] == 10 and len(solved["eval_loss"]) == 1


def test_sweep_dataset_and_resume(tmp_path):
    store = tmp_path / "cells"
    result = rt.sweep(2, ["dpfp1-sum", "dpfp1-delta"], [4, 6], config=TINY, store=str(store), progress=False)
    assert result.best_eval_loss.dims == ("model", "S")
    assert list(result.model.values) == ["dpfp1-sum", "dpfp1-delta"] and list(result.S.values) == [4, 6]
    assert result.eval_loss.sizes["evaluation"] == 3 and list(result.evaluation.values) == [10, 20, 30]
    assert list(result.d_dot.values) == [128, 128]
    assert result.best_eval_loss.attrs["units"] == "1"
    one = rt.train(2, "dpfp1-delta", 6, seed=6, config=TINY)  # cell seed = seed + S
    assert float(result.best_eval_loss.sel(model="dpfp1-delta", S=6)) == one["best_eval_loss"]
    stamps = {p.name: p.stat().st_mtime_ns for p in store.glob("*.json")}
    assert len(stamps) == 5  # four cells and the sweep's configuration
    again = rt.sweep(2, ["dpfp1-sum", "dpfp1-delta"], [4, 6], config=TINY, store=str(store), progress=False)
    assert {p.name: p.stat().st_mtime_ns for p in store.glob("*.json")} == stamps  # nothing recomputed
    xr.testing.assert_identical(result.drop_vars("seconds"), again.drop_vars("seconds"))
    with pytest.raises(ValueError, match="another configuration.*seed"):
        rt.sweep(2, ["dpfp1-sum"], [4], seed=1, config=TINY, store=str(store), progress=False)


def test_paper_reference_holds_the_published_pattern():
    one, two = rt.paper_reference(1), rt.paper_reference(2)
    loss = {(m, s): v for m, s, v in zip(one.model, one.S, one.best_eval_loss, strict=True)}
    assert loss[("linear-sum", 20)] < 0.01 < loss[("linear-sum", 100)]
    assert loss[("dpfp2-sum", 200)] < 0.01
    loss2 = {(m, s): v for m, s, v in zip(two.model, two.S, two.best_eval_loss, strict=True)}
    assert loss2[("dpfp2-sum", 20)] > 0.05 and loss2[("dpfp2-delta", 200)] < 0.01
    assert "Schlag" in rt.reference.citation()
    # spot checks against the logs themselves (d64_dpfp2_sum_AssocSeq100N100R0.csv, ...)
    assert loss[("dpfp2-sum", 100)] == pytest.approx(0.00050291454, rel=1e-5)
    assert loss[("linear-sum", 100)] == pytest.approx(0.16420512, rel=1e-5)
    assert loss2[("dpfp2-delta", 20)] == pytest.approx(0.0009689765, rel=1e-5)


def test_worker_processes_give_the_same_dataset():
    models, sizes = ["dpfp1-delta", "linear-sum"], [4, 5]
    here = rt.sweep(2, models, sizes, config=TINY, progress=False)
    pool = rt.sweep(2, models, sizes, config=TINY, workers=2, progress=False)
    xr.testing.assert_identical(here.drop_vars("seconds"), pool.drop_vars("seconds"))


def test_cli_retrieval(tmp_path, run_cli):
    out = tmp_path / "run"
    args = ["retrieval", "--setting", "1", "--rules", "linear-sum,softmax", "--S", "4,6", "--max-steps", "20"]
    first = run_cli(*args, "--out", str(out), "--no-progress")
    assert first.exit_code == 0, first.output
    assert "softmax" in first.output and "saved" in first.output
    for name in ("retrieval_setting1.nc", "retrieval_setting1.png", "retrieval_setting1.svg"):
        assert (out / name).stat().st_size > 0
    with xr.open_dataset(out / "retrieval_setting1.nc") as saved:
        assert saved.best_eval_loss.shape == (2, 2) and int(saved.attrs["config_max_steps"]) == 20
    bad = run_cli("retrieval", "--setting", "1", "--rules", "relu-sum", "--out", str(out / "x"))
    assert bad.exit_code == 2 and "unknown retrieval model 'relu-sum'" in bad.output
    clash = run_cli(*args[:-1], "30", "--out", str(out), "--no-progress")
    assert clash.exit_code == 2 and "another configuration (differs in: config)" in clash.output


@pytest.mark.slow
@pytest.mark.parametrize("setting", [1, 2])
def test_quick_configuration_reproduces_the_papers_ordering(setting):
    """Setting 1: linear + sum fails at S = 100 where DPFP ν=2 + sum succeeds; setting 2: delta beats sum at S = 20."""
    plan = rt.QUICK[setting]
    result = rt.sweep(setting, plan["models"], plan["S"], config=plan["config"], workers=2, progress=False)
    loss = result.best_eval_loss
    if setting == 1:
        assert float(loss.sel(model="linear-sum", S=20)) < 0.01
        assert float(loss.sel(model="linear-sum", S=100)) > 0.1  # the paper: ≈ 0.17
        assert float(loss.sel(model="dpfp2-sum", S=100)) < 0.002
    else:
        assert float(loss.sel(model="dpfp2-sum", S=20)) > 0.05  # the paper: ≈ 0.1
        assert float(loss.sel(model="dpfp2-delta", S=20)) < 0.002
