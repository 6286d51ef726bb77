"""Initialisers for weights and delays, in the forms the published configurations use.

An initialiser is one of

* a number ``c``: every entry is ``c`` (constant delays, fixed weights);
* a pair ``(low, high)``: uniform in [low, high) (delays, e.g. U(0, 150) ms on SHD);
* ``Normal(mean, std)``: normal (weights, e.g. N(0.03, 0.01) for SHD inputs);
* explicit values: a tensor, array or (nested) list of the parameter's shape;
* a callable that fills a tensor in place.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

__all__ = ["Normal", "Uniform", "Init", "apply_init"]


@dataclass(frozen=True)
class Normal:
    """Normal initialiser N(mean, std)."""

    mean: float = 0.0
    std: float = 1.0

    def __call__(self, t: Tensor) -> None:
        if self.std < 0:
            raise ValueError(f"std must be >= 0, got {self.std}")
        with torch.no_grad():
            t.normal_(self.mean, self.std)


@dataclass(frozen=True)
class Uniform:
    """Uniform initialiser U(low, high)."""

    low: float
    high: float

    def __call__(self, t: Tensor) -> None:
        if self.high < self.low:
            raise ValueError(f"need low <= high, got ({self.low}, {self.high})")
        with torch.no_grad():
            t.uniform_(self.low, self.high)


Init = (
    float | int | tuple[float, float] | Normal | Uniform | list | np.ndarray | Tensor
    | Callable[[Tensor], None]
)


def apply_init(t: Tensor, init: Init) -> Tensor:
    """Fill ``t`` in place according to ``init`` (see module docstring); returns ``t``."""
    with torch.no_grad():
        if isinstance(init, bool):
            raise TypeError("an initialiser cannot be a bool")
        if isinstance(init, (int, float)):
            t.fill_(float(init))
        elif isinstance(init, tuple):
            if len(init) != 2:
                raise ValueError(f"a range initialiser is (low, high), got {init!r}")
            Uniform(float(init[0]), float(init[1]))(t)
        elif isinstance(init, (list, np.ndarray, Tensor)):
            values = torch.as_tensor(init, dtype=t.dtype)
            if values.shape != t.shape:
                raise ValueError(
                    f"explicit initial values have shape {tuple(values.shape)}, "
                    f"the parameter needs {tuple(t.shape)}"
                )
            t.copy_(values)
        elif callable(init):
            init(t)
        else:
            raise TypeError(f"cannot initialise from {init!r}")
    return t
