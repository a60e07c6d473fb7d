"""Input checks shared by every tensor rule, so that each message is written once."""

from __future__ import annotations

import torch

from neurofwp.errors import DTypeError, NonFiniteError, OutOfRangeError, ShapeError, UnknownNameError

SUPPORTED_DTYPES = (torch.float32, torch.float64)
MODES = ("chunk", "recurrent")


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
        raise ShapeError(f"v must share [B, T, H] with q and k, got v {tuple(v.shape)} and q {tuple(q.shape)}")
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
        raise ShapeError(f"{name} must have shape [B, T, H] = {tuple(q.shape[:3])}, got {tuple(x.shape)}")
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
    if tuple(state.shape) != tuple(expected):
        raise ShapeError(f"{name} must have shape [B, H, Dk, Dv] = {tuple(expected)}{note}, got {tuple(state.shape)}")
    check_finite(name, state)
    return state


def check_result(outputs: tuple[torch.Tensor, ...], inputs: dict[str, torch.Tensor]) -> None:
    """Every NaN or inf in q, k or v reaches the output or the final state, so finite results prove
    finite inputs in one pass over the result; otherwise name the offending input (finite inputs
    that overflow are left alone: the result is then what float arithmetic gives)."""
    if all(x.numel() == 0 or bool(torch.isfinite(x.detach().sum())) for x in outputs):
        return
    for name, x in inputs.items():
        check_finite(name, x)


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
