"""Time the Hebbian and delta rules (recurrent and chunk modes) and their peers.

Prints, for (B, H, D) = (1, 8, 64), float32, T in {2048, 8192, 32768}:
wall time of forward and forward+backward, achieved GFLOP/s, the dense matmul rate
of the same run (2048 x 2048), and fla-core's pure-PyTorch delta-rule references
(``pip install -e ".[bench]"``) on the same inputs after checking that outputs agree.

FLOP counts (multiply and add counted separately; C = chunk size, N = T / C chunks,
per batch element and head; backward counted as 2x forward, so fwd+bwd = 3x forward):

* delta, chunk:      N * (4 C^2 Dk + C^2 (Dk + Dv) + 2 C^2 Dv + 6 C Dk Dv)
  (Q K^T and K K^T; the unit-triangular solve for [U | W]; W S, K^T Delta, Q S in the scan;
  (Q K^T (.) M) Delta)
* hebbian, chunk:    N * (2 C^2 Dk + 2 C^2 Dv + 4 C Dk Dv)
* delta, recurrent:  T * 6 Dk Dv   (S^T k, the outer-product write, S^T q)
* hebbian, recurrent: T * 4 Dk Dv

Usage: python benchmarks/tensor_rules.py [--device cuda] [--lengths 2048,8192,32768] [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings

import torch

from neurofwp.tensor import delta_rule, hebbian_rule

B, H, D, CHUNK = 1, 8, 64, 64
# The recurrent reference's autograd graph holds every step's D x D state: O(T D^2) memory.
RECURRENT_BACKWARD_MAX_T = 8192


def flops(rule: str, mode: str, steps: int, chunk: int = CHUNK, dk: int = D, dv: int = D) -> float:
    per_head = B * H
    if mode == "recurrent":
        return per_head * steps * (6 if rule == "delta" else 4) * dk * dv
    n = -(-steps // chunk)
    if rule == "delta":
        return per_head * n * (4 * chunk**2 * dk + chunk**2 * (dk + dv) + 2 * chunk**2 * dv + 6 * chunk * dk * dv)
    return per_head * n * (2 * chunk**2 * dk + 2 * chunk**2 * dv + 4 * chunk * dk * dv)


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def timeit(fn, device: str, repeats: int, budget_s: float = 20.0) -> float:
    """Minimum wall time over ``repeats`` runs after one warm-up (fewer runs if one run is slow)."""
    fn()
    sync(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - start)
        if sum(times) > budget_s:
            break
    return min(times)


def matmul_rate(device: str, repeats: int) -> float:
    a = torch.randn(2048, 2048, device=device)
    b = torch.randn(2048, 2048, device=device)
    return 2 * 2048**3 / timeit(lambda: a @ b, device, max(repeats, 10)) / 1e9


def inputs(steps: int, device: str, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(B, steps, H, D, generator=g)
    k = torch.nn.functional.normalize(torch.randn(B, steps, H, D, generator=g), dim=-1)
    v = torch.randn(B, steps, H, D, generator=g)
    beta = torch.rand(B, steps, H, generator=g)
    return [x.to(device) for x in (q, k, v, beta)]


def run_rule(rule: str, mode: str, q, k, v, beta):
    if rule == "delta":
        return delta_rule(q, k, v, beta, mode=mode, chunk_size=CHUNK)[0]
    return hebbian_rule(q, k, v, mode=mode, chunk_size=CHUNK)[0]


def forward_backward(rule: str, mode: str, tensors):
    leaves = [x.detach().requires_grad_(True) for x in tensors]
    run_rule(rule, mode, *leaves).sum().backward()


def load_fla():
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from fla.ops.delta_rule.naive import delta_rule_chunkwise, delta_rule_recurrence
        return delta_rule_recurrence, delta_rule_chunkwise
    except Exception as error:  # any import failure just means no peer to compare with
        print(f"fla-core not available ({type(error).__name__}: {error}); peers skipped", file=sys.stderr)
        return None


def fla_peers(fla, q, k, v, beta, device, repeats, steps):
    """fla's layout is [B, H, T, D] and it scales q by D^-0.5 itself: give it the unscaled q."""
    recurrence, chunkwise = fla
    qf, kf, vf = (x.transpose(1, 2).contiguous() for x in (q, k, v))
    bf = beta.transpose(1, 2).contiguous()
    ours = delta_rule(q, k, v, beta, scale=D**-0.5)[0].transpose(1, 2)
    results = {}
    with torch.no_grad():
        out = chunkwise(qf, kf, vf, bf, chunk_size=CHUNK)[0]
        agree = float((out - ours).norm() / ours.norm())
        results["fla chunkwise"] = (timeit(lambda: chunkwise(qf, kf, vf, bf, chunk_size=CHUNK), device, repeats), agree)
        budget = 60.0 if steps <= 8192 else 30.0
        out = recurrence(qf, kf, vf, bf)[0]
        agree = float((out - ours).norm() / ours.norm())
        results["fla recurrence"] = (timeit(lambda: recurrence(qf, kf, vf, bf), device, min(repeats, 3), budget), agree)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--lengths", default="2048,8192,32768")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-peers", action="store_true")
    args = parser.parse_args()
    device, lengths = args.device, [int(x) for x in args.lengths.split(",")]
    torch.manual_seed(0)

    print(
        f"torch {torch.__version__}, device {device}, threads {torch.get_num_threads()}, float32, "
        f"(B, H, D) = ({B}, {H}, {D}), chunk {CHUNK}"
    )
    rate = matmul_rate(device, args.repeats)
    print(f"dense matmul 2048x2048: {rate:.1f} GFLOP/s\n")
    fla = None if args.no_peers else load_fla()

    header = f"{'T':>6} {'rule':>8} {'mode':>10} {'pass':>8} {'time ms':>10} {'GFLOP/s':>8} {'% matmul':>9}"
    print(header)
    print("-" * len(header))
    summary = {}
    for steps in lengths:
        tensors = inputs(steps, device)
        for rule in ("hebbian", "delta"):
            for mode in ("chunk", "recurrent"):
                for kind in ("fwd", "fwd+bwd"):
                    if kind == "fwd+bwd" and mode == "recurrent" and steps > RECURRENT_BACKWARD_MAX_T:
                        print(f"{steps:>6} {rule:>8} {mode:>10} {kind:>8} {'skipped: O(T D^2) autograd memory':>30}")
                        continue
                    if kind == "fwd":

                        def fn(rule=rule, mode=mode, tensors=tensors):
                            with torch.no_grad():
                                run_rule(rule, mode, *tensors)

                        work = flops(rule, mode, steps)
                    else:

                        def fn(rule=rule, mode=mode, tensors=tensors):
                            forward_backward(rule, mode, tensors)

                        work = 3 * flops(rule, mode, steps)
                    seconds = timeit(fn, device, args.repeats if mode == "chunk" else min(args.repeats, 2))
                    gflops = work / seconds / 1e9
                    summary[(steps, rule, mode, kind)] = seconds
                    print(
                        f"{steps:>6} {rule:>8} {mode:>10} {kind:>8} {seconds * 1e3:>10.1f} {gflops:>8.1f} "
                        f"{100 * gflops / rate:>8.1f}%"
                    )
        if fla is not None:
            for name, (seconds, agree) in fla_peers(fla, *tensors, device, args.repeats, steps).items():
                summary[(steps, name)] = seconds
                print(f"{steps:>6} {'delta':>8} {name:>25} {seconds * 1e3:>10.1f}   (output rel. diff {agree:.1e})")
        print()

    if 8192 in lengths:
        headline(fla, device, rate)


