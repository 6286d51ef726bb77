"""Engine-independent checks of layer parameters and sizes, each raising a clear ``ValueError``.

The kernels of both engines index memory without bound checks and trust their arguments (bound
checks in the inner loops cost speed), so everything a kernel relies on is checked once per call
here, by the layer functions (``functional``, ``exact.functional``) and the module constructors
(``nn``).  The checks are O(parameters) (no pass over the events; ``functional.check_events``
checks those); ``check_event_arrays``, the layout of an event list, is O(1) and shared by
``functional.check_events`` and the kernels' host drivers.  Times are in ms.

Limits (docs/robustness.md):

* ``MAX_STEPS``: a time grid has fewer than 2**31 steps (steps are int32 in the kernels);
* ``MAX_GRID_VALUES``: one layer call on a grid covers at most 2**32 values of
  batch x steps x neurons (a 16 GiB float32 voltage trace; the work of a call is proportional);
* parameters are float32 or float64 (``FLOAT_DTYPES``), finite, of the expected shape;
* delays lie in [0, max_delay] ms (on a grid: after rounding to whole steps).
"""

from __future__ import annotations

import math
from numbers import Integral, Real

import torch
from torch import Tensor

__all__ = [
    "FLOAT_DTYPES", "MAX_GRID_VALUES", "MAX_STEPS", "check_dtype", "check_finite",
    "check_parameter", "check_adaptation", "check_positive_finite", "check_nonnegative_finite",
    "check_limit",
    "check_choice", "check_delays", "check_grid_size", "check_event_arrays",
]  # fmt: skip

#: parameter dtypes the kernels are compiled for
FLOAT_DTYPES = (torch.float32, torch.float64)
#: most steps of a time grid (int32 step indices)
MAX_STEPS = 2**31 - 1
#: most batch x steps x neurons values of one layer call on a grid
MAX_GRID_VALUES = 2**32


def check_dtype(name: str, dtype: torch.dtype) -> None:
    """``dtype`` must be one the kernels support (float32, float64)."""
    if dtype not in FLOAT_DTYPES:
        raise ValueError(
            f"{name}: dtype {dtype} is not supported; use torch.float32 or torch.float64"
        )


def check_positive_finite(**values: float) -> None:
    """Each named value must be a number > 0 and finite (time constants, dt, threshold)."""
    for name, v in values.items():
        if isinstance(v, bool) or not isinstance(v, Real):
            raise ValueError(f"{name} must be a number, got {v!r}")
        if not (v > 0 and math.isfinite(v)):
            raise ValueError(f"{name} must be > 0 and finite, got {v}")


def check_nonnegative_finite(**values: float) -> None:
    """Each named value must be a finite number >= 0 (durations that may be zero: a refractory
    period, a largest delay)."""
    for name, v in values.items():
        if isinstance(v, bool) or not isinstance(v, Real):
            raise ValueError(f"{name} must be a number, got {v!r}")
        if not (v >= 0 and math.isfinite(v)):
            raise ValueError(f"{name} must be >= 0 and finite, got {v}")


def check_limit(**values: int | None) -> None:
    """Each named value must be a positive integer or None (no limit); 0 is not "no limit"."""
    for name, v in values.items():
        if v is not None and (isinstance(v, bool) or not isinstance(v, Integral) or v < 1):
            raise ValueError(f"{name} must be a positive integer or None (no limit), got {v!r}")


