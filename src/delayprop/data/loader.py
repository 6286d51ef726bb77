"""torch ``DataLoader`` over an ``EventDataset`` that yields ``(Spikes, labels)`` batches.

The loader's batch sampler hands a whole list of indices to ``EventTorchDataset.__getitems__``,
which gathers all their events with one vectorised ``EventDataset.batch`` call (no Python loop per
sample or per spike), applies the batch augmentation, and ``collate_spikes`` turns the result
into a sorted ``Spikes`` batch and an int64 label tensor::

    loader = spike_loader(train, batch_size=256, shuffle=True, seed=1,
                          transform=ChannelShift(40))
    for spikes, labels in loader:
        ...

Randomness: the sample order comes from a torch generator seeded with ``seed``; augmentations draw
from a numpy generator seeded with ``seed`` in the main process, or with torch's per-worker seed
inside worker processes (which torch derives from the loader's generator), so runs repeat exactly.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, get_worker_info

from ..spikes import Spikes
from .base import EventBatch, EventDataset

__all__ = ["EventTorchDataset", "collate_spikes", "spike_loader"]

BatchTransform = Callable[[EventBatch, np.random.Generator], EventBatch]


class EventTorchDataset(Dataset):
    """Map-style torch view of an ``EventDataset``; items are ``EventBatch`` objects."""

    def __init__(
        self,
        dataset: EventDataset,
        transform: BatchTransform | None = None,
        seed: int | None = None,
    ) -> None:
        self.dataset = dataset
        self.transform = transform
        self._rng = np.random.default_rng(seed)
        self._worker_seed: int | None = None

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> EventBatch:
        return self.__getitems__([index])

    def __getitems__(self, indices: Sequence[int]) -> EventBatch:
        batch = self.dataset.batch(np.asarray(indices, dtype=np.int64))
        if self.transform is not None:
            batch = self.transform(batch, self._generator())
        return batch

    def _generator(self) -> np.random.Generator:
        info = get_worker_info()
        if info is not None and info.seed != self._worker_seed:
            self._worker_seed = info.seed
            self._rng = np.random.default_rng(info.seed)
        return self._rng


def collate_spikes(
    batch: EventBatch, *, dtype: torch.dtype = torch.float32
) -> tuple[Spikes, torch.Tensor]:
    """``(Spikes, labels int64 [batch])`` of a gathered batch."""
    if not isinstance(batch, EventBatch):
        raise TypeError(
            f"collate_spikes expects the EventBatch of EventTorchDataset.__getitems__, got "
            f"{type(batch).__name__}"
        )
    return batch.to_spikes(dtype=dtype), torch.from_numpy(np.asarray(batch.labels, np.int64))


def spike_loader(
    dataset: EventDataset,
    batch_size: int,
    *,
    shuffle: bool = False,
    seed: int | None = None,
    drop_last: bool = False,
    transform: BatchTransform | None = None,
    num_workers: int = 0,
    dtype: torch.dtype = torch.float32,
    **loader_options,
) -> DataLoader:
    """A ``DataLoader`` yielding ``(Spikes, labels)``; ``loader_options`` go to ``DataLoader``
    (e.g. ``persistent_workers``, ``pin_memory``)."""
    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    generator = torch.Generator().manual_seed(seed) if seed is not None else None
    return DataLoader(
        EventTorchDataset(dataset, transform, seed),
        batch_size=batch_size,
        shuffle=shuffle,
        drop_last=drop_last,
        collate_fn=partial(collate_spikes, dtype=dtype),
        num_workers=num_workers,
        generator=generator,
        **loader_options,
    )
