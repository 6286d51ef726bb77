"""Compute backends of the time-stepped engine.

``grid_backend(device)`` returns the module whose ``lif_forward``, ``lif_backward``,
``li_forward`` and ``li_backward`` run on that device.  The CPU backend (Numba) is always there;
the CUDA backend is imported only when a CUDA tensor arrives, so that importing delayprop never
needs numba-cuda or a GPU.
"""

from __future__ import annotations

from types import ModuleType

import torch

from ._grid_math import VDOT_FLOOR, GridConstants, grid_constants

__all__ = ["grid_backend", "GridConstants", "grid_constants", "VDOT_FLOOR"]


def grid_backend(device: torch.device) -> ModuleType:
    """The time-stepped backend for tensors on ``device``."""
    if device.type == "cpu":
        from . import grid_cpu

        return grid_cpu
    if device.type == "cuda":
        try:
            from . import grid_cuda
        except ImportError as err:  # pragma: no cover - depends on the installation
            raise RuntimeError(
                "CUDA tensors need the CUDA backend: install numba-cuda "
                "(pip install 'delayprop[cuda]') and an NVIDIA driver"
            ) from err
        return grid_cuda
    raise RuntimeError(f"no delayprop backend for device type {device.type!r}")
