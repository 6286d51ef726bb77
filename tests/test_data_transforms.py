"""Augmentations and preprocessing: counts, channel and time bounds, exact arithmetic.

Property tests run over seeded random batches; the pure functions are compared with a per-event
Python reference written independently of the vectorised code.
"""

from __future__ import annotations

import numpy as np
import pytest

from delayprop.data import (
    Blend,
    ChannelShift,
    Compose,
    EventDataset,
    TimeDilation,
    TimeJitter,
    bin_channels,
    crop_time,
    make_augmentation,
)
from delayprop.data.ordering import in_canonical_order
from delayprop.data.transforms import (
    blend_pairs,
    dilate_times,
    jitter_times,
    same_class_pairs,
    shift_channels,
)

SEEDS = range(12)


def random_dataset(seed: int, n: int = 24, n_channels: int = 50, duration: float = 100.0):
    rng = np.random.default_rng(seed)
    counts = rng.poisson(30, n)
    counts[rng.integers(0, n)] = 0
    times = [np.sort(rng.uniform(0, duration, c)).astype(np.float32) for c in counts]
    units = [rng.integers(0, n_channels, c) for c in counts]
    labels = rng.integers(0, 3, n)
    return EventDataset.from_ragged(times, units, labels, n_channels, 3, duration, "random",
                                    {"speaker": np.arange(n) % 4})  # fmt: skip


def random_batch(seed: int):
    ds = random_dataset(seed)
    idx = np.random.default_rng(seed + 100).permutation(len(ds))[:10]
    return ds.batch(idx)


def _events(batch):
    """Per-sample sorted lists of (time, unit) of a batch (reference form)."""
    out = [[] for _ in range(batch.batch_size)]
    for t, u, s in zip(batch.times.tolist(), batch.units.tolist(), batch.samples.tolist()):
        out[s].append((t, u))
    return [sorted(e) for e in out]


def _assert_bounds(batch):
    assert np.all((batch.units >= 0) & (batch.units < batch.n_channels))
    assert np.all((batch.times >= 0) & (batch.times < batch.duration))


# ---------------------------------------------------------------------- channel shift
def test_shift_channels_matches_per_event_reference():
    batch = random_batch(0)
    shifts = np.arange(batch.batch_size) * 9 - 40
    got = _events(shift_channels(batch, shifts))
    ref = [[] for _ in range(batch.batch_size)]
    for t, u, s in zip(batch.times.tolist(), batch.units.tolist(), batch.samples.tolist()):
        if 0 <= u + shifts[s] < batch.n_channels:
            ref[s].append((t, u + shifts[s]))
    assert got == [sorted(r) for r in ref]


@pytest.mark.parametrize("seed", SEEDS)
def test_channel_shift_properties(seed):
    batch = random_batch(seed)
    centre = batch.n_channels // 2
    # one marker spike per sample in the middle channel reveals the drawn shift
    marked = type(batch)(
        np.concatenate([batch.times, np.full(batch.batch_size, 1.0, np.float32)]),
        np.concatenate([batch.units, np.full(batch.batch_size, centre, np.int32)]),
        np.concatenate([batch.samples, np.arange(batch.batch_size)]),
        batch.labels, batch.n_channels, batch.duration,
    )  # fmt: skip
    out = ChannelShift(max_shift=20)(marked, np.random.default_rng(seed))
    _assert_bounds(out)
    assert len(out.times) <= len(marked.times)
    np.testing.assert_array_equal(out.labels, batch.labels)
    for b, (before, after) in enumerate(zip(_events(marked), _events(out))):
        shift = [u for t, u in after if t == 1.0 and u - centre in range(-20, 21)]
        assert shift, f"sample {b}: marker lost"
        s = shift[0] - centre
        expected = sorted((t, u + s) for t, u in before if 0 <= u + s < batch.n_channels)
        assert after == expected


def test_channel_shift_draws_every_offset_in_range():
    batch = random_batch(1)
    rng = np.random.default_rng(0)
    drawn = set()
    for _ in range(200):
        one = batch.__class__(np.array([1.0], np.float32), np.array([25], np.int32),
                              np.array([0]), batch.labels[:1], 50, batch.duration)  # fmt: skip
        drawn.add(int(ChannelShift(3)(one, rng).units[0]) - 25)
    assert drawn == set(range(-3, 4))


