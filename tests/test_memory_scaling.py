"""Chunk mode keeps O(T·D + (T/C)·D²) memory per head: no T×T matrix, saved tensors linear in T."""

import torch

from neurofwp.tensor import delta_rule, hebbian_rule


def saved_for_backward(rule, steps, d=16, heads=2, chunk=16):
    g = torch.Generator().manual_seed(0)
    q = torch.randn(1, steps, heads, d, generator=g, requires_grad=True)
    k = torch.nn.functional.normalize(torch.randn(1, steps, heads, d, generator=g), dim=-1).requires_grad_(True)
    v = torch.randn(1, steps, heads, d, generator=g, requires_grad=True)
    beta = torch.rand(1, steps, heads, generator=g, requires_grad=True)
    sizes = []

    def pack(t):
        sizes.append(t.numel())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        if rule == "delta":
            delta_rule(q, k, v, beta, chunk_size=chunk)
        else:
            hebbian_rule(q, k, v, chunk_size=chunk)
    return sum(sizes), max(sizes)


def test_saved_memory_is_linear_in_sequence_length():
    for rule in ("delta", "hebbian"):
        small_total, small_max = saved_for_backward(rule, 2048)
        large_total, large_max = saved_for_backward(rule, 4096)
        assert 1.8 < large_total / small_total < 2.2, rule
        # the largest single tensor is one of the [B, T, H, D]-sized ones, never T×T
        assert large_max <= 4096 * 2 * 16 * 2, rule
