"""Loading throughput on an SHD-sized synthetic file: 8156 samples of ~5000 spikes (40.8 M).

Run with ``--runslow -s`` to see the timings: conversion of the HDF5 file into an
``EventDataset`` (cold cache), loading from the cache, and batching every sample into ``Spikes``
(batch 256, shuffled).
"""

from __future__ import annotations

import time

import pytest

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

    print(f"\n{n_spikes} spikes: convert {t1 - t0:.2f} s, cache hit {t2 - t1:.2f} s, "
          f"batch all {t3 - t2:.2f} s")  # fmt: skip
    assert ds.n_events == cached.n_events == spikes_seen == n_spikes and seen == 8156
    assert t1 - t0 < 60 and t2 - t1 < 20 and t3 - t2 < 60
