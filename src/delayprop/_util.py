"""Small helpers shared by several layers of the package; they know nothing of neurons.

Everything above the kernels may import this module, and it imports nothing from delayprop.
"""

from __future__ import annotations

import math

__all__ = ["REDUCTION_CHUNKS", "n_chunks", "n_steps_for"]

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
