"""Vectorised preprocessing and augmentation of event data.

Preprocessing (whole data set, deterministic): ``bin_channels`` (e.g. SHD's 700 channels summed
into 140, as in Hammouamri et al. 2023) and ``crop_time``.

Augmentations are frozen dataclasses called with a seeded ``numpy.random.Generator``; each draws
its random numbers and hands them to a pure function that does the work, so the arithmetic is
testable on its own.  Batch augmentations map an ``EventBatch`` to an ``EventBatch``; events that
leave the valid range (channels ``[0, n_channels)``, times ``[0, duration)`` ms) are dropped:

* ``ChannelShift``: every sample shifted by one integer drawn from ``[-max_shift, max_shift]``
  (40 on SHD/SSC in Meszaros et al. 2025 and Nowotny et al. 2025).
* ``TimeJitter``: Gaussian noise of ``std`` ms on every spike time (or clipped into range).
* ``TimeDilation``: every sample's times scaled by one factor drawn from ``[low, high]``.

``Blend`` (Meszaros et al. 2025, Nowotny et al. 2025) makes new samples from same-class pairs of
an ``EventDataset``: the two samples are shifted towards each other so that their centres of mass
in channel (integer shift, truncated towards zero as in the authors' code) and in time meet
halfway, and each spike of both is kept with probability ``p``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from .base import EventBatch, EventDataset, gather_positions, sort_within_samples

__all__ = [
    "bin_channels",
    "crop_time",
    "shift_channels",
    "jitter_times",
    "dilate_times",
    "blend_pairs",
    "same_class_pairs",
    "ChannelShift",
    "TimeJitter",
    "TimeDilation",
    "Blend",
    "Compose",
    "AUGMENTATIONS",
    "make_augmentation",
]


# ---------------------------------------------------------------------- whole data sets
def bin_channels(ds: EventDataset, factor: int) -> EventDataset:
    """Merge every ``factor`` neighbouring channels into one: channel c -> c // factor
    (``ceil(n_channels / factor)`` channels; spikes keep their times, none is dropped)."""
    if not (isinstance(factor, (int, np.integer)) and factor >= 1):
        raise ValueError(f"binning factor must be an integer >= 1, got {factor!r}")
    if factor == 1:
        return ds
    return replace(ds, units=ds.units // factor, n_channels=-(-ds.n_channels // factor))


def crop_time(ds: EventDataset, t_max: float) -> EventDataset:
    """Drop spikes at ``t >= t_max`` ms; the duration becomes ``t_max``."""
    if not (t_max > 0 and np.isfinite(t_max)):
        raise ValueError(f"crop must be a positive number of ms, got {t_max!r}")
    keep = ds.times < t_max
    kept_before = np.zeros(len(keep) + 1, np.int64)
    np.cumsum(keep, out=kept_before[1:])
    return replace(
        ds, times=ds.times[keep], units=ds.units[keep], offsets=kept_before[ds.offsets],
        duration=float(t_max),
    )  # fmt: skip


# ---------------------------------------------------------------------- batches: pure functions
def _filtered(batch: EventBatch, keep: np.ndarray, times: np.ndarray, units: np.ndarray):
    return EventBatch(
        times[keep], units[keep], batch.samples[keep], batch.labels, batch.n_channels,
        batch.duration,
    )  # fmt: skip


def _per_sample(values: np.ndarray, batch: EventBatch, what: str) -> np.ndarray:
    values = np.asarray(values)
    if values.shape != (batch.batch_size,):
        raise ValueError(f"need one {what} per sample ({batch.batch_size}), got {values.shape}")
    return values[batch.samples]


def shift_channels(batch: EventBatch, shifts: np.ndarray) -> EventBatch:
    """Add the integer ``shifts[b]`` to the channels of sample b; drop spikes outside
    ``[0, n_channels)``."""
    units = batch.units + _per_sample(shifts, batch, "shift").astype(batch.units.dtype)
    return _filtered(batch, (units >= 0) & (units < batch.n_channels), batch.times, units)


def _in_time(times: np.ndarray, duration: float) -> np.ndarray:
    return (times >= 0) & (times < duration)


def jitter_times(batch: EventBatch, noise: np.ndarray, clip: bool = False) -> EventBatch:
    """Add ``noise`` (ms, one value per spike) to the spike times; spikes leaving
    ``[0, duration)`` are dropped, or clipped into it when ``clip``."""
    noise = np.asarray(noise)
    if noise.shape != batch.times.shape:
        raise ValueError(f"need one noise value per spike {batch.times.shape}, got {noise.shape}")
    times = (batch.times + noise).astype(batch.times.dtype)
    if clip:
        last = np.nextafter(np.asarray(batch.duration, times.dtype), times.dtype.type(0))
        times = np.clip(times, 0, last)
    return _filtered(batch, _in_time(times, batch.duration), times, batch.units)


def dilate_times(batch: EventBatch, factors: np.ndarray) -> EventBatch:
    """Multiply the spike times of sample b by ``factors[b] > 0``; drop spikes at or after
    ``duration``."""
    factors = _per_sample(factors, batch, "factor")
    if np.any(factors <= 0):
        raise ValueError("dilation factors must be > 0")
    times = (batch.times * factors).astype(batch.times.dtype)
    return _filtered(batch, _in_time(times, batch.duration), times, batch.units)


# ---------------------------------------------------------------------- batches: augmentations
@dataclass(frozen=True)
class ChannelShift:
    """Shift each sample's channels by a random integer in ``[-max_shift, max_shift]``."""

    max_shift: int = 40

    def __post_init__(self) -> None:
        if self.max_shift < 0:
            raise ValueError(f"max_shift must be >= 0, got {self.max_shift}")

    def __call__(self, batch: EventBatch, rng: np.random.Generator) -> EventBatch:
        shifts = rng.integers(-self.max_shift, self.max_shift, batch.batch_size, endpoint=True)
        return shift_channels(batch, shifts)


