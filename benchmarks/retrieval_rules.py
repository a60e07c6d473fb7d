"""Spiking rules as fast-weight write rules on the retrieval task of Schlag et al. (2021), setting 1.

Prints three things:

1. speed: seconds per training step of ``dpfp2-triplet`` against ``dpfp2-sum`` (Hebbian) at each S
   of the quick configuration, interleaved repeats, the fastest of each (issue 17 asks within ±50 %);
2. the quick CPU configuration (at most 2000 steps per cell) over S for the biological rules beside
   sum, delta and softmax: best evaluation loss, and the capacity of each model (largest S whose
   best evaluation loss is at most 0.001, the paper's stopping loss), with the training seconds;
3. the untrained capacity per rule (:func:`neurofwp.analysis.capacity.capacity`) and its cost.

Cells are kept in ``--store`` (default ``results/retrieval_rules_benchmark``), so an interrupted run
resumes; ``--workers`` runs cells in parallel processes (one torch thread each).

    python benchmarks/retrieval_rules.py [--S 20,40,100] [--workers 2] [--skip-sweep]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from neurofwp import retrieval as rt
from neurofwp.analysis.capacity import capacity
from neurofwp.retrieval.task import RetrievalTask

MODELS = (
    "dpfp2-sum",
    "dpfp2-delta",
    "softmax",
    "dpfp2-stdp",
    "dpfp2-triplet",
    "dpfp2-stdp+trained",
    "dpfp2-triplet+trained",
    "dpfp2-rule:delta+trained",
)
UNTRAINED = ("hebbian", "delta", "stdp", "triplet", "rule:delta", "stdp-modulated")


def seconds_per_step(model_name: str, num_keys: int, steps: int = 30) -> float:
    """Mean seconds of one training step (forward, backward, Adam) on setting 1."""
    task = RetrievalTask(1, num_keys)
    model = rt.RetrievalModel(task, rt.parse_model(model_name))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    rng = np.random.default_rng(0)
    batches = [task.sample(32, rng) for _ in range(steps + 3)]
    start = 0.0
    for index, batch in enumerate(batches):
        if index == 3:  # after a warm-up
            start = time.perf_counter()
        loss = 0.5 * (torch.nn.functional.one_hot(batch.targets, task.num_values) - model(batch)).pow(2).sum(-1).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return (time.perf_counter() - start) / steps


def speed(sizes: list[int], repeats: int = 3) -> None:
    print("1. seconds per training step, setting 1 (fastest of interleaved repeats)")
    print(f"{'S':>5} {'dpfp2-sum':>12} {'dpfp2-triplet':>14} {'ratio':>7}")
    for size in sizes:
        times: dict[str, list[float]] = {"dpfp2-sum": [], "dpfp2-triplet": []}
        for _ in range(repeats):
            for name in times:
                times[name].append(seconds_per_step(name, size))
        hebbian, triplet = min(times["dpfp2-sum"]), min(times["dpfp2-triplet"])
        verdict = "within ±50 %" if 0.5 <= triplet / hebbian <= 1.5 else "OUTSIDE ±50 %"
        print(f"{size:>5} {hebbian * 1e3:>10.1f}ms {triplet * 1e3:>12.1f}ms {triplet / hebbian:>7.2f}  {verdict}")


def sweep(sizes: list[int], store: Path, workers: int) -> None:
    config = rt.QUICK[1]["config"]
    store.parent.mkdir(parents=True, exist_ok=True)
    result = rt.sweep(1, list(MODELS), sizes, config=config, store=str(store), workers=workers, progress=False)
    print(f"\n2. quick CPU configuration, setting 1 (at most {config.max_steps} steps): best evaluation loss")
    print(f"{'model':>26}" + "".join(f"{'S=' + str(s):>9}" for s in sizes) + f"{'capacity':>10}{'seconds':>9}")
    for model in result.model.values:
        losses = result.best_eval_loss.sel(model=model).values
        solved = [s for s, loss in zip(sizes, losses, strict=True) if loss <= config.stop_loss]
        row = "".join(f"{loss:>9.4f}" for loss in losses)
        seconds = float(result.seconds.sel(model=model).sum())
        print(f"{model:>26}{row}{max(solved, default=0):>10}{seconds:>9.0f}")
    print("capacity: largest S with best evaluation loss <= 0.001 (0: none)")
    for model, described in zip(result.model.values, result.write_rule.values, strict=True):
        print(f"  {model}: {described}")
    hebbian = result.seconds.sel(model="dpfp2-sum") / result.steps.sel(model="dpfp2-sum")
    triplet = result.seconds.sel(model="dpfp2-triplet") / result.steps.sel(model="dpfp2-triplet")
    print("training seconds per step in the sweep, triplet / sum: " + ", ".join(
        f"S={s}: {float(triplet.sel(S=s) / hebbian.sel(S=s)):.2f}" for s in sizes
    ))  # fmt: skip


def untrained() -> None:
    start = time.perf_counter()
    result = capacity(UNTRAINED)
    cost = time.perf_counter() - start
    attrs = result.attrs
    print(
        f"\n3. untrained capacity (largest S with mean error <= {attrs['threshold']:g}; DPFP keys, d_fast = "
        f"{attrs['d_fast']}; {attrs['n_seeds']} seeds): {cost:.1f} s for {len(UNTRAINED)} rules"
    )
    for rule, value in zip(result.rule.values, result.values, strict=True):
        print(f"{rule:>16} {int(value):>5}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--S", default="20,40,100", help="numbers of unique keys of the sweep")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--store", default="results/retrieval_rules_benchmark")
    parser.add_argument("--skip-sweep", action="store_true", help="only the speed and untrained parts")
    args = parser.parse_args()
    torch.set_num_threads(1)  # the speed comparison on one core, as the sweep's workers run
    sizes = [int(s) for s in args.S.split(",")]
    speed(list(rt.QUICK[1]["S"]))
    if not args.skip_sweep:
        sweep(sizes, Path(args.store), args.workers)
    untrained()


if __name__ == "__main__":
    main()
