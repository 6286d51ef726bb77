"""``EventDataset``: a whole labelled data set of spike trains in one flat event list.

All samples live in three flat arrays (times ms, channels, per-sample offsets) plus labels, so a
mini-batch is gathered with a few vectorised numpy operations (no Python loop per spike or per
sample) and handed to the network as ``Spikes``.  Loaders of every data set produce this type.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from ..spikes import Spikes
from .ordering import canonical_permutation, in_canonical_order

__all__ = [
    "EventDataset",
    "EventBatch",
    "gather_positions",
    "sort_within_samples",
    "duration_after",
]


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


def _index_array(what: str, values, dtype) -> np.ndarray:
    """``values`` as a contiguous array of the integer ``dtype``: integral floats are
    accepted, fractions (1.7) and values outside ``dtype`` (2**32 + 1 for int32) are an error,
    never truncated or wrapped."""
    a = np.asarray(values)
    if a.size and a.dtype.kind == "f":
        if not (np.isfinite(a).all() and np.all(a == np.round(a))):
            bad = a[~(np.isfinite(a) & (a == np.round(a)))].flat[0]
            raise ValueError(f"{what} must be integers, got {bad}")
    elif a.size and a.dtype.kind not in "iu":
        raise ValueError(f"{what} must be integers, got dtype {a.dtype}")
    info = np.iinfo(dtype)
    if a.size and (a.min() < info.min or a.max() > info.max):
        raise ValueError(f"{what} out of range of {np.dtype(dtype).name}: min {a.min()}, "
                         f"max {a.max()}")  # fmt: skip
    return np.ascontiguousarray(a, dtype=dtype)


def duration_after(latest: float) -> float:
    """The first whole ms strictly after a spike at ``latest`` ms once stored as float32."""
    return math.floor(float(np.float32(latest))) + 1.0


def sort_within_samples(
    times: np.ndarray, units: np.ndarray, offsets: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """``times`` (float32) and ``units`` (int32) of every sample put into canonical order: by
    time, equal times by unit (the order of ``Spikes``).  Returns them unchanged when already
    in that order."""
    times = np.ascontiguousarray(times, np.float32)
    units = np.ascontiguousarray(units, np.int32)
    if in_canonical_order(times, units, offsets):
        return times, units
    order = canonical_permutation(times, units, offsets)
    return times[order], units[order]


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
        """The batch as ``Spikes``.  Valid events already in ``Spikes`` order (a gathered batch
        of a data set, also after order-preserving augmentations) skip the sort; anything else
        goes through ``Spikes.from_arrays``, which sorts and names what is invalid."""
        offsets = self._spike_order_offsets()
        if offsets is not None:
            return Spikes(
                torch.from_numpy(np.asarray(self.times)).to(dtype),
                torch.from_numpy(np.asarray(self.units, np.int32)),
                torch.from_numpy(offsets), int(self.n_channels), float(self.duration),
                torch.from_numpy(np.asarray(self.samples, np.int32)),
            ).to(device)  # fmt: skip
        return Spikes.from_arrays(
            torch.from_numpy(np.ascontiguousarray(self.times)),
            torch.from_numpy(np.ascontiguousarray(self.units)),
            torch.from_numpy(np.ascontiguousarray(self.samples)),
            self.batch_size,
            self.n_channels,
            self.duration,
            dtype=dtype,
        ).to(device)

    def _spike_order_offsets(self) -> np.ndarray | None:
        """Per-sample offsets if every event is valid and already in ``Spikes`` order, else
        ``None`` (vectorised checks, no sort)."""
        t, u, s = np.asarray(self.times), np.asarray(self.units), np.asarray(self.samples)
        if not (self.n_channels > 0 and 0 < self.duration < np.inf):
            return None
        if len(t) and not (
            np.isfinite(t).all() and t.min() >= 0 and u.min() >= 0 and u.max() < self.n_channels
            and s[0] >= 0 and s[-1] < self.batch_size and np.all(np.diff(s) >= 0)
        ):  # fmt: skip
            return None
        offsets = np.zeros(self.batch_size + 1, np.int64)
        np.cumsum(np.bincount(s, minlength=self.batch_size), out=offsets[1:])
        return offsets if in_canonical_order(t, u, offsets) else None


@dataclass
class EventDataset:
    """Labelled spike trains: sample n owns events ``offsets[n]:offsets[n+1]``.

    Attributes:
        times: float32 [n_events], ms, sorted within each sample (equal times by channel).
        units: int32 [n_events], channel index in [0, n_channels).
        offsets: int64 [n_samples + 1].
        labels: int64 [n_samples] in [0, n_classes).
        n_channels, n_classes: sizes.  duration: trial length, ms.
        name: data set name.  meta: per-sample metadata arrays (e.g. ``speaker``).
        class_names: optional name of each class (empty, or ``n_classes`` strings).
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
    class_names: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        self.times = np.ascontiguousarray(self.times, dtype=np.float32)
        self.units = _index_array("channel indices", self.units, np.int32)
        self.offsets = _index_array("offsets", self.offsets, np.int64)
        self.labels = _index_array("labels", self.labels, np.int64)
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
            if self.times.max() >= self.duration:
                raise ValueError(
                    f"{where}an event at {self.times.max()} ms lies beyond the duration "
                    f"{self.duration} ms (event times must be < duration)"
                )
            if self.units.min() < 0 or self.units.max() >= self.n_channels:
                raise ValueError(f"{where}channel index outside [0, {self.n_channels})")
        if n and (self.labels.min() < 0 or self.labels.max() >= self.n_classes):
            raise ValueError(f"{where}labels outside [0, {self.n_classes})")
        if not self.duration > 0:
            raise ValueError(f"{where}duration must be > 0 ms")
        if self.class_names and len(self.class_names) != self.n_classes:
            raise ValueError(
                f"{where}{len(self.class_names)} class names for {self.n_classes} classes"
            )
        for key, arr in self.meta.items():
            if len(arr) != n:
                raise ValueError(f"{where}meta[{key!r}] has {len(arr)} entries for {n} samples")

    def __len__(self) -> int:
        return len(self.labels)

    def counts(self) -> np.ndarray:
        """Events per sample, int64 [n_samples]."""
        return np.diff(self.offsets)

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
            {k: v[idx] for k, v in self.meta.items()}, self.class_names,
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

    @classmethod
    def from_ragged(
        cls,
        times: Sequence[np.ndarray],
        units: Sequence[np.ndarray],
        labels: np.ndarray,
        n_channels: int,
        n_classes: int,
        duration: float | None,
        name: str = "",
        meta: dict[str, np.ndarray] | None = None,
        class_names: Sequence[str] = (),
        *,
        time_scale: float = 1.0,
    ) -> EventDataset:
        """One ``(times, units)`` array pair per sample (any float / integer dtypes, e.g. the
        float16 seconds of the Heidelberg files); ``times * time_scale`` are ms.  Times are cast
        to float64 before scaling; each sample is sorted by time.  ``duration=None``: just past
        the latest spike (``duration_after``)."""
        if len(times) != len(units) or len(times) != len(labels):
            raise ValueError(
                f"{len(times)} time arrays, {len(units)} unit arrays, {len(labels)} labels"
            )
        lengths = np.fromiter(map(len, times), np.int64, len(times))
        unit_lengths = np.fromiter(map(len, units), np.int64, len(units))
        if not np.array_equal(lengths, unit_lengths):
            bad = int(np.flatnonzero(lengths != unit_lengths)[0])
            raise ValueError(
                f"sample {bad}: {lengths[bad]} spike times but {unit_lengths[bad]} unit ids"
            )
        offsets = np.zeros(len(lengths) + 1, np.int64)
        np.cumsum(lengths, out=offsets[1:])
        t = np.concatenate(times) if len(times) else np.zeros(0)
        u = np.concatenate(units) if len(units) else np.zeros(0, np.int64)
        t = np.multiply(t, time_scale, dtype=np.float64)  # cast first: float16 cannot hold ms
        if len(t) and not (np.isfinite(t).all() and t.min() >= 0):
            i = int(np.flatnonzero(~(np.isfinite(t) & (t >= 0)))[0])
            sample = int(np.searchsorted(offsets, i, side="right")) - 1
            raise ValueError(f"sample {sample}: spike time {t[i]} ms is negative or not finite")
        if len(u) and not np.issubdtype(u.dtype, np.integer):
            raise ValueError(f"unit ids must be integers, got dtype {u.dtype}")
        if len(u) and (u.min() < 0 or u.max() >= n_channels):
            raise ValueError(f"unit id outside [0, {n_channels}): min {u.min()}, max {u.max()}")
        t, u = sort_within_samples(t.astype(np.float32), u.astype(np.int32), offsets)
        if duration is None:
            duration = duration_after(t.max() if len(t) else 0.0)
        return cls(
            t, u, offsets, labels, n_channels, n_classes, duration, name, dict(meta or {}),
            tuple(class_names),
        )  # fmt: skip

    @classmethod
    def concatenate(cls, datasets: Sequence[EventDataset], name: str | None = None) -> EventDataset:
        """The samples of all ``datasets`` in order (same channels, classes, duration and meta
        keys)."""
        if not datasets:
            raise ValueError("nothing to concatenate")
        first = datasets[0]
        for ds in datasets[1:]:
            if (ds.n_channels, ds.n_classes, ds.duration) != (
                first.n_channels, first.n_classes, first.duration
            ):  # fmt: skip
                raise ValueError(
                    f"cannot concatenate {ds!r} with {first!r}: channels, classes or duration"
                    " differ"
                )
            if set(ds.meta) != set(first.meta):
                raise ValueError(f"meta keys differ: {sorted(ds.meta)} vs {sorted(first.meta)}")
        counts = np.concatenate([ds.counts() for ds in datasets])
        offsets = np.zeros(len(counts) + 1, np.int64)
        np.cumsum(counts, out=offsets[1:])
        return cls(
            np.concatenate([ds.times for ds in datasets]),
            np.concatenate([ds.units for ds in datasets]),
            offsets,
            np.concatenate([ds.labels for ds in datasets]),
            first.n_channels,
            first.n_classes,
            first.duration,
            first.name if name is None else name,
            {k: np.concatenate([ds.meta[k] for ds in datasets]) for k in first.meta},
            first.class_names,
        )