@dataclass(frozen=True)
class TimeJitter:
    """Add Gaussian noise of standard deviation ``std`` ms to every spike time."""

    std: float = 1.0
    clip: bool = False

    def __post_init__(self) -> None:
        if not self.std >= 0:
            raise ValueError(f"std must be >= 0 ms, got {self.std}")

    def __call__(self, batch: EventBatch, rng: np.random.Generator) -> EventBatch:
        return jitter_times(batch, rng.normal(0.0, self.std, len(batch.times)), self.clip)


@dataclass(frozen=True)
class TimeDilation:
    """Scale each sample's spike times by a factor drawn uniformly from ``[low, high]``."""

    low: float = 0.9
    high: float = 1.1

    def __post_init__(self) -> None:
        if not 0 < self.low <= self.high:
            raise ValueError(f"need 0 < low <= high, got {self.low}, {self.high}")

    def __call__(self, batch: EventBatch, rng: np.random.Generator) -> EventBatch:
        return dilate_times(batch, rng.uniform(self.low, self.high, batch.batch_size))


@dataclass(frozen=True)
class Compose:
    """Apply batch augmentations in order, sharing one generator."""

    transforms: Sequence

    def __call__(self, batch: EventBatch, rng: np.random.Generator) -> EventBatch:
        for transform in self.transforms:
            batch = transform(batch, rng)
        return batch


