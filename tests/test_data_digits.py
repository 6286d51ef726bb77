"""Latency-coded scikit-learn digits: real images, exact latency code, seeded stratified splits."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("sklearn")

from delayprop.data import load_dataset  # noqa: E402
from delayprop.data.digits import digit_images, digits_dataset  # noqa: E402


def test_splits_partition_the_1797_images_by_class():
    pixels, labels = digit_images()
    assert pixels.shape == (1797, 64) and labels.shape == (1797,)
    parts = [load_dataset("digits", s) for s in ("train", "validation", "test")]
    assert [len(p) for p in parts] == [1258, 180, 359]
    total = sum(np.bincount(p.labels, minlength=10) for p in parts)
    np.testing.assert_array_equal(total, np.bincount(labels))
    for part in parts:
        frac = np.bincount(part.labels, minlength=10) / np.bincount(labels)
        assert np.ptp(frac) < 0.02  # every class divided in the same proportions


def test_each_pixel_spikes_once_at_its_latency():
    """Reference: a per-pixel loop over the raw images, matched to the samples by content."""
    pixels, labels = digit_images()
    ds = load_dataset("digits", "test", t_early=2.0, t_late=10.0, duration=12.0)
    assert (ds.n_channels, ds.n_classes, ds.duration) == (64, 10, 12.0)
    by_content = {}
    for img, label in zip(pixels, labels):
        events = sorted(
            (np.float32(2.0 + (1 - v / 16) * 8.0), c) for c, v in enumerate(img) if v > 0
        )
        by_content.setdefault((int(label), tuple(events)), 0)
        by_content[(int(label), tuple(events))] += 1
    for n in range(len(ds)):
        lo, hi = ds.offsets[n], ds.offsets[n + 1]
        key = (int(ds.labels[n]), tuple(sorted(zip(ds.times[lo:hi], ds.units[lo:hi].tolist()))))
        assert by_content.get(key, 0) > 0, f"sample {n} matches no image"
        by_content[key] -= 1


def test_seed_changes_the_split_and_repeats_exactly():
    a = load_dataset("digits", "validation", seed=0)
    b = load_dataset("digits", "validation", seed=0)
    c = load_dataset("digits", "validation", seed=1)
    np.testing.assert_array_equal(a.times, b.times)
    assert not np.array_equal(a.offsets, c.offsets) or not np.array_equal(a.times, c.times)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(t_early=5.0, t_late=4.0), "need 0 <= t_early <= t_late < duration"),
        (dict(t_late=30.0), "need 0 <= t_early <= t_late < duration"),
    ],
)
def test_bad_encodings_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        load_dataset("digits", "train", **kwargs)


def test_pixels_outside_0_16_are_refused():
    with pytest.raises(ValueError, match=r"intensities in \[0, 16\]"):
        digits_dataset(np.full((1, 64), 17.0), np.zeros(1, np.int64))
