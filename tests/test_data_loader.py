"""torch loader and tonic adapter: batches hold exactly the data set's events."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from delayprop import Spikes
from delayprop.data import ChannelShift, EventDataset, from_tonic, spike_loader
from delayprop.data.loader import EventTorchDataset, collate_spikes


def small_dataset(seed: int = 0, n: int = 37) -> EventDataset:
    rng = np.random.default_rng(seed)
    counts = rng.poisson(12, n)
    counts[3] = 0
    times = [rng.uniform(0, 50, c) for c in counts]
    units = [rng.integers(0, 20, c) for c in counts]
    return EventDataset.from_ragged(times, units, rng.integers(0, 4, n), 20, 4, 50.0, "small")


def _sample_events(ds: EventDataset, n: int) -> list[tuple[float, int]]:
    lo, hi = ds.offsets[n], ds.offsets[n + 1]
    return sorted(zip(ds.times[lo:hi].tolist(), ds.units[lo:hi].tolist()))


def _spike_events(spikes: Spikes, b: int) -> list[tuple[float, int]]:
    t, u = spikes.sample(b)
    return sorted(zip(t.tolist(), u.tolist()))


@pytest.mark.parametrize("shuffle", [False, True])
def test_every_sample_arrives_once_with_its_events(shuffle):
    ds = small_dataset()
    loader = spike_loader(ds, batch_size=8, shuffle=shuffle, seed=3)
    remaining = {n: _sample_events(ds, n) for n in range(len(ds))}
    sizes = []
    for spikes, labels in loader:
        assert isinstance(spikes, Spikes) and spikes.times.dtype == torch.float32
        assert labels.dtype == torch.int64 and spikes.n_units == 20 and spikes.duration == 50.0
        spikes.validate()
        sizes.append(len(labels))
        for b in range(len(labels)):
            events = _spike_events(spikes, b)
            match = [n for n, e in remaining.items() if e == events and ds.labels[n] == labels[b]]
            assert match, "a batch sample matches no remaining data-set sample"
            del remaining[match[0]]
    assert not remaining and sizes == [8, 8, 8, 8, 5]


def test_order_repeats_with_the_seed_and_drop_last():
    ds = small_dataset()
    first = [lab.tolist() for _, lab in spike_loader(ds, 8, shuffle=True, seed=5, drop_last=True)]
    again = [lab.tolist() for _, lab in spike_loader(ds, 8, shuffle=True, seed=5, drop_last=True)]
    assert first == again and len(first) == 4


def test_augmentation_runs_per_batch_and_float64_option():
    ds = small_dataset()
    loader = spike_loader(ds, 37, transform=ChannelShift(100), seed=1, dtype=torch.float64)
    spikes, labels = next(iter(loader))
    assert spikes.times.dtype == torch.float64
    assert spikes.n_spikes < ds.n_events  # shifts of up to 100 channels drop spikes
    assert torch.all((spikes.units >= 0) & (spikes.units < 20))


def test_worker_processes_deliver_the_same_events():
    ds = small_dataset()
    serial = list(spike_loader(ds, 10))
    parallel = list(spike_loader(ds, 10, num_workers=2))
    for (s1, l1), (s2, l2) in zip(serial, parallel):
        assert torch.equal(l1, l2) and torch.equal(s1.times, s2.times)
        assert torch.equal(s1.units, s2.units) and torch.equal(s1.offsets, s2.offsets)


def test_getitem_and_collate_errors():
    ds = small_dataset()
    view = EventTorchDataset(ds)
    one = view[5]
    assert one.batch_size == 1 and _sample_events(ds, 5) == sorted(
        zip(one.times.tolist(), one.units.tolist())
    )
    with pytest.raises(TypeError, match="expects the EventBatch"):
        collate_spikes([one, one])
    with pytest.raises(ValueError, match="batch_size must be positive"):
        spike_loader(ds, 0)


# ---------------------------------------------------------------------- tonic adapter
TONIC_DTYPE = np.dtype([("t", np.int64), ("x", np.int64), ("p", np.int64)])
TONIC_2D = np.dtype([("x", np.int16), ("y", np.int16), ("t", np.int64), ("p", bool)])


def _tonic_samples(seed: int = 0, n: int = 6):
    rng = np.random.default_rng(seed)
    out = []
    for k in range(n):
        c = 0 if k == 2 else int(rng.integers(1, 30))
        ev = np.zeros(c, TONIC_DTYPE)
        ev["t"] = np.sort(rng.integers(0, 900_000, c))  # microseconds
        ev["x"] = rng.integers(0, 700, c)
        ev["p"] = 1
        out.append((ev, k % 3))
    out[0][0]["x"][-1] = 699
    return out


def test_tonic_audio_events_map_to_channels_and_ms():
    samples = _tonic_samples()
    ds = from_tonic(samples, sensor_size=(700, 1, 1), n_classes=3, name="shd-tonic")
    assert (ds.n_channels, ds.n_classes, len(ds)) == (700, 3, 6)
    assert ds.duration == np.floor(max(ev["t"].max() for ev, _ in samples if len(ev)) / 1000) + 1
    for n, (ev, label) in enumerate(samples):
        expected = sorted(zip((ev["t"] * 1e-3).astype(np.float32).tolist(), ev["x"].tolist()))
        assert _sample_events(ds, n) == expected and ds.labels[n] == label


def test_tonic_two_dimensional_sensor_with_split_polarity():
    ev = np.zeros(4, TONIC_2D)
    ev["x"], ev["y"], ev["p"], ev["t"] = [0, 3, 1, 3], [0, 0, 2, 2], [0, 1, 1, 0], [5, 6, 7, 8]
    merged = from_tonic([(ev, 1)], sensor_size=(4, 3, 2), n_classes=2, time_scale=1.0)
    assert merged.n_channels == 12 and merged.units.tolist() == [0, 3, 9, 11]
    split = from_tonic([(ev, 1)], sensor_size=(4, 3, 2), n_classes=2, time_scale=1.0,
                       polarity="split", duration=10.0)  # fmt: skip
    assert split.n_channels == 24 and split.units.tolist() == [0, 15, 21, 11]
    assert split.duration == 10.0


@pytest.mark.parametrize(
    "events, kwargs, message",
    [
        (np.zeros(2, [("t", int), ("y", int)]), {}, r"sample 0: structured events need fields"),
        (np.array([(1, 800, 1)], TONIC_DTYPE), {}, "outside the sensor 700 x 1"),
        (np.array([(1, 5, 3)], TONIC_DTYPE), dict(polarity="split"), r"polarity outside \[0, 1\)"),
        (np.array([(1, 5, 0)], TONIC_DTYPE), dict(polarity="both"), "'merge' or 'split'"),
        (np.array([(-4, 5, 0)], TONIC_DTYPE), {}, "negative or not finite"),
        (np.array([(5000, 5, 0)], TONIC_DTYPE), dict(duration=2.0), "beyond the duration"),
    ],
)
def test_tonic_bad_events_are_named(events, kwargs, message):
    with pytest.raises(ValueError, match=message):
        from_tonic([(events, 0)], sensor_size=(700, 1, 1), n_classes=2, **kwargs)
