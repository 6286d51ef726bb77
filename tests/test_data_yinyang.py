"""Yin-Yang: the generated splits equal the published arrays of lkriener/yin_yang_data_set.

The reference values below were computed from the published ``publication_data/*.npy`` files
(sha256 of ``np.ascontiguousarray(features float64 [n, 4]).tobytes()`` and of
``labels.astype(np.int64).tobytes()``), so a change in the geometry, the rejection sampling or the
order of random draws fails here.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from delayprop.data import YinYangEncoding, load_dataset
from delayprop.data.yinyang import SPLITS, yinyang_points

PUBLISHED = {
    "train": dict(
        features="f5a4054d56f2a058f8250fba7ff9720458e1625db7af78a295e45701745b2228",
        labels="534d12acda4f9dbc7208a99d3646115a4aa7d74ca31d6d23f822079a568559b7",
        counts=[1681, 1702, 1617],
        first_labels=[2, 1, 2, 1, 1],
    ),
    "validation": dict(
        features="5eac358bdf2122763dce3703a79f3005e56e46a4db25ec329a07333d0f7b8093",
        labels="5a4c2f605814a620f514c1091f10441ce562cd81e902ce701b3cf94ae7576f7d",
        counts=[316, 336, 348],
        first_labels=[0, 1, 0, 0, 2],
    ),
    "test": dict(
        features="7bab3ed668ed4992679cff6339fe21bfe7d0c921ddc6187eaa3bc6ef34b888d7",
        labels="daa0f8f4e3b37b1ddec2afee22f09afb768f0e575f3f568e7469f1ebc6af73c1",
        counts=[350, 316, 334],
        first_labels=[2, 2, 1, 1, 1],
    ),
}
FIRST_TRAIN_SAMPLE = [0.6803075385877797, 0.450499251969543, 0.3196924614122203, 0.549500748030457]


@pytest.fixture(scope="module")
def points():
    return {split: yinyang_points(*SPLITS[split]) for split in PUBLISHED}


def _sha(a: np.ndarray) -> str:
    return hashlib.sha256(a.tobytes()).hexdigest()


@pytest.mark.parametrize("split", list(PUBLISHED))
def test_generated_splits_equal_the_published_arrays(points, split):
    features, labels = points[split]
    ref = PUBLISHED[split]
    assert features.shape == (SPLITS[split][0], 4)
    assert _sha(np.ascontiguousarray(features, dtype=np.float64)) == ref["features"]
    assert _sha(labels.astype(np.int64)) == ref["labels"]
    assert np.bincount(labels).tolist() == ref["counts"]
    assert labels[:5].tolist() == ref["first_labels"]


def test_first_train_sample_and_mirrored_features(points):
    features, _ = points["train"]
    assert features[0].tolist() == FIRST_TRAIN_SAMPLE
    np.testing.assert_array_equal(features[:, 2:], 1.0 - features[:, :2])


def test_eventprop_encoding_maps_features_linearly_to_1_5_20_ms(points):
    features, labels = points["test"]
    ds = load_dataset("yinyang", "test")
    assert (ds.n_channels, ds.n_classes, ds.duration) == (4, 3, 30.0)
    np.testing.assert_array_equal(ds.labels, labels)
    assert np.all(ds.counts() == 4)
    expected = (1.5 + 18.5 * features).astype(np.float32)
    for n in (0, 1, 517, 999):
        lo, hi = ds.offsets[n], ds.offsets[n + 1]
        got = np.empty(4, np.float32)
        got[ds.units[lo:hi]] = ds.times[lo:hi]
        np.testing.assert_array_equal(got, expected[n])
        assert np.all(np.diff(ds.times[lo:hi]) >= 0)


@pytest.mark.parametrize("tau_syn", [1.0, 5.0])
def test_delgrad_encoding_spans_0_15_to_2_tau_syn_with_bias_spike(points, tau_syn):
    features, _ = points["validation"]
    ds = load_dataset("yinyang", "validation", encoding="delgrad", tau_syn=tau_syn)
    assert ds.n_channels == 5 and np.all(ds.counts() == 5)
    dense = np.empty((len(ds), 5))
    rows = np.repeat(np.arange(len(ds)), 5)
    dense[rows, ds.units] = ds.times
    expected = tau_syn * (0.15 + (2.0 - 0.15) * features)
    np.testing.assert_allclose(dense[:, :4], expected, rtol=1e-6)
    np.testing.assert_allclose(dense[:, 4], 0.9 * tau_syn, rtol=1e-6)


def test_explicit_encoding_fields_override_the_preset():
    ds = load_dataset("yinyang", "test", t_early=2.0, t_late=12.0, bias_time=0.5, duration=15.0)
    assert ds.n_channels == 5 and ds.duration == 15.0
    assert ds.times.min() == pytest.approx(0.5) and ds.times.max() <= 12.0
    enc = YinYangEncoding.delgrad(2.0)
    assert (enc.t_early, enc.t_late, enc.bias_time) == pytest.approx((0.3, 4.0, 1.8))


@pytest.mark.parametrize(
    "options, message",
    [
        (dict(encoding="ttfs"), "unknown Yin-Yang encoding"),
        (dict(duration=10.0), "duration 10.0 ms must exceed"),
        (dict(tau=5.0), "unknown option"),
        (dict(encoding="delgrad", tau_syn=-1.0), "tau_syn must be > 0"),
    ],
)
def test_bad_options_are_named(options, message):
    with pytest.raises(ValueError, match=message):
        load_dataset("yinyang", "test", size=10, **options)


def test_unknown_split_is_named():
    with pytest.raises(ValueError, match="unknown Yin-Yang split 'valid'"):
        load_dataset("yinyang", "valid")