def headline(fla, device: str, rate: float, rounds: int = 10) -> None:
    """T = 8192 delta-rule forward against matmul and the peers, measured interleaved.

    The machine's speed drifts from minute to minute, so ours and each peer are timed in
    alternating rounds and the median of the per-round ratios is reported.
    """
    q, k, v, beta = inputs(8192, device)

    def ours():
        with torch.no_grad():
            delta_rule(q, k, v, beta, chunk_size=CHUNK)

    def matmul():
        a @ a

    a = torch.randn(2048, 2048, device=device)
    peers = {"matmul": (matmul, 2 * 2048**3)}
    if fla is not None:
        recurrence, chunkwise = fla
        qf, kf, vf = (x.transpose(1, 2).contiguous() for x in (q, k, v))
        bf = beta.transpose(1, 2).contiguous()

        def fla_chunk():
            with torch.no_grad():
                chunkwise(qf, kf, vf, bf, chunk_size=CHUNK)

        def fla_recurrent():
            with torch.no_grad():
                recurrence(qf, kf, vf, bf)

        peers["fla chunkwise"] = (fla_chunk, None)
        peers["fla recurrence"] = (fla_recurrent, None)
    ratios = {name: [] for name in peers}
    ours_times, matmul_rates = [], []
    for round_ in range(rounds):
        mine = timeit(ours, device, 3)
        ours_times.append(mine)
        for name, (fn, work) in peers.items():
            if name == "fla recurrence" and round_ >= 3:
                continue  # about a second per call: three rounds suffice
            theirs = timeit(fn, device, 3 if name != "fla recurrence" else 1)
            if name == "matmul":
                matmul_rates.append(work / theirs / 1e9)
                ratios[name].append((flops("delta", "chunk", 8192) / mine / 1e9) / matmul_rates[-1])
            else:
                ratios[name].append(theirs / mine)
    mine = statistics.median(ours_times)
    gflops = flops("delta", "chunk", 8192) / mine / 1e9
    print(f"T = 8192, delta rule, chunk mode, forward, {rounds} interleaved rounds (medians):")
    print(
        f"  {mine * 1e3:.1f} ms, {gflops:.1f} GFLOP/s = {100 * statistics.median(ratios['matmul']):.0f}% of the "
        f"matmul rate ({statistics.median(matmul_rates):.0f} GFLOP/s) (target >= 30%)"
    )
    if fla is not None:
        print(
            f"  {statistics.median(ratios['fla chunkwise']):.2f}x faster than fla's chunkwise reference (target >= 2x)"
        )
        print(
            f"  {statistics.median(ratios['fla recurrence']):.1f}x faster than fla's recurrent reference "
            "(target >= 10x)"
        )


if __name__ == "__main__":
    main()
