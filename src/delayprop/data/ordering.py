"""The canonical event order of a sample: by time, equal times by channel (as in ``Spikes``).

Data sets keep their events in this order, so that a gathered batch is already in ``Spikes``
order and needs no sort on the way to the network (``EventBatch.to_spikes`` checks and skips
it).  Sorting happens once per conversion, in a Numba kernel that is parallel over samples.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

__all__ = ["in_canonical_order", "canonical_permutation"]


def in_canonical_order(times: np.ndarray, units: np.ndarray, offsets: np.ndarray) -> bool:
    """True if every sample ``offsets[b]:offsets[b+1]`` ascends by time, then unit (O(n))."""
    if len(times) < 2:
        return True
    ok = (times[1:] > times[:-1]) | ((times[1:] == times[:-1]) & (units[1:] >= units[:-1]))
    if ok.all():
        return True
    # a step back is allowed only where a new sample starts
    return bool(np.isin(np.flatnonzero(~ok) + 1, offsets[1:-1]).all())


# Index arithmetic is unsigned (uint64) so that Numba adds no negative-index checks; every
# literal that meets an index is uint64 too (uint64 with int64 would promote to float64).
@njit(cache=True, parallel=True)
def _sort_samples(times, units, offsets, perm):
    one = np.uint64(1)
    for s in prange(len(offsets) - 1):
        lo = np.uint64(offsets[s])
        n = np.uint64(offsets[s + 1]) - lo
        seg = times[lo : lo + n]
        if n > one and np.any(seg[1:] < seg[:-1]):
            local = np.argsort(seg, kind="mergesort").astype(np.uint64)
        else:
            local = np.arange(n, dtype=np.uint64)
        for i in range(one, n):
            p = local[i]
            t = times[lo + p]
            u = units[lo + p]
            j = i
            while j > 0 and times[lo + local[j - one]] == t and units[lo + local[j - one]] > u:
                local[j] = local[j - one]
                j -= one
            local[j] = p
        for i in range(n):
            perm[lo + i] = lo + local[i]


def canonical_permutation(times: np.ndarray, units: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Permutation (int64) that puts every sample ``offsets[b]:offsets[b+1]`` into canonical
    order; stable for events equal in time and unit.  ``times`` float32, ``units`` int32."""
    perm = np.empty(len(times), np.uint64)
    _sort_samples(
        np.ascontiguousarray(times, np.float32),
        np.ascontiguousarray(units, np.int32),
        np.ascontiguousarray(offsets, np.int64),
        perm,
    )
    return perm.astype(np.int64)
