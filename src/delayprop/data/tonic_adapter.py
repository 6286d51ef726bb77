"""Bring your own events: tonic-style structured arrays -> ``EventDataset``.

tonic (and many event-camera / cochlea tools) store one sample as a numpy structured array with
fields ``t`` (timestamp, tonic: microseconds), ``x`` (and ``y`` for 2-D sensors) and ``p``
(polarity), and a sensor size ``(width, height, polarities)``.  Channels are numbered
``x + width * y`` (``polarity="merge"``) or ``x + width * (y + height * p)``
(``polarity="split"``).  Works on a tonic data set directly (any sequence of ``(events, label)``
pairs) without importing tonic.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from .base import EventDataset

__all__ = ["from_tonic", "structured_channels"]


def structured_channels(
    events: np.ndarray, sensor_size: Sequence[int], polarity: str = "merge"
) -> np.ndarray:
    """Channel index (int64) of every event of one structured array (see module docstring)."""
    names = getattr(events.dtype, "names", None) or ()
    if "t" not in names or "x" not in names:
        raise ValueError(f"structured events need fields 't' and 'x', have {names}")
    if len(sensor_size) != 3:
        raise ValueError(f"sensor_size must be (width, height, polarities), got {sensor_size}")
    width, height, n_pol = (int(s) for s in sensor_size)
    x = events["x"].astype(np.int64)
    y = events["y"].astype(np.int64) if "y" in names else np.zeros_like(x)
    if np.any((x < 0) | (x >= width)) or np.any((y < 0) | (y >= height)):
        raise ValueError(f"event coordinates outside the sensor {width} x {height}")
    channel = x + width * y
    if polarity == "split":
        if "p" not in names:
            raise ValueError("polarity='split' needs a field 'p'")
        p = events["p"].astype(np.int64)
        if np.any((p < 0) | (p >= n_pol)):
            raise ValueError(f"polarity outside [0, {n_pol})")
        channel = channel + width * height * p
    elif polarity != "merge":
        raise ValueError(f"polarity must be 'merge' or 'split', got {polarity!r}")
    return channel


def from_tonic(
    samples: Iterable[tuple[np.ndarray, int]],
    *,
    sensor_size: Sequence[int],
    n_classes: int,
    time_scale: float = 1e-3,
    polarity: str = "merge",
    duration: float | None = None,
    name: str = "events",
) -> EventDataset:
    """``EventDataset`` of ``(structured events, label)`` pairs.

    Args:
        samples: e.g. a tonic data set, or ``zip(event_arrays, labels)``.
        sensor_size: ``(width, height, polarities)`` as tonic declares it.
        n_classes: number of classes (labels must lie in ``[0, n_classes)``).
        time_scale: ms per unit of ``t`` (tonic's microseconds: 1e-3).
        polarity: ``"merge"`` (polarity ignored) or ``"split"`` (a channel per polarity).
        duration: trial length in ms; default just past the latest event.
    """
    times, units, labels = [], [], []
    for i, (events, label) in enumerate(samples):
        try:
            units.append(structured_channels(events, sensor_size, polarity))
        except ValueError as err:
            raise ValueError(f"sample {i}: {err}") from err
        times.append(events["t"])
        labels.append(int(label))
    width, height, n_pol = (int(s) for s in sensor_size)
    n_channels = width * height * (n_pol if polarity == "split" else 1)
    return EventDataset.from_ragged(
        times, units, np.array(labels, np.int64), n_channels, n_classes, duration, name,
        time_scale=time_scale,
    )  # fmt: skip