def check_choice(name: str, value: object, choices: tuple[str, ...]) -> None:
    """``value`` must be one of ``choices``."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(choices)}, got {value!r}")


def _range(tensor: Tensor) -> tuple[float, float]:
    """(min, max) in one pass; NaN when the tensor holds NaN."""
    lo, hi = torch.aminmax(tensor.detach())
    return float(lo), float(hi)


def check_finite(name: str, tensor: Tensor | None) -> tuple[float, float] | None:
    """``tensor`` (if given) holds no NaN or infinity; returns its (min, max) (one pass)."""
    if tensor is None or tensor.numel() == 0:
        return None
    lo, hi = _range(tensor)
    if not (math.isfinite(lo) and math.isfinite(hi)):
        bad = int((~torch.isfinite(tensor.detach())).sum())
        raise ValueError(f"{name} contains NaN or infinity ({bad} of {tensor.numel()} values)")
    return lo, hi


def check_parameter(
    name: str, tensor: Tensor | None, shape: tuple[int, ...], like: Tensor | None = None
) -> tuple[float, float] | None:
    """``tensor`` (if given) has ``shape``, a supported float dtype, the dtype and device of
    ``like`` (if given), and only finite values; returns its (min, max) (None if absent or
    empty)."""
    if tensor is None:
        return None
    if tuple(tensor.shape) != tuple(shape):
        raise ValueError(f"{name} must be {list(shape)}, got shape {tuple(tensor.shape)}")
    check_dtype(name, tensor.dtype)
    if like is not None and (tensor.dtype != like.dtype or tensor.device != like.device):
        raise ValueError(
            f"{name} is {tensor.dtype} on {tensor.device} but the weights are {like.dtype} on "
            f"{like.device}"
        )
    return check_finite(name, tensor)


def check_adaptation(name: str, jumps: Tensor | None, tau_adapt: float | None, n_out: int,
                     like: Tensor | None = None) -> None:  # fmt: skip
    """The adaptation jumps b [n_out] (V units) of a layer call ``name``: given exactly when the
    adaptation time constant ``tau_adapt`` (ms, > 0 and finite) is, finite and >= 0, with the
    dtype and device of ``like`` if given (both engines)."""
    if tau_adapt is None:
        if jumps is not None:
            raise ValueError(f"{name}: adaptation jumps b given but tau_adapt is None; set "
                             "tau_adapt (ms) for an adaptation current")  # fmt: skip
        return
    check_positive_finite(tau_adapt=tau_adapt)
    if jumps is None:
        raise ValueError(f"{name}: tau_adapt={tau_adapt} ms needs the adaptation jumps b "
                         f"([{n_out}] tensor, V units)")  # fmt: skip
    lo_hi = check_parameter("adaptation", jumps, (n_out,), like=like)
    if lo_hi is not None and lo_hi[0] < 0:
        raise ValueError(f"{name}: adaptation jumps b must be >= 0, got {lo_hi[0]}")


def check_delays(
    name: str, delay: Tensor | None, max_delay: float | None, dt: float | None = None
) -> None:
    """Delays (ms) must be finite and lie in [0, max_delay] (no upper bound if None).

    With ``dt`` the bound applies after rounding to the grid (``round(delay / dt)`` in
    [0, round(max_delay / dt)] steps), as the time-stepped engine places arrivals; without,
    to the values themselves, up to the rounding of ``max_delay`` to the tensor's dtype.
    """
    if delay is None or delay.numel() == 0:
        return
    lo, hi = check_finite(name, delay)
    if dt is not None:
        ok = round(lo / dt) >= 0 and (max_delay is None or round(hi / dt) <= round(max_delay / dt))
    else:
        slack = 0.0 if max_delay is None else 4 * torch.finfo(delay.dtype).eps * max_delay
        ok = lo >= 0 and (max_delay is None or hi <= max_delay + slack)
    if ok:
        return
    upper = "" if max_delay is None else f" and <= max_delay={max_delay} ms"
    raise ValueError(
        f"{name} must be >= 0 ms{upper}, found values in [{lo}, {hi}] ms"
        + ("" if dt is None else f" (rounded to steps of dt={dt} ms)")
        + "; call delayprop.constrain_(model) after each optimiser step to keep delays in range"
    )


def _count(n: int) -> str:
    return str(n) if n < 10**15 else f"{float(n):.3e}"


def check_grid_size(name: str, batch: int, n_steps: int, n_out: int) -> None:
    """A grid of ``n_steps`` steps for ``batch`` samples of ``n_out`` neurons fits the limits
    (``MAX_STEPS``, ``MAX_GRID_VALUES``)."""
    if n_steps > MAX_STEPS:
        raise ValueError(
            f"{name}: {_count(n_steps)} time steps (duration / dt) exceed the limit of "
            f"{MAX_STEPS}; use a larger dt or a shorter duration"
        )
    values = batch * n_steps * n_out
    if values > MAX_GRID_VALUES:
        raise ValueError(
            f"{name}: batch {batch} x {n_steps} steps x {n_out} neurons = {values} values "
            f"exceeds the limit of {MAX_GRID_VALUES} per layer call; use smaller batches, a "
            "larger dt or a shorter duration"
        )


def check_event_arrays(name: str, times: Tensor, units: Tensor, offsets: Tensor) -> None:
    """The layout of an event list as the kernels index it: ``times`` (or grid steps) and
    ``units`` 1-D of equal length, units int32, ``offsets`` 1-D int64 with at least one entry
    (per-sample offsets [batch + 1]).  O(1): shapes and dtypes only."""
    if times.dim() != 1 or units.dim() != 1 or offsets.dim() != 1:
        raise ValueError(f"{name}: spike times, units and offsets must be 1-D tensors")
    if times.numel() != units.numel():
        raise ValueError(f"{name}: {times.numel()} spike times but {units.numel()} units")
    if units.dtype != torch.int32 or offsets.dtype != torch.int64:
        raise ValueError(
            f"{name}: spike units must be int32 and offsets int64, got {units.dtype} and "
            f"{offsets.dtype}"
        )
    if offsets.numel() < 1:
        raise ValueError(f"{name}: spike offsets need one entry per sample and one more")
