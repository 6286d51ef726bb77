"""Sequence detection (Meszaros et al. 2025): two inputs, two classes, order in time matters.

Class 0: input 0 spikes at 0 ms and input 1 at ``gap`` ms; class 1: the reverse.  A network of
two LI outputs with fixed unit weights solves it only by delaying the early input of its own
class so that both arrive together (the maximum voltage then peaks higher).
"""

from __future__ import annotations

import numpy as np

from .base import EventDataset

__all__ = ["sequence_dataset", "worst_case_delays"]


def sequence_dataset(gap: float = 10.0, duration: float | None = None) -> EventDataset:
    """The two examples of the task; ``duration`` defaults to gap + 15 ms."""
    if gap <= 0:
        raise ValueError(f"gap must be > 0 ms, got {gap}")
    duration = gap + 15.0 if duration is None else duration
    times = np.array([0.0, gap, 0.0, gap])
    units = np.array([0, 1, 1, 0])
    return EventDataset(
        times, units, np.array([0, 2, 4]), np.array([0, 1]), 2, 2, duration, "sequence"
    )


def worst_case_delays(gap: float = 10.0) -> np.ndarray:
    """Delay matrix [n_out, n_in] (ms) that makes each output detect the wrong order: 0 on the
    diagonal, ``gap`` off it."""
    return np.array([[0.0, gap], [gap, 0.0]])