# ---------------------------------------------------------------------- time jitter, dilation
def test_jitter_times_matches_reference_and_clips():
    batch = random_batch(2)
    noise = np.random.default_rng(0).normal(0, 30.0, len(batch.times))
    dropped = jitter_times(batch, noise)
    ref = [[] for _ in range(batch.batch_size)]
    for t, u, s, e in zip(batch.times, batch.units, batch.samples, noise):
        tn = np.float32(t + e)
        if 0 <= tn < batch.duration:
            ref[s].append((float(tn), int(u)))
    assert _events(dropped) == [sorted(r) for r in ref]
    clipped = jitter_times(batch, noise, clip=True)
    assert len(clipped.times) == len(batch.times)
    _assert_bounds(clipped)
    assert clipped.times.min() == 0.0 and clipped.times.max() < batch.duration


@pytest.mark.parametrize("seed", SEEDS)
def test_time_jitter_and_dilation_properties(seed):
    batch = random_batch(seed)
    rng = np.random.default_rng(seed)
    for transform in (TimeJitter(5.0), TimeJitter(5.0, clip=True), TimeDilation(0.5, 1.5)):
        out = transform(batch, rng)
        _assert_bounds(out)
        np.testing.assert_array_equal(out.labels, batch.labels)
        assert len(out.times) <= len(batch.times)
        if getattr(transform, "clip", False):
            assert len(out.times) == len(batch.times)
            np.testing.assert_array_equal(out.units, batch.units)


def test_dilate_times_scales_each_sample_by_its_factor():
    batch = random_batch(3)
    factors = np.linspace(0.5, 2.0, batch.batch_size)
    out = dilate_times(batch, factors)
    ref = [[] for _ in range(batch.batch_size)]
    for t, u, s in zip(batch.times, batch.units, batch.samples):
        tn = np.float32(t * factors[s])
        if tn < batch.duration:
            ref[s].append((float(tn), int(u)))
    assert _events(out) == [sorted(r) for r in ref]
    with pytest.raises(ValueError, match="one factor per sample"):
        dilate_times(batch, factors[:-1])
    with pytest.raises(ValueError, match="must be > 0"):
        dilate_times(batch, -factors)


def test_compose_applies_in_order_and_factory_builds_from_specs():
    batch = random_batch(4)
    shift, jitter = (
        make_augmentation({"kind": "shift", "max_shift": 5}),
        make_augmentation({"kind": "jitter", "std": 1.0, "clip": True}),
    )
    assert shift == ChannelShift(5) and jitter == TimeJitter(1.0, True)
    a = Compose([shift, jitter])(batch, np.random.default_rng(7))
    rng = np.random.default_rng(7)
    b = jitter(shift(batch, rng), rng)
    np.testing.assert_array_equal(a.times, b.times)
    np.testing.assert_array_equal(a.units, b.units)
    with pytest.raises(ValueError, match="unknown augmentation kind 'mixup'"):
        make_augmentation({"kind": "mixup"})
    with pytest.raises(ValueError, match="bad options for augmentation 'shift'"):
        make_augmentation({"kind": "shift", "shift": 3})


# ---------------------------------------------------------------------- blending
def test_same_class_pairs_share_their_class_and_cover_each_class():
    labels = np.repeat(np.arange(5), [1, 2, 3, 4, 50])
    first, second = same_class_pairs(labels, 5000, np.random.default_rng(0))
    np.testing.assert_array_equal(labels[first], labels[second])
    assert set(second[labels[second] == 3]) == set(np.flatnonzero(labels == 3))