# ---------------------------------------------------------------------- blending
def same_class_pairs(
    labels: np.ndarray, n: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` index pairs: the first uniform over all samples, the second uniform over the
    samples of the first one's class (it may be the same sample, as in the authors' code)."""
    labels = np.asarray(labels)
    if len(labels) == 0:
        raise ValueError("cannot draw pairs from an empty data set")
    first = rng.integers(0, len(labels), n)
    order = np.argsort(labels, kind="stable")
    counts = np.bincount(labels)
    starts = np.cumsum(counts) - counts
    cls = labels[first]
    second = order[starts[cls] + (rng.random(n) * counts[cls]).astype(np.int64)]
    return first, second


def _centres(ds: EventDataset) -> tuple[np.ndarray, np.ndarray]:
    """Mean channel and mean time (ms) of every sample (0 for empty samples)."""
    counts = ds.counts()
    samples = np.repeat(np.arange(len(ds)), counts)
    denom = np.maximum(counts, 1)
    mean_unit = np.bincount(samples, ds.units.astype(np.float64), len(ds)) / denom
    mean_time = np.bincount(samples, ds.times.astype(np.float64), len(ds)) / denom
    return mean_unit, mean_time


def blend_pairs(
    ds: EventDataset, first: np.ndarray, second: np.ndarray, p: float, rng: np.random.Generator
) -> EventDataset:
    """One new sample per pair ``(first[k], second[k])`` (same class required), labelled with
    that class: both samples are moved so that their centres of mass meet halfway (channel
    shift ``trunc((c2 - c1) / 2)`` and time shift ``(t2 - t1) / 2`` for the first, the
    negatives for the second), spikes leaving the valid range are dropped, and every remaining
    spike is kept with probability ``p``.  Metadata (e.g. speakers) is not carried over."""
    first, second = np.asarray(first, np.int64), np.asarray(second, np.int64)
    if first.shape != second.shape or first.ndim != 1:
        raise ValueError("first and second must be 1-D index arrays of equal length")
    if np.any(ds.labels[first] != ds.labels[second]):
        raise ValueError("blended pairs must share their class")
    if not 0 <= p <= 1:
        raise ValueError(f"keep probability p must lie in [0, 1], got {p}")
    mean_unit, mean_time = _centres(ds)
    d_unit = np.trunc((mean_unit[second] - mean_unit[first]) / 2).astype(np.int64)
    d_time = (mean_time[second] - mean_time[first]) / 2
    pos_a, cnt_a = gather_positions(ds.offsets, first)
    pos_b, cnt_b = gather_positions(ds.offsets, second)
    new = np.arange(len(first), dtype=np.int64)
    samples = np.concatenate([np.repeat(new, cnt_a), np.repeat(new, cnt_b)])
    sign = np.concatenate([np.ones(len(pos_a)), -np.ones(len(pos_b))])
    units = ds.units[np.concatenate([pos_a, pos_b])] + (sign * d_unit[samples]).astype(np.int64)
    times = (ds.times[np.concatenate([pos_a, pos_b])] + sign * d_time[samples]).astype(np.float32)
    keep = (units >= 0) & (units < ds.n_channels) & _in_time(times, ds.duration)
    keep &= rng.random(len(keep)) < p
    by_sample = np.flatnonzero(keep)[np.argsort(samples[keep], kind="stable")]
    offsets = np.zeros(len(first) + 1, np.int64)
    np.cumsum(np.bincount(samples[keep], minlength=len(first)), out=offsets[1:])
    times, units = sort_within_samples(times[by_sample], units[by_sample], offsets)
    return EventDataset(
        times, units, offsets, ds.labels[first], ds.n_channels, ds.n_classes, ds.duration,
        f"{ds.name}-blend", {}, ds.class_names,
    )  # fmt: skip


@dataclass(frozen=True)
class Blend:
    """Make ``n`` blended samples from random same-class pairs (see ``blend_pairs``); [M] adds
    7644 of them to SHD's training set each epoch."""

    p: float = 0.5

    def __post_init__(self) -> None:
        if not 0 <= self.p <= 1:
            raise ValueError(f"keep probability p must lie in [0, 1], got {self.p}")

    def __call__(self, ds: EventDataset, n: int, rng: np.random.Generator) -> EventDataset:
        first, second = same_class_pairs(ds.labels, n, rng)
        return blend_pairs(ds, first, second, self.p, rng)


#: Augmentations by the ``kind`` that configuration files use.
AUGMENTATIONS = {
    "shift": ChannelShift,
    "jitter": TimeJitter,
    "dilation": TimeDilation,
    "blend": Blend,
}


def make_augmentation(spec: Mapping[str, Any]):
    """The augmentation of a configuration entry such as ``{"kind": "shift", "max_shift": 40}``."""
    options = dict(spec)
    kind = options.pop("kind", None)
    if kind not in AUGMENTATIONS:
        raise ValueError(f"unknown augmentation kind {kind!r}; choose one of {list(AUGMENTATIONS)}")
    try:
        return AUGMENTATIONS[kind](**options)
    except TypeError as err:
        raise ValueError(f"bad options for augmentation {kind!r}: {err}") from None
