"""Input checks shared by every tensor rule, so that each message is written once."""

from __future__ import annotations

from collections.abc import Callable

import torch

from neurofwp.errors import DTypeError, NonFiniteError, OutOfRangeError, ShapeError, UnknownNameError

SUPPORTED_DTYPES = (torch.float32, torch.float64)
MODES = ("chunk", "recurrent")
LAYOUT = "[batch, time, heads, features]"


def check_tensor(name: str, x: object, ndim: int, layout: str) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise DTypeError(f"{name} must be a torch.Tensor of layout {layout}, got {type(x).__name__}")
    if x.ndim != ndim:
        raise ShapeError(f"{name} must have {ndim} dims {layout}, got {x.ndim} dims with shape {tuple(x.shape)}")
    if x.dtype not in SUPPORTED_DTYPES:
        raise DTypeError(f"{name} has dtype {x.dtype}; supported dtypes are float32 and float64")
    return x


def check_finite(name: str, x: torch.Tensor) -> None:
    x = x.detach()
    # A finite sum proves every element finite (one cheap reduction); an overflowing
    # sum of finite values falls through to the exact element-wise test.
    if x.numel() == 0 or bool(torch.isfinite(x.sum())):
        return
    if not bool(torch.isfinite(x).all()):
        bad = int((~torch.isfinite(x)).sum())
        raise NonFiniteError(f"{name} holds {bad} non-finite value(s) (NaN or inf)")


def check_same_kind(reference: torch.Tensor, named: dict[str, torch.Tensor]) -> None:
    for name, x in named.items():
        if x.dtype != reference.dtype:
            raise DTypeError(f"{name} has dtype {x.dtype} but q has {reference.dtype}; pass all inputs in one dtype")
        if x.device != reference.device:
            raise DTypeError(f"{name} is on {x.device} but q is on {reference.device}; pass all inputs on one device")


def check_qkv(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *, finite: bool = True
) -> tuple[int, int, int, int, int]:
    """Check q, k [B, T, H, Dk] and v [B, T, H, Dv]; return (B, T, H, Dk, Dv).

    ``finite=False`` leaves the NaN/inf test to :func:`check_result`, which looks at the
    (smaller) result and only then at the inputs.
    """
    check_tensor("q", q, 4, "[B, T, H, Dk]")
    check_tensor("k", k, 4, "[B, T, H, Dk]")
    check_tensor("v", v, 4, "[B, T, H, Dv]")
    check_same_kind(q, {"k": k, "v": v})
    if q.shape != k.shape:
        raise ShapeError(
            f"q and k must have the same shape [B, T, H, Dk], got q {tuple(q.shape)} and k {tuple(k.shape)}"
        )
    if v.shape[:3] != q.shape[:3]:
        raise ShapeError(
            f"v must share [B, T, H] with q and k, got v {tuple(v.shape)} and q {tuple(q.shape)} (layout {LAYOUT})"
        )
    if finite:
        for name, x in (("q", q), ("k", k), ("v", v)):
            check_finite(name, x)
    batch, steps, heads, d_key = q.shape
    return batch, steps, heads, d_key, v.shape[-1]


def check_per_step(
    name: str, x: torch.Tensor, q: torch.Tensor, low: float, high: float, *, low_open: bool = False
) -> None:
    """Check a per-step, per-head scalar such as beta or decay, shape [B, T, H], within its range."""
    check_tensor(name, x, 3, "[B, T, H]")
    check_same_kind(q, {name: x})
    if x.shape != q.shape[:3]:
        batch, steps, heads = q.shape[:3]
        if steps != heads and tuple(x.shape) == (batch, heads, steps):
            raise ShapeError(swapped_layout(q, name, x))
        raise ShapeError(
            f"{name} must have shape [B, T, H] = {tuple(q.shape[:3])}, got {tuple(x.shape)} "
            f"(q, k, v have layout {LAYOUT})"
        )
    check_finite(name, x)
    x = x.detach()
    too_low = (x <= low) if low_open else (x < low)
    if bool(too_low.any()) or bool((x > high).any()):
        bracket = "(" if low_open else "["
        raise OutOfRangeError(
            f"{name} must lie in {bracket}{low:g}, {high:g}], got values from {float(x.min()):g} to {float(x.max()):g}"
        )


def check_state(
    name: str, state: torch.Tensor, q: torch.Tensor, expected: tuple[int, int, int, int], note: str = ""
) -> torch.Tensor:
    check_tensor(name, state, 4, "[B, H, Dk, Dv]")
    check_same_kind(q, {name: state})
    batch, steps, heads = q.shape[:3]
    if steps != heads and tuple(state.shape) == (batch, steps, *expected[2:]):
        # The state has H where q has T: q, k, v are [B, H, T, D], not the state [B, T, H, D].
        raise ShapeError(swapped_layout(q, name, state, qkv_first=True))
    if tuple(state.shape) != tuple(expected):
        raise ShapeError(f"{name} must have shape [B, H, Dk, Dv] = {tuple(expected)}{note}, got {tuple(state.shape)}")
    check_finite(name, state)
    return state


