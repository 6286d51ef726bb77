"""``EventDataset``: a whole labelled data set of spike trains in one flat event list.

All samples live in three flat arrays (times ms, channels, per-sample offsets) plus labels, so a
mini-batch is gathered with a few vectorised numpy operations (no Python loop per spike or per
sample) and handed to the network as ``Spikes``.  Loaders of every data set produce this type.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import torch

from ..spikes import Spikes

__all__ = ["EventDataset", "EventBatch", "gather_positions"]


def gather_positions(offsets: np.ndarray, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Flat positions of the events of samples ``idx`` (in that order) and their counts."""
    starts = offsets[idx]
    counts = offsets[idx + 1] - starts
    total = int(counts.sum())
    if total == 0:
        return np.zeros(0, np.int64), counts
    ends = np.cumsum(counts)
    shift = np.repeat(starts - (ends - counts), counts)
    return np.arange(total, dtype=np.int64) + shift, counts


@dataclass
class EventBatch:
    """A mini-batch as numpy arrays; augmentations transform it before it becomes ``Spikes``.

    times float [n] ms, units int [n], samples int [n] (index in the batch), labels [batch].
    Events need not be sorted (``to_spikes`` sorts).
    """

    times: np.ndarray
    units: np.ndarray
    samples: np.ndarray
    labels: np.ndarray
    n_channels: int
    duration: float

    @property
    def batch_size(self) -> int:
        return len(self.labels)

    def to_spikes(self, device: torch.device | str = "cpu", dtype=torch.float32) -> Spikes:
        return Spikes.from_arrays(
            torch.from_numpy(np.ascontiguousarray(self.times)),
            torch.from_numpy(np.ascontiguousarray(self.units)),
            torch.from_numpy(np.ascontiguousarray(self.samples)),
            self.batch_size,
            self.n_channels,
            self.duration,
            dtype=dtype,
        ).to(device)


@dataclass
class EventDataset:
    """Labelled spike trains: sample n owns events ``offsets[n]:offsets[n+1]``.

    Attributes:
        times: float32 [n_events], ms, sorted within each sample.
        units: int32 [n_events], channel index in [0, n_channels).
        offsets: int64 [n_samples + 1].
        labels: int64 [n_samples] in [0, n_classes).
        n_channels, n_classes: sizes.  duration: trial length, ms.
        name: data set name.  meta: per-sample metadata arrays (e.g. ``speaker``).
    """

    times: np.ndarray
    units: np.ndarray
    offsets: np.ndarray
    labels: np.ndarray
    n_channels: int
    n_classes: int
    duration: float
    name: str = ""
    meta: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.times = np.ascontiguousarray(self.times, dtype=np.float32)
        self.units = np.ascontiguousarray(self.units, dtype=np.int32)
        self.offsets = np.ascontiguousarray(self.offsets, dtype=np.int64)
        self.labels = np.ascontiguousarray(self.labels, dtype=np.int64)
        self.validate()

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first broken invariant."""
        where = f"data set {self.name!r}: " if self.name else ""
        n = len(self.labels)
        if self.offsets.shape != (n + 1,) or self.offsets[0] != 0:
            raise ValueError(f"{where}offsets must be [n_samples + 1] starting at 0")
        if self.offsets[-1] != len(self.times) or len(self.times) != len(self.units):
            raise ValueError(f"{where}offsets, times and units disagree on the event count")
        if np.any(np.diff(self.offsets) < 0):
            raise ValueError(f"{where}offsets must be non-decreasing")
        if len(self.times):
            if not np.all(np.isfinite(self.times)):
                raise ValueError(f"{where}event times contain NaN or infinity")
            if self.times.min() < 0:
                raise ValueError(f"{where}event times must be >= 0 ms")
            if self.units.min() < 0 or self.units.max() >= self.n_channels:
                raise ValueError(f"{where}channel index outside [0, {self.n_channels})")
        if n and (self.labels.min() < 0 or self.labels.max() >= self.n_classes):
            raise ValueError(f"{where}labels outside [0, {self.n_classes})")
        if not self.duration > 0:
            raise ValueError(f"{where}duration must be > 0 ms")
        for key, arr in self.meta.items():
            if len(arr) != n:
                raise ValueError(f"{where}meta[{key!r}] has {len(arr)} entries for {n} samples")

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def n_events(self) -> int:
        return len(self.times)

    def __repr__(self) -> str:
        return (
            f"EventDataset({self.name!r}, samples={len(self)}, channels={self.n_channels}, "
            f"classes={self.n_classes}, events={self.n_events}, duration={self.duration} ms)"
        )

    def batch(self, idx: np.ndarray | list[int]) -> EventBatch:
        """The samples ``idx`` as a batch (vectorised gather)."""
        idx = np.asarray(idx, dtype=np.int64)
        pos, counts = gather_positions(self.offsets, idx)
        samples = np.repeat(np.arange(len(idx), dtype=np.int64), counts)
        return EventBatch(
            self.times[pos], self.units[pos], samples, self.labels[idx], self.n_channels,
            self.duration,
        )  # fmt: skip

    def subset(self, idx: np.ndarray | list[int], name: str | None = None) -> EventDataset:
        """A new data set of the samples ``idx`` (copies the events)."""
        idx = np.asarray(idx, dtype=np.int64)
        pos, counts = gather_positions(self.offsets, idx)
        offsets = np.zeros(len(idx) + 1, np.int64)
        np.cumsum(counts, out=offsets[1:])
        return EventDataset(
            self.times[pos], self.units[pos], offsets, self.labels[idx], self.n_channels,
            self.n_classes, self.duration, self.name if name is None else name,
            {k: v[idx] for k, v in self.meta.items()},
        )  # fmt: skip

    def batch_indices(
        self, batch_size: int, *, shuffle: bool, rng: np.random.Generator | None = None,
        drop_last: bool = False,
    ) -> Iterator[np.ndarray]:  # fmt: skip
        """Index arrays of consecutive mini-batches (a permutation when ``shuffle``)."""
        if batch_size <= 0:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        order = (rng or np.random.default_rng()).permutation(len(self)) if shuffle else None
        if order is None:
            order = np.arange(len(self))
        stop = len(order) - (len(order) % batch_size if drop_last else 0)
        for lo in range(0, stop, batch_size):
            yield order[lo : lo + batch_size]

    @classmethod
    def from_times_matrix(
        cls, times: np.ndarray, labels: np.ndarray, n_classes: int, duration: float, name: str
    ) -> EventDataset:
        """One spike per channel per sample: ``times`` [n_samples, n_channels] ms (NaN = no
        spike).  Used by latency-coded data (Yin-Yang, digits)."""
        n, c = times.shape
        keep = ~np.isnan(times)
        order = np.argsort(np.where(keep, times, np.inf), axis=1, kind="stable")
        t_sorted = np.take_along_axis(times, order, axis=1)
        k_sorted = np.take_along_axis(keep, order, axis=1)
        counts = k_sorted.sum(axis=1)
        offsets = np.zeros(n + 1, np.int64)
        np.cumsum(counts, out=offsets[1:])
        return cls(t_sorted[k_sorted], order[k_sorted], offsets, labels, c, n_classes, duration,
                   name)  # fmt: skip
