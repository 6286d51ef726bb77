"""EventDataset helpers added for the loaders: ragged input, sorting, concatenation, names."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from delayprop import Spikes
from delayprop.data.base import EventDataset, duration_after, sort_within_samples
from delayprop.data.ordering import in_canonical_order


def test_from_ragged_sorts_each_sample_stably_and_keeps_samples_apart():
    times = [np.array([3.0, 1.0, 1.0, 2.0]), np.array([]), np.array([0.5, 0.25])]
    units = [np.array([0, 1, 2, 3]), np.array([], int), np.array([7, 6])]
    ds = EventDataset.from_ragged(times, units, [1, 0, 1], 8, 2, 4.0, "x", class_names=("a", "b"))
    assert ds.offsets.tolist() == [0, 4, 4, 6]
    assert ds.times.tolist() == [1.0, 1.0, 2.0, 3.0, 0.25, 0.5]
    assert ds.units.tolist() == [1, 2, 3, 0, 6, 7]
    assert ds.counts().tolist() == [4, 0, 2] and ds.class_names == ("a", "b")


def test_sort_within_samples_returns_canonical_input_unchanged():
    t = np.array([1.0, 2.0, 0.0, 5.0], np.float32)
    u = np.array([1, 2, 3, 4], np.int32)
    st, su = sort_within_samples(t, u, np.array([0, 2, 4]))
    assert st is t and su is u
    st, su = sort_within_samples(t, u, np.array([0, 3, 4]))
    assert st.tolist() == [0.0, 1.0, 2.0, 5.0] and su.tolist() == [3, 1, 2, 4]


@pytest.mark.parametrize("seed", range(6))
def test_canonical_order_equals_a_lexsort_by_sample_time_unit(seed):
    """Reference: numpy's lexsort on (sample, time, unit) keys; coarse times force many ties."""
    rng = np.random.default_rng(seed)
    counts = rng.integers(0, 60, 40)
    offsets = np.concatenate([[0], np.cumsum(counts)])
    samples = np.repeat(np.arange(40), counts)
    t = rng.integers(0, 8, offsets[-1]).astype(np.float32)
    if seed % 2:  # sorted by time, ties in random unit order
        t = t[np.lexsort((t, samples))]
    u = rng.integers(0, 5, offsets[-1]).astype(np.int32)
    ref = np.lexsort((u, t, samples))
    st, su = sort_within_samples(t, u, offsets)
    np.testing.assert_array_equal(st, t[ref])
    np.testing.assert_array_equal(su, u[ref])
    assert in_canonical_order(st, su, offsets)
    assert not in_canonical_order(t, u, offsets)


def test_gathered_batches_skip_the_sort_and_equal_the_sorted_path():
    rng = np.random.default_rng(0)
    times = [np.round(rng.uniform(0, 20, c)) for c in rng.integers(0, 50, 30)]
    units = [rng.integers(0, 9, len(t)) for t in times]
    ds = EventDataset.from_ragged(times, units, rng.integers(0, 2, 30), 9, 2, 25.0)
    batch = ds.batch(rng.permutation(30)[:12])
    fast = batch.to_spikes(dtype=torch.float64)
    slow = Spikes.from_arrays(batch.times, batch.units, batch.samples, 12, 9, 25.0,
                              dtype=torch.float64)  # fmt: skip
    for name in ("times", "units", "offsets", "samples"):
        assert torch.equal(getattr(fast, name), getattr(slow, name)), name
    shuffled = replace(batch, times=batch.times[::-1].copy(), units=batch.units[::-1].copy(),
                       samples=batch.samples[::-1].copy())  # fmt: skip
    again = shuffled.to_spikes(dtype=torch.float64)
    assert torch.equal(again.times, slow.times) and torch.equal(again.units, slow.units)
    bad = replace(batch, times=np.where(np.arange(len(batch.times)) == 3, np.nan, batch.times))
    with pytest.raises(ValueError, match="NaN"):
        bad.to_spikes()
    with pytest.raises(ValueError, match=r"unit index out of range \[0, 9\)"):
        replace(batch, units=batch.units + 5).to_spikes()
    with pytest.raises(ValueError, match=r"sample index out of range \[0, 12\)"):
        replace(batch, samples=batch.samples + 1).to_spikes()


def test_duration_after_is_strictly_later_in_float32():
    assert duration_after(0.0) == 1.0 and duration_after(41.5) == 42.0
    assert duration_after(999.99999) == 1001.0  # float32 rounds it to 1000.0
    ds = EventDataset.from_ragged([np.array([999.99999])], [np.array([0])], [0], 1, 1, None)
    assert ds.times.max() < ds.duration == 1001.0


@pytest.mark.parametrize(
    "times, units, labels, message",
    [
        ([np.array([1.0])], [np.array([0, 1])], [0], "sample 0: 1 spike times but 2 unit ids"),
        ([np.array([1.0])], [np.array([0.5])], [0], "unit ids must be integers"),
        ([np.array([1.0])], [np.array([9])], [0], r"unit id outside \[0, 4\)"),
        ([np.array([1.0]), np.array([np.nan])], [np.array([0]), np.array([1])], [0, 0],
         "sample 1: spike time nan"),
        ([np.array([1.0])], [np.array([1])], [0, 1], "1 time arrays, 1 unit arrays, 2 labels"),
    ],
)  # fmt: skip
def test_from_ragged_names_bad_input(times, units, labels, message):
    with pytest.raises(ValueError, match=message):
        EventDataset.from_ragged(times, units, labels, 4, 2, 10.0)


def test_concatenate_and_subset_keep_meta_and_class_names():
    a = EventDataset.from_ragged([np.array([1.0]), np.array([2.0, 3.0])], [np.array([0]),
                                 np.array([1, 0])], [0, 1], 2, 2, 5.0, "a", {"speaker":
                                 np.array([4, 5])}, ("no", "yes"))  # fmt: skip
    b = a.subset([1])
    both = EventDataset.concatenate([a, b], name="ab")
    assert both.name == "ab" and len(both) == 3 and both.class_names == ("no", "yes")
    assert both.meta["speaker"].tolist() == [4, 5, 5]
    assert both.times.tolist() == [1.0, 2.0, 3.0, 2.0, 3.0]
    assert both.offsets.tolist() == [0, 1, 3, 5]
    with pytest.raises(ValueError, match="channels, classes or duration differ"):
        EventDataset.concatenate([a, replace(a, duration=6.0)])
    with pytest.raises(ValueError, match="meta keys differ"):
        EventDataset.concatenate([a, replace(a, meta={})])
    with pytest.raises(ValueError, match="3 class names for 2 classes"):
        replace(a, class_names=("a", "b", "c"))
