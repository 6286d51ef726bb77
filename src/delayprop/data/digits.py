"""Latency-coded handwritten digits: the 8x8 images shipped inside scikit-learn.

A small real data set that needs no download (1797 images of 10 classes, UCI "Optical
Recognition of Handwritten Digits", as bundled by ``sklearn.datasets.load_digits``), for
end-to-end tests on data that no one here generated.  Each of the 64 pixels (intensity v in
0..16) is one channel that spikes once at ``t_early + (1 - v / 16) (t_late - t_early)`` ms:
bright pixels spike early; blank pixels (v = 0) do not spike.  Splits: seeded class-stratified
70 / 10 / 20 train / validation / test (``splits.stratified_indices``).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from .._util import optional_import
from .base import EventDataset
from .splits import check_split, stratified_part

__all__ = ["digit_images", "digits_dataset", "load_digits"]

_MAX_INTENSITY = 16.0


def digit_images() -> tuple[np.ndarray, np.ndarray]:
    """``(pixels float64 [1797, 64] in 0..16, labels int64 [1797])`` from scikit-learn."""
    datasets = optional_import("sklearn.datasets", "data", "the digits data set")
    bunch = datasets.load_digits()
    return np.asarray(bunch.data, np.float64), np.asarray(bunch.target, np.int64)


def digits_dataset(
    pixels: np.ndarray,
    labels: np.ndarray,
    *,
    t_early: float = 0.0,
    t_late: float = 20.0,
    duration: float = 25.0,
    name: str = "digits",
) -> EventDataset:
    """Latency code of ``pixels`` [n, 64] (intensities in 0..16), see module docstring."""
    if not 0 <= t_early <= t_late < duration:
        raise ValueError(
            f"need 0 <= t_early <= t_late < duration, got {t_early}, {t_late}, {duration}"
        )
    if pixels.ndim != 2 or np.any((pixels < 0) | (pixels > _MAX_INTENSITY)):
        raise ValueError("pixels must be [n, channels] intensities in [0, 16]")
    intensity = pixels / _MAX_INTENSITY
    times = np.where(intensity > 0, t_early + (1.0 - intensity) * (t_late - t_early), np.nan)
    ds = EventDataset.from_times_matrix(times, labels, 10, duration, name)
    return replace(ds, class_names=tuple(str(k) for k in range(10)))


def load_digits(
    split: str = "train",
    *,
    t_early: float = 0.0,
    t_late: float = 20.0,
    duration: float = 25.0,
    seed: int = 0,
) -> EventDataset:
    """Split ``train`` / ``validation`` / ``test`` of the latency-coded digits."""
    check_split(split, "digits")
    pixels, labels = digit_images()
    idx = stratified_part(labels, split, seed, "digits")
    return digits_dataset(
        pixels[idx], labels[idx], t_early=t_early, t_late=t_late, duration=duration,
        name=f"digits-{split}",
    )  # fmt: skip