def swapped_layout(q: torch.Tensor, name: str, x: torch.Tensor, *, qkv_first: bool = False) -> str:
    """The message for ``x`` whose heads sit where q has time (or the reverse): one of them is [B, H, T, ...].

    Which one is a guess unless ``qkv_first``: sequences are usually longer than the number of
    heads, so q, k, v are blamed when their "time" axis is the shorter one.
    """
    batch, steps, heads = q.shape[:3]
    clue = (
        f"{name} has shape {tuple(x.shape)} while q, k, v give B, T, H = {batch}, {steps}, {heads}, "
        "so time and heads are swapped somewhere"
    )
    if qkv_first or steps < heads:
        return (
            f"q, k, v look like [B, H, T, D] (q has shape {tuple(q.shape)}; {clue}): the tensor rules expect "
            f"{LAYOUT}; transpose q, k and v with .transpose(1, 2) (the output is then [B, T, H, Dv])"
        )
    return (
        f"{name} looks like [B, H, T] ({clue}): the tensor rules expect q, k, v as {LAYOUT} and {name} as "
        f"[batch, time, heads]; transpose {name} with .transpose(1, 2) (or q, k and v, if they are [B, H, T, D])"
    )


def check_result(
    rule: str,
    results: dict[str, torch.Tensor],
    inputs: dict[str, torch.Tensor],
    cause: Callable[[], str],
) -> None:
    """Raise :class:`NonFiniteError` unless every result is finite; name the offending input, or the cause.

    Every NaN or inf in q, k or v reaches the output or the final state, so finite results
    prove finite inputs as well: one sum per result (the output is as large as ``v``, the
    state is small) and one synchronisation is all a successful call pays. A sum that is
    non-finite only because finite values overflowed it falls through to the exact test.
    Non-finite results from finite inputs mean the rule itself diverged or overflowed; then
    ``cause()`` (only called then, so it may afford a pass over the inputs) says why and what to do.
    """
    sums = [x.detach().sum() for x in results.values() if x.numel()]
    if not sums or bool(torch.isfinite(torch.stack(sums)).all()):
        return
    for name, x in inputs.items():
        check_finite(name, x)
    counts = {name: int((~torch.isfinite(x.detach())).sum()) for name, x in results.items()}
    if not any(counts.values()):
        return
    where = ", ".join(f"{count} in the {name}" for name, count in counts.items() if count)
    raise NonFiniteError(f"{rule} produced NaN or inf from finite inputs ({where}): {cause()}")


def delta_cause(k: torch.Tensor, beta: torch.Tensor) -> str:
    """Why the delta rule diverged: the stability condition, with the largest β‖k‖² of the call."""
    load = float((beta.detach() * k.detach().square().sum(-1)).max()) if k.numel() else 0.0
    if not load <= 2.0:
        return (
            f"its write is stable only while 0 ≤ β‖k‖² ≤ 2 (k = φ(key), the feature-mapped key), "
            f"and here β‖k‖² reaches {load:.4g}; normalise the keys (sum-normalised keys of a positive "
            "feature map, e.g. feature_maps.get(..., normalize_sum=True) or feature_maps.sum_normalize(k), "
            "or L2-normalised keys) or use a smaller beta"
        )
    return (
        f"the stability condition β‖k‖² ≤ 2 holds (at most {load:.4g}), so finite values overflowed {k.dtype}; "
        "rescale v, q (scale) or initial_state, or compute in float64"
    )


def hebbian_cause(dtype: torch.dtype, normaliser: bool) -> str:
    """Why the Hebbian rule gave NaN or inf: its normaliser reached zero, or its sum overflowed."""
    if normaliser:
        return (
            "the attention normaliser zᵀq + eps reached zero (normalize=True); feature-map q and k with a "
            "positive map (elu+1, dpfp, favor+) so that zᵀq > 0, or pass normalize=False"
        )
    return (
        f"the Hebbian state S_t = α_t S_(t-1) + k_t v_tᵀ is an unbounded sum and overflowed {dtype}; "
        "normalise the keys (e.g. feature_maps.get(..., normalize_sum=True)), rescale q, k or v, "
        "forget with a decay < 1, or compute in float64"
    )


def check_mode(mode: object) -> str:
    if mode not in MODES:
        raise UnknownNameError("mode", mode, MODES)
    return mode  # type: ignore[return-value]


def check_chunk_size(chunk_size: object) -> int:
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int):
        raise DTypeError(f"chunk_size must be an int, got {type(chunk_size).__name__}")
    if chunk_size < 1:
        raise OutOfRangeError(f"chunk_size must be >= 1, got {chunk_size}")
    return chunk_size


def check_scale(scale: object) -> float:
    if isinstance(scale, bool) or not isinstance(scale, (int, float)):
        raise DTypeError(f"scale must be a real number, got {type(scale).__name__}")
    scale = float(scale)
    if not torch.isfinite(torch.tensor(scale)):
        raise NonFiniteError(f"scale must be finite, got {scale}")
    return scale
