"""Small helpers shared by several layers of the package; they know nothing of neurons.

Everything above the kernels may import this module, and it imports nothing from delayprop.
"""

from __future__ import annotations

import dataclasses
import importlib
import math
from types import ModuleType
from typing import Any

__all__ = ["REDUCTION_CHUNKS", "n_chunks", "n_steps_for", "field_defaults", "optional_import"]

#: A batch is split into this many chunks of samples (fewer for smaller batches); each chunk
#: has its own buffers and gradient accumulators, and the chunks' partial sums are added in
#: chunk order.  The chunking, and so every floating-point sum, is the same whatever the number
#: of threads: training gives bit-identical results on 1, 2 or N cores.  8 chunks keep up to
#: 8 threads busy; the accumulators cost 8 copies of each gradient (e.g. 11 MB for a
#: 700 x 256 float32 layer), zeroed and summed once per backward pass.
REDUCTION_CHUNKS = 8


def n_chunks(batch: int) -> int:
    """Number of sample chunks (parallel work items) for a batch of ``batch`` samples:
    independent of the number of threads."""
    return max(1, min(batch, REDUCTION_CHUNKS))


def n_steps_for(duration: float, dt: float) -> int:
    """Number of grid steps of ``dt`` ms that cover ``duration`` ms (t = 0, dt, ..., (n-1) dt)."""
    return max(1, int(math.ceil(duration / dt - 1e-9)))


def field_defaults(cls: type) -> dict[str, Any]:
    """The default of every field of the dataclass ``cls`` (a ``default_factory`` is called),
    without building an instance."""
    return {f.name: f.default if f.default is not dataclasses.MISSING else f.default_factory()
            for f in dataclasses.fields(cls)}  # fmt: skip


def optional_import(module: str, extra: str, purpose: str) -> ModuleType:
    """Import ``module``, a dependency of an optional part of delayprop (``purpose``), or raise
    ``ImportError`` naming the extra of the package that installs it (pyproject.toml)."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise ImportError(f"{purpose} needs the module {module}, which is not installed: "
                          f"pip install 'delayprop[{extra}]'") from err  # fmt: skip
