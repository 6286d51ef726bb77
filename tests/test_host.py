"""The host layer shared by every driver (``kernels.host``), with a stand-in kernel: each sample
fires a known number of spikes, numbered, so the compacted output shows where each came from."""

from __future__ import annotations

import numpy as np
import pytest

from delayprop.kernels.host import SpikeCapacity, SpikeLimitExceeded, run_in_slots

NEEDS = np.array([3, 0, 9, 5, 1, 12])  # spikes of each sample


def _kernel(counting: bool):
    """A kernel writing spike e of sample b as the value 100 b + e; it reports each sample's
    count (the time grid) or, when ``counting`` is false, -1 for a sample that ran out of room
    (the exact engine).  Records the room of every run."""
    caps: list[int] = []

    def run(ids: np.ndarray, cap: int) -> tuple[list[np.ndarray], np.ndarray]:
        caps.append(cap)
        values = np.full(len(ids) * cap, -1, np.int64)
        got = np.empty(len(ids), np.int64)
        for r, b in enumerate(ids):
            n = min(NEEDS[b], cap)
            values[r * cap : r * cap + n] = 100 * b + np.arange(n)
            got[r] = NEEDS[b] if counting or NEEDS[b] <= cap else -1
        return [values, values.astype(np.float32)], got

    return run, caps


EXPECTED = np.concatenate([100 * b + np.arange(n) for b, n in enumerate(NEEDS)])


@pytest.mark.parametrize("capacity", [1, 4, 12, 100])
@pytest.mark.parametrize("counting", [True, False])
def test_every_spike_lands_in_order_whatever_the_capacity(capacity, counting):
    run, caps = _kernel(counting)
    (values, as_float), offsets = run_in_slots(run, len(NEEDS), capacity)
    assert np.array_equal(values, EXPECTED) and np.array_equal(as_float, EXPECTED)
    assert np.array_equal(offsets, np.concatenate([[0], np.cumsum(NEEDS)]))
    if capacity >= NEEDS.max():
        assert caps == [capacity]
    elif counting:  # the rerun gets exactly the room the largest sample needs
        assert caps == [capacity, NEEDS.max()]
    else:  # unknown needs: the room doubles
        assert caps == [capacity * 2**k for k in range(len(caps))]


def test_a_capacity_hint_is_updated_and_an_int_is_not():
    hint = SpikeCapacity(2)
    run_in_slots(_kernel(True)[0], len(NEEDS), hint)
    assert hint.per_sample == int(1.25 * NEEDS.max()) + 16
    assert run_in_slots(_kernel(True)[0], 0, hint)[1].tolist() == [0]  # no samples: kept
    assert hint.per_sample == int(1.25 * NEEDS.max()) + 16


def test_limits_of_unknown_needs():
    run, caps = _kernel(False)
    with pytest.raises(SpikeLimitExceeded) as err:
        run_in_slots(run, len(NEEDS), 2, limit=8)
    assert (err.value.sample, err.value.limit, err.value.pending) == (2, 8, 0)
    assert caps == [2, 4, 8]
    with pytest.raises(SpikeLimitExceeded) as err:  # room for 12 slots per call
        run_in_slots(_kernel(False)[0], len(NEEDS), 2, max_slots=12)
    assert (err.value.sample, err.value.limit, err.value.pending) == (2, 4, 3)
