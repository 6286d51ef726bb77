"""The canonical event order of a sample: by time, equal times by channel (as in ``Spikes``).

Data sets keep their events in this order, so that a gathered batch is already in ``Spikes``
order and needs no sort on the way to the network (``EventBatch.to_spikes`` checks and skips
it).  Sorting happens once per conversion, in a small Numba merge sort per sample.
"""

from __future__ import annotations

import numpy as np
from numba import njit

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


# Index arithmetic is unsigned (uint64) so that Numba adds no negative-index checks; literals
# that meet an index are uint64 too (uint64 with int64 would promote to float64).  Loops are
# while loops: range() over uint64 bounds measured 2x slower than these here.
@njit(cache=True, inline="always")
def _before(times, units, i, j):
    """Event i comes strictly before event j in canonical order."""
    return times[i] < times[j] or (times[i] == times[j] and units[i] < units[j])


@njit(cache=True, inline="always")
def _merge(times, units, src, dst, start, mid, end):
    """dst[start:end] = the sorted runs src[start:mid] and src[mid:end] merged (stable)."""
    one = np.uint64(1)
    a, b, k = start, mid, start
    while a < mid and b < end:
        if _before(times, units, src[b], src[a]):
            dst[k] = src[b]
            b += one
        else:
            dst[k] = src[a]
            a += one
        k += one
    while a < mid:
        dst[k] = src[a]
        a += one
        k += one
    while b < end:
        dst[k] = src[b]
        b += one
        k += one


@njit(cache=True)
def _sort_samples(times, units, offsets, perm, buf):
    """perm[lo:hi] = lo.. sorted by (time, unit) for every sample: samples already in order
    are skipped, samples sorted by time get their ties ordered by insertion, the others a
    bottom-up merge sort.  ``buf`` is scratch of the size of ``perm``."""
    one = np.uint64(1)
    for s in range(len(offsets) - 1):
        lo = np.uint64(offsets[s])
        hi = np.uint64(offsets[s + 1])
        i = lo
        while i < hi:
            perm[i] = i
            i += one
        ordered = True
        time_sorted = True
        i = lo + one
        while i < hi:
            if times[i] < times[i - one]:
                ordered = False
                time_sorted = False
                break
            if times[i] == times[i - one] and units[i] < units[i - one]:
                ordered = False
            i += one
        if ordered:
            continue
        if time_sorted:  # only the (short) runs of equal times need ordering: insertion
            i = lo + one
            while i < hi:
                p = perm[i]
                j = i
                while (
                    j > lo and times[perm[j - one]] == times[p] and units[perm[j - one]] > units[p]
                ):
                    perm[j] = perm[j - one]
                    j -= one
                perm[j] = p
                i += one
            continue
        src, dst = perm, buf
        width = one
        while width < hi - lo:
            start = lo
            while start < hi:
                mid = min(start + width, hi)
                end = min(mid + width, hi)
                _merge(times, units, src, dst, start, mid, end)
                start = end
            src, dst = dst, src
            width *= np.uint64(2)
        if src is not perm:
            i = lo
            while i < hi:
                perm[i] = src[i]
                i += one


def canonical_permutation(times: np.ndarray, units: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Permutation (int64) that puts every sample ``offsets[b]:offsets[b+1]`` into canonical
    order; stable for events equal in time and unit.  ``times`` float32, ``units`` int32."""
    perm = np.empty(len(times), np.uint64)
    _sort_samples(
        np.ascontiguousarray(times, np.float32),
        np.ascontiguousarray(units, np.int32),
        np.ascontiguousarray(offsets, np.int64),
        perm,
        np.empty(len(times), np.uint64),
    )
    return perm.astype(np.int64)
