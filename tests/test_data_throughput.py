"""Loading throughput on an SHD-sized synthetic file: 8156 samples of ~5000 spikes (40.8 M).

Run with ``--runslow -s`` to see the timings: conversion of the HDF5 file into an
``EventDataset`` (cold cache), loading from the cache, batching every sample into ``Spikes``
(batch 256, shuffled), and, on the first 4 batches, ``EventBatch.to_spikes`` (order check, no
sort) against sorting the same events with ``Spikes.from_arrays`` (the baseline).
"""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from delayprop import Spikes
from delayprop.data import spike_loader
from delayprop.data.fixtures import random_heidelberg, write_heidelberg_h5
from delayprop.data.shd import SHD, load_heidelberg_file


@pytest.mark.slow
def test_shd_sized_file_converts_and_batches_in_seconds(tmp_path):
    trains = random_heidelberg(8156, 20, seed=0, mean_spikes=5000, max_time=1.3, n_speakers=10)
    path = write_heidelberg_h5(tmp_path / "shd_train.h5", trains)
    n_spikes = sum(map(len, trains.times))
    del trains

    t0 = time.perf_counter()
    ds = load_heidelberg_file(path, SHD, verify=False)
    t1 = time.perf_counter()
    cached = load_heidelberg_file(path, SHD, verify=False)
    t2 = time.perf_counter()
    seen = spikes_seen = 0
    for spikes, labels in spike_loader(cached, 256, shuffle=True, seed=0):
        seen += len(labels)
        spikes_seen += spikes.n_spikes
    t3 = time.perf_counter()
    order = np.random.default_rng(1).permutation(len(cached))
    batches = [cached.batch(order[i : i + 256]) for i in range(0, 4 * 256, 256)]
    t4 = time.perf_counter()
    fast = [b.to_spikes() for b in batches]
    t5 = time.perf_counter()
    slow = [Spikes.from_arrays(torch.from_numpy(b.times), torch.from_numpy(b.units),
                               torch.from_numpy(b.samples), b.batch_size, b.n_channels,
                               b.duration) for b in batches]  # fmt: skip
    t6 = time.perf_counter()

    print(f"\n{n_spikes} spikes: convert {t1 - t0:.2f} s, cache hit {t2 - t1:.2f} s, "
          f"batch all {t3 - t2:.2f} s; 4 batches: to_spikes {t5 - t4:.3f} s, "
          f"from_arrays {t6 - t5:.2f} s ({(t6 - t5) / (t5 - t4):.0f}x)")  # fmt: skip
    for a, b in zip(fast, slow):
        assert torch.equal(a.times, b.times) and torch.equal(a.units, b.units)
    assert ds.n_events == cached.n_events == spikes_seen == n_spikes and seen == 8156
    assert t1 - t0 < 60 and t2 - t1 < 20 and t3 - t2 < 60
