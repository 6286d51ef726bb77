"""Event queues of the exact engine (Numba): the merged timeline of one sample.

Arrivals come in *streams*: a spike at time t of unit u reaches its targets at t + d[u, m] for
the delays of u sorted ascending (m = 0, 1, ...), so each spike is one sorted stream and the
arrivals of a sample are the merge of its streams.  A binary heap holds the next arrival of every
live stream (one entry per stream, keyed by time): memory is O(spikes), not O(spikes x fan-out),
and one pop + one push yields the arrivals in time order.  The backward pass walks the same
streams from their ends with negated keys, i.e. in exactly the reverse order.

Predicted spike times of the neurons live in a tournament tree (min over neurons, ties to the
lower index) so that updating one neuron's prediction costs O(log n).

Heap entries are (key float64, stream int64, position int64) in three arrays; functions return
the new size.  Order between equal keys is irrelevant for the results: equal-time arrivals at one
neuron commute, and events of other kinds are ordered by the callers.
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = [
    "heap_push",
    "heap_pop",
    "heap_replace_top",
    "tree_size",
    "tree_reset",
    "tree_set",
]


@njit(cache=True)
def _sift_down(key, stream, pos, n, i):
    k, a, m = key[i], stream[i], pos[i]
    while True:
        c = 2 * i + 1
        if c >= n:
            break
        if c + 1 < n and key[c + 1] < key[c]:
            c += 1
        if not key[c] < k:
            break
        key[i], stream[i], pos[i] = key[c], stream[c], pos[c]
        i = c
    key[i], stream[i], pos[i] = k, a, m


@njit(cache=True)
def heap_push(key, stream, pos, n, k, a, m):
    """Insert (k, a, m) into the heap of size n; returns n + 1."""
    i = n
    while i > 0:
        parent = (i - 1) // 2
        if not k < key[parent]:
            break
        key[i], stream[i], pos[i] = key[parent], stream[parent], pos[parent]
        i = parent
    key[i], stream[i], pos[i] = k, a, m
    return n + 1


@njit(cache=True)
def heap_pop(key, stream, pos, n):
    """Remove the smallest entry (at index 0); returns n - 1."""
    n -= 1
    if n > 0:
        key[0], stream[0], pos[0] = key[n], stream[n], pos[n]
        _sift_down(key, stream, pos, n, 0)
    return n


@njit(cache=True)
def heap_replace_top(key, stream, pos, n, k, a, m):
    """Replace the smallest entry by (k, a, m) (a stream's next arrival); size unchanged."""
    key[0], stream[0], pos[0] = k, a, m
    _sift_down(key, stream, pos, n, 0)


def tree_size(n: int) -> int:
    """Leaves of a tournament tree over n neurons (a power of two >= n)."""
    p = 1
    while p < n:
        p *= 2
    return p


@njit(cache=True)
def tree_reset(times, index, leaves):
    """All predictions infinite; ``times``/``index`` have 2 * leaves entries, root at 1."""
    times[:] = np.inf
    for i in range(leaves):
        index[leaves + i] = i
    for i in range(leaves - 1, 0, -1):
        index[i] = index[2 * i]


@njit(cache=True)
def tree_set(times, index, leaves, j, t):
    """Set neuron j's predicted spike time to t; the root then holds the earliest one."""
    i = leaves + j
    times[i] = t
    i //= 2
    while i >= 1:
        left, right = 2 * i, 2 * i + 1
        if times[right] < times[left]:
            times[i], index[i] = times[right], index[right]
        else:
            times[i], index[i] = times[left], index[left]
        i //= 2