def test_blend_with_p_1_matches_per_event_reference():
    ds = random_dataset(5)
    first, second = same_class_pairs(ds.labels, 15, np.random.default_rng(1))
    out = blend_pairs(ds, first, second, 1.0, np.random.default_rng(2))
    assert len(out) == 15 and out.meta == {}
    np.testing.assert_array_equal(out.labels, ds.labels[first])
    for k, (a, b) in enumerate(zip(first, second)):
        ta = ds.times[ds.offsets[a] : ds.offsets[a + 1]].astype(np.float64)
        ua = ds.units[ds.offsets[a] : ds.offsets[a + 1]]
        tb = ds.times[ds.offsets[b] : ds.offsets[b + 1]].astype(np.float64)
        ub = ds.units[ds.offsets[b] : ds.offsets[b + 1]]
        cu_a, cu_b = (ua.mean() if len(ua) else 0.0), (ub.mean() if len(ub) else 0.0)
        ct_a, ct_b = (ta.mean() if len(ta) else 0.0), (tb.mean() if len(tb) else 0.0)
        du, dt = int((cu_b - cu_a) / 2), (ct_b - ct_a) / 2  # int() truncates towards zero
        ref = [(np.float32(t + dt), u + du) for t, u in zip(ta, ua)]
        ref += [(np.float32(t - dt), u - du) for t, u in zip(tb, ub)]
        ref = sorted((float(t), int(u)) for t, u in ref
                     if 0 <= u < ds.n_channels and 0 <= t < ds.duration)  # fmt: skip
        lo, hi = out.offsets[k], out.offsets[k + 1]
        got = sorted(zip(out.times[lo:hi].tolist(), out.units[lo:hi].tolist()))
        assert got == ref
    assert in_canonical_order(out.times, out.units, out.offsets)


@pytest.mark.parametrize("seed", SEEDS)
def test_blend_properties(seed):
    ds = random_dataset(seed)
    full = Blend(p=1.0)(ds, 40, np.random.default_rng(seed))
    half = Blend(p=0.5)(ds, 40, np.random.default_rng(seed))
    for out in (full, half):
        assert len(out) == 40 and out.name == "random-blend"
        assert np.all((out.units >= 0) & (out.units < ds.n_channels))
        assert np.all((out.times >= 0) & (out.times < ds.duration))
    np.testing.assert_array_equal(full.labels, half.labels)  # same pairs from the same seed
    assert np.all(half.counts() <= full.counts())  # a subset of the aligned spikes


def test_blend_keeps_each_spike_with_probability_p():
    ds = random_dataset(0, n=60)
    first, second = same_class_pairs(ds.labels, 400, np.random.default_rng(0))
    full = blend_pairs(ds, first, second, 1.0, np.random.default_rng(1))
    for p in (0.2, 0.5, 0.9):
        kept = blend_pairs(ds, first, second, p, np.random.default_rng(1)).n_events
        n = full.n_events
        assert abs(kept - p * n) < 5 * np.sqrt(n * p * (1 - p)), (p, kept, n)


def test_blend_refuses_mixed_classes_and_bad_p():
    ds = random_dataset(1)
    a, b = np.flatnonzero(ds.labels == 0)[:1], np.flatnonzero(ds.labels == 1)[:1]
    with pytest.raises(ValueError, match="share their class"):
        blend_pairs(ds, a, b, 0.5, np.random.default_rng(0))
    with pytest.raises(ValueError, match=r"p must lie in \[0, 1\]"):
        Blend(p=1.5)


# ---------------------------------------------------------------------- preprocessing
@pytest.mark.parametrize("seed", SEEDS)
def test_bin_channels_and_crop_time_properties(seed):
    ds = random_dataset(seed, n_channels=53)
    binned = bin_channels(ds, 5)
    assert binned.n_channels == 11 and binned.n_events == ds.n_events
    np.testing.assert_array_equal(binned.units, ds.units // 5)
    cut = float(np.random.default_rng(seed).uniform(10, 90))
    cropped = crop_time(ds, cut)
    assert cropped.duration == cut and np.all(cropped.times < cut)
    np.testing.assert_array_equal(cropped.counts(), [
        int((ds.times[ds.offsets[n]:ds.offsets[n + 1]] < cut).sum()) for n in range(len(ds))
    ])  # fmt: skip
    np.testing.assert_array_equal(cropped.meta["speaker"], ds.meta["speaker"])


@pytest.mark.parametrize("bad", [0, 2.5, -1])
def test_bad_binning_is_named(bad):
    with pytest.raises(ValueError, match="binning factor must be an integer >= 1"):
        bin_channels(random_dataset(0), bad)


@pytest.mark.parametrize("bad", [0.0, -5.0, float("nan"), float("inf")])
def test_bad_crop_is_named(bad):
    with pytest.raises(ValueError, match="crop must be a positive number of ms"):
        crop_time(random_dataset(0), bad)
