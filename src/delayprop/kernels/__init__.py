"""Compute backends of the time-stepped engine.

``grid_backend(device)`` returns the module whose ``lif_forward``, ``lif_backward``,
``li_forward`` and ``li_backward`` run on that device; ``precise_backend(device)`` the same for
the precise mode (with ``prepare``).  The CPU backend (Numba) is always there; the CUDA backend
is imported only when a CUDA tensor arrives, so that importing delayprop never needs numba-cuda
or a GPU.
"""

from __future__ import annotations

import importlib
from types import ModuleType

import torch

from ._grid_math import VDOT_FLOOR, GridConstants, grid_constants

__all__ = ["grid_backend", "precise_backend", "GridConstants", "grid_constants", "VDOT_FLOOR"]


def grid_backend(device: torch.device) -> ModuleType:
    """The time-stepped backend for tensors on ``device``."""
    return _backend(device, "grid_cpu", "grid_cuda")


def precise_backend(device: torch.device) -> ModuleType:
    """The host module of the precise mode for tensors on ``device`` (``prepare``,
    ``lif_forward``, ``lif_backward``, ``li_forward``, ``li_backward``)."""
    return _backend(device, "precise_host", "precise_cuda_host")


def _backend(device: torch.device, cpu: str, cuda: str) -> ModuleType:
    """Module ``cpu`` or ``cuda`` of this package by ``device.type``, imported when asked for."""
    if device.type == "cpu":
        return importlib.import_module(f".{cpu}", __name__)
    if device.type == "cuda":
        try:
            return importlib.import_module(f".{cuda}", __name__)
        except ImportError as err:  # pragma: no cover - depends on the installation
            raise RuntimeError(
                "CUDA tensors need the CUDA backend: install numba-cuda "
                "(pip install 'delayprop[cuda]') and an NVIDIA driver"
            ) from err
    raise RuntimeError(f"no delayprop backend for device type {device.type!r}")
