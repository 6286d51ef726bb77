"""Seeded, documented splits of a data set into train / validation (/ test) parts.

* ``stratified_indices``: every class is divided in the given fractions (counts rounded per
  class), after a seeded permutation; used for Braille (70 / 10 / 20) and digits.
* ``speaker_split`` / ``speaker_fold``: speaker-aware validation for SHD, whose published test
  set holds two unseen speakers.  Fold k holds out the k-th speaker (in ascending id order) of the
  training file: the 10-fold leave-one-speaker-out protocol of Meszaros et al. 2025.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .base import EventDataset

__all__ = [
    "SPLITS",
    "SPLIT_FRACTIONS",
    "check_split",
    "stratified_indices",
    "stratified_part",
    "stratified_split",
    "validation_split",
    "speaker_split",
    "speaker_fold",
    "speakers",
]


def stratified_indices(
    labels: np.ndarray, fractions: Sequence[float], seed: int
) -> list[np.ndarray]:
    """Disjoint ascending index arrays, one per fraction, covering all samples; within every
    class the sizes are ``round(cumsum(fractions) * class_count)`` differences."""
    labels = np.asarray(labels)
    frac = np.asarray(fractions, dtype=np.float64)
    if frac.ndim != 1 or len(frac) == 0 or np.any(frac < 0) or abs(frac.sum() - 1) > 1e-9:
        raise ValueError(f"fractions must be >= 0 and sum to 1, got {list(fractions)}")
    perm = np.random.default_rng(seed).permutation(len(labels))
    order = perm[np.argsort(labels[perm], kind="stable")]
    cls = labels[order]
    counts = np.bincount(labels) if len(labels) else np.zeros(0, np.int64)
    starts = np.cumsum(counts) - counts
    rank = np.arange(len(order)) - starts[cls]
    bounds = np.round(np.cumsum(frac)[None, :] * counts[:, None]).astype(np.int64)
    part = (rank[:, None] >= bounds[cls][:, :-1]).sum(axis=1)
    return [np.sort(order[part == k]) for k in range(len(frac))]


#: The split names every loader accepts.
SPLITS = ("train", "validation", "test")

#: The seeded stratified split used where none is published (Braille, digits).
SPLIT_FRACTIONS = {"train": 0.7, "validation": 0.1, "test": 0.2}


def check_split(split: str, name: str) -> None:
    """Raise ``ValueError`` unless ``split`` is one of ``SPLITS``."""
    if split not in SPLITS:
        raise ValueError(f"unknown {name} split {split!r}; choose one of {', '.join(SPLITS)}")


def stratified_part(labels: np.ndarray, split: str, seed: int, name: str) -> np.ndarray:
    """Indices of part ``split`` of the ``SPLIT_FRACTIONS`` split of data set ``name``."""
    check_split(split, name)
    parts = stratified_indices(labels, list(SPLIT_FRACTIONS.values()), seed)
    return parts[list(SPLIT_FRACTIONS).index(split)]


def stratified_split(
    ds: EventDataset, fractions: Sequence[float], seed: int = 0
) -> tuple[EventDataset, ...]:
    """``ds`` divided by ``stratified_indices`` (one data set per fraction)."""
    return tuple(ds.subset(idx) for idx in stratified_indices(ds.labels, fractions, seed))


def validation_split(
    ds: EventDataset, fraction: float = 0.1, *, seed: int = 0
) -> tuple[EventDataset, EventDataset]:
    """``(train, validation)``: a seeded class-stratified ``fraction`` held out."""
    if not 0 < fraction < 1:
        raise ValueError(f"fraction must lie in (0, 1), got {fraction}")
    train, val = stratified_split(ds, (1 - fraction, fraction), seed)
    return train, val


def speakers(ds: EventDataset) -> np.ndarray:
    """The distinct speaker ids of ``ds`` in ascending order (needs ``meta['speaker']``)."""
    if "speaker" not in ds.meta:
        raise ValueError(f"{ds.name or 'data set'} has no speaker information (meta['speaker'])")
    return np.unique(ds.meta["speaker"])


def speaker_split(
    ds: EventDataset, held_out: int | Sequence[int]
) -> tuple[EventDataset, EventDataset]:
    """``(rest, held_out_part)``: the samples of the speakers ``held_out`` against the others."""
    held = np.atleast_1d(np.asarray(held_out))
    unknown = np.setdiff1d(held, speakers(ds))
    if len(unknown):
        raise ValueError(f"speakers {unknown.tolist()} do not occur in {ds.name or 'data set'}")
    mask = np.isin(ds.meta["speaker"], held)
    return ds.subset(np.flatnonzero(~mask)), ds.subset(np.flatnonzero(mask))


def speaker_fold(ds: EventDataset, fold: int) -> tuple[EventDataset, EventDataset]:
    """``(train, validation)`` of leave-one-speaker-out fold ``fold``: the validation part is
    the ``fold``-th speaker in ascending id order."""
    ids = speakers(ds)
    if not 0 <= fold < len(ids):
        raise ValueError(f"fold must lie in [0, {len(ids)}) ({len(ids)} speakers), got {fold}")
    return speaker_split(ds, int(ids[fold]))
