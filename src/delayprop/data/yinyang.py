"""The Yin-Yang data set (Kriener, Goltz & Petrovici 2021), generated locally.

Points (x, y) are drawn uniformly in the square [0, 2 r_big]^2 and kept if they lie in the big
circle and belong to a class drawn beforehand (rejection sampling keeps the classes balanced).
Classes: 0 yin, 1 yang, 2 dot.  Each sample has the four features (x, y, 1 - x, 1 - y).

The draws follow the reference implementation (public repository lkriener/yin_yang_data_set):
numpy's legacy ``RandomState(seed)``; per sample one ``randint(3)`` for the goal class, then pairs
``rand(2)`` until a point of that class is found.  Seeds 42 / 41 / 40 with sizes 5000 / 1000 / 1000
give the published train / validation / test arrays bit for bit (checked in the tests).

For spiking networks every feature f in [0, 1] becomes one spike at ``t_early + f (t_late -
t_early)`` ms; an optional bias channel spikes at ``bias_time``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["yinyang_points", "yinyang_dataset", "YinYangEncoding", "SPLITS", "CLASS_NAMES"]

CLASS_NAMES = ("yin", "yang", "dot")

#: (size, seed) of the published splits
SPLITS = {"train": (5000, 42), "validation": (1000, 41), "test": (1000, 40)}


def _which_class(x: float, y: float, r_small: float, r_big: float) -> int:
    d_right = math.sqrt((x - 1.5 * r_big) ** 2 + (y - r_big) ** 2)
    d_left = math.sqrt((x - 0.5 * r_big) ** 2 + (y - r_big) ** 2)
    if d_right < r_small or d_left < r_small:
        return 2
    is_yin = (
        d_right <= r_small
        or (r_small < d_left <= 0.5 * r_big)
        or (y > r_big and d_right > 0.5 * r_big)
    )
    return int(is_yin)


def yinyang_points(
    size: int, seed: int, r_small: float = 0.1, r_big: float = 0.5
) -> tuple[np.ndarray, np.ndarray]:
    """Generate ``size`` samples: features float64 [size, 4] = (x, y, 1-x, 1-y), labels int64."""
    if size < 0:
        raise ValueError(f"size must be >= 0, got {size}")
    if not 0 < r_small < r_big:
        raise ValueError(f"need 0 < r_small < r_big, got {r_small}, {r_big}")
    rng = np.random.RandomState(seed)
    features = np.empty((size, 4), dtype=np.float64)
    labels = np.empty(size, dtype=np.int64)
    for n in range(size):
        goal = rng.randint(3)
        while True:
            x, y = rng.rand(2) * 2.0 * r_big
            if math.sqrt((x - r_big) ** 2 + (y - r_big) ** 2) > r_big:
                continue
            if _which_class(x, y, r_small, r_big) == goal:
                break
        features[n] = (x, y, 1.0 - x, 1.0 - y)
        labels[n] = goal
    return features, labels


@dataclass(frozen=True)
class YinYangEncoding:
    """Latency code of the four features (ms).

    Defaults follow Meszaros et al. 2025 (t in [1.5, 20] ms, no bias).  DelGrad (Goltz et al.)
    uses [0.15, 2] tau_syn with a bias spike: ``YinYangEncoding.delgrad(tau_syn)``.
    """

    t_early: float = 1.5
    t_late: float = 20.0
    bias_time: float | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.t_early <= self.t_late:
            raise ValueError(f"need 0 <= t_early <= t_late, got {self.t_early}, {self.t_late}")
        if self.bias_time is not None and self.bias_time < 0:
            raise ValueError("bias_time must be >= 0")

    @classmethod
    def eventprop(cls) -> YinYangEncoding:
        """Meszaros et al. 2025: t = 1.5 + 18.5 f ms, no bias spike."""
        return cls(1.5, 20.0, None)

    @classmethod
    def delgrad(cls, tau_syn: float = 5.0) -> YinYangEncoding:
        """Goltz et al. (DelGrad): t in [0.15, 2] tau_syn and a bias spike at 0.9 tau_syn (the
        bias time of the authors' released Yin-Yang configurations, which use tau_syn = 1)."""
        if not tau_syn > 0:
            raise ValueError(f"tau_syn must be > 0 ms, got {tau_syn}")
        return cls(0.15 * tau_syn, 2.0 * tau_syn, 0.9 * tau_syn)

    @property
    def n_channels(self) -> int:
        return 4 if self.bias_time is None else 5

    def times(self, features: np.ndarray) -> np.ndarray:
        """Spike times [n, n_channels] (ms); channel c spikes once at times[:, c]."""
        t = self.t_early + features * (self.t_late - self.t_early)
        if self.bias_time is not None:
            t = np.concatenate([t, np.full((len(t), 1), self.bias_time)], axis=1)
        return t


def yinyang_dataset(
    split: str = "train",
    encoding: YinYangEncoding | None = None,
    duration: float = 30.0,
    size: int | None = None,
    seed: int | None = None,
):
    """The published split ``train`` / ``validation`` / ``test`` as an ``EventDataset`` of
    latency-coded spikes (``size``/``seed`` override the published ones)."""
    from .base import EventDataset

    if split not in SPLITS:
        raise ValueError(f"unknown Yin-Yang split {split!r}; choose one of {sorted(SPLITS)}")
    enc = encoding or YinYangEncoding()
    n, s = SPLITS[split]
    features, labels = yinyang_points(n if size is None else size, s if seed is None else seed)
    times = enc.times(features)
    if times.size and times.max() >= duration:
        raise ValueError(f"duration {duration} ms must exceed the latest input time {times.max()}")
    return EventDataset.from_times_matrix(times, labels, 3, duration, f"yinyang-{split}")
