"""Small files in the exact on-disk formats of the published data sets, for tests and trials.

Nothing here downloads anything: the writers reproduce the layouts that the loaders read, so every
loader can be checked on files with known content on an offline machine.

* Heidelberg (SHD / SSC): HDF5 with ``spikes/times`` (variable-length float16 seconds),
  ``spikes/units`` (variable-length uint16), ``labels``, ``extra/speaker``, ``extra/keys`` and
  (SHD) ``extra/meta_info``; optionally wrapped as ``.h5.zip`` or ``.h5.gz``.
* Braille reading: a pickle of records ``{'letter', 'events'}`` with ``events[taxel] = [ON
  times, OFF times]`` in seconds, as a list of dicts, a dict of lists or a pandas DataFrame
  (needs pandas), optionally inside ``reading_braille_data.zip``.

The random generators put a sample without any spike at index 1 and a spike on the last channel
into sample 0, the two edge cases real files contain.
"""

from __future__ import annotations

import gzip
import pickle
import shutil
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .._util import optional_import
from .braille import LETTERS

__all__ = [
    "SpikeTrains",
    "random_heidelberg",
    "write_heidelberg_h5",
    "wrap",
    "random_braille",
    "braille_records",
    "write_braille_pickle",
    "write_zip",
]


@dataclass(frozen=True)
class SpikeTrains:
    """The per-sample events written to a fixture, in the file's own units and dtypes."""

    times: list[np.ndarray]
    units: list[np.ndarray]
    labels: np.ndarray
    speakers: np.ndarray
    n_classes: int


def _ragged(values: np.ndarray, counts: np.ndarray) -> list[np.ndarray]:
    return np.split(values, np.cumsum(counts)[:-1])


def random_heidelberg(
    n_samples: int,
    n_classes: int,
    *,
    seed: int = 0,
    mean_spikes: float = 40.0,
    max_time: float = 1.0,
    n_speakers: int = 3,
    n_channels: int = 700,
) -> SpikeTrains:
    """Random spike trains in Heidelberg dtypes: float16 seconds in ``[0, max_time)``, sorted
    per sample, uint16 units; speaker of sample i is ``i % n_speakers``."""
    rng = np.random.default_rng(seed)
    counts = rng.poisson(mean_spikes, n_samples)
    if n_samples > 1:
        counts[1] = 0
    if n_samples > 0:
        counts[0] = max(counts[0], 1)
    samples = np.repeat(np.arange(n_samples), counts)
    latest = np.nextafter(np.float16(max_time), np.float16(0))
    times = np.minimum((rng.random(len(samples)) * max_time).astype(np.float16), latest)
    units = rng.integers(0, n_channels, len(samples)).astype(np.uint16)
    if n_samples > 0:
        units[0] = n_channels - 1
    order = np.lexsort((times, samples))
    return SpikeTrains(
        _ragged(times[order], counts),
        _ragged(units[order], counts),
        rng.integers(0, n_classes, n_samples).astype(np.uint16),
        (np.arange(n_samples) % n_speakers).astype(np.uint16),
        n_classes,
    )


def _object_array(arrays: Sequence[np.ndarray]) -> np.ndarray:
    out = np.empty(len(arrays), dtype=object)
    for i, a in enumerate(arrays):
        out[i] = a
    return out


def write_heidelberg_h5(
    path: str | Path,
    trains: SpikeTrains,
    *,
    keys: Sequence[str] | None = None,
    meta_info: bool = True,
) -> Path:
    """Write ``trains`` as a Heidelberg HDF5 file; ``meta_info`` adds SHD's per-speaker table."""
    h5py = optional_import("h5py", "data", "writing Heidelberg files")
    path = Path(path)
    n = len(trains.labels)
    with h5py.File(path, "w") as f:
        times = f.create_dataset("spikes/times", (n,), dtype=h5py.vlen_dtype(np.float16))
        units = f.create_dataset("spikes/units", (n,), dtype=h5py.vlen_dtype(np.uint16))
        if n:
            times[...] = _object_array(trains.times)
            units[...] = _object_array(trains.units)
        f.create_dataset("labels", data=np.asarray(trains.labels, np.uint16))
        f.create_dataset("extra/speaker", data=np.asarray(trains.speakers, np.uint16))
        names = list(keys) if keys is not None else [f"word-{k}" for k in range(trains.n_classes)]
        f.create_dataset("extra/keys", data=np.array(names, dtype="S"))
        if meta_info:
            n_speakers = int(trains.speakers.max()) + 1 if n else 1
            speaker_ids = np.arange(n_speakers)
            f.create_dataset("extra/meta_info/gender", data=np.where(speaker_ids % 2, b"f", b"m"))
            f.create_dataset("extra/meta_info/age", data=20 + speaker_ids.astype(np.uint16))
            f.create_dataset("extra/meta_info/body_height", data=1.6 + 0.01 * speaker_ids)
    return path


def wrap(path: str | Path, kind: str) -> Path:
    """Replace ``path`` by ``path.zip`` (one deflated member of the same name) or ``path.gz``."""
    path = Path(path)
    if kind == "zip":
        target = path.with_name(path.name + ".zip")
        with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
            archive.write(path, path.name)
    elif kind == "gz":
        target = path.with_name(path.name + ".gz")
        with open(path, "rb") as src, gzip.open(target, "wb") as dst:
            shutil.copyfileobj(src, dst)
    else:
        raise ValueError(f"wrapper must be 'zip' or 'gz', got {kind!r}")
    path.unlink()
    return target


def random_braille(
    n_per_class: int, *, seed: int = 0, mean_spikes: float = 3.0, max_time: float = 1.0
) -> tuple[list[str], list[list[list[list[float]]]]]:
    """``(letters, events)``: ``n_per_class`` recordings of each of the 27 letters, grouped by
    letter; ``events[i][taxel] = [ON times, OFF times]`` as lists of float seconds."""
    rng = np.random.default_rng(seed)
    letters, events = [], []
    for letter in LETTERS:
        for _ in range(n_per_class):
            letters.append(letter)
            events.append(
                [
                    [sorted(rng.random(rng.poisson(mean_spikes)) * max_time) for _ in range(2)]
                    for _ in range(12)
                ]
            )
    if len(events) > 1:
        events[1] = [[[], []] for _ in range(12)]
    if events:
        events[0][11][1] = sorted(events[0][11][1] + [0.5 * max_time])
    return letters, [[[list(map(float, ts)) for ts in taxel] for taxel in ev] for ev in events]


def braille_records(letters: list[str], events: list, layout: str):
    """The object pickled in one of the accepted layouts: ``records`` (list of dicts),
    ``columns`` (dict of lists) or ``dataframe`` (pandas, imported only here)."""
    if layout == "records":
        return [{"letter": letter, "events": ev} for letter, ev in zip(letters, events)]
    if layout == "columns":
        return {"letter": list(letters), "events": list(events)}
    if layout == "dataframe":
        import pandas as pd

        return pd.DataFrame({"letter": list(letters), "events": list(events)})
    raise ValueError(f"layout must be 'records', 'columns' or 'dataframe', got {layout!r}")


def write_braille_pickle(path: str | Path, letters: list[str], events: list, layout: str) -> Path:
    """Pickle ``braille_records(letters, events, layout)`` to ``path``."""
    path = Path(path)
    with open(path, "wb") as f:
        pickle.dump(braille_records(letters, events, layout), f)
    return path


def write_zip(path: str | Path, members: dict[str, str | Path]) -> Path:
    """A zip archive of the files ``members`` (archive name -> file on disk)."""
    path = Path(path)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, source in members.items():
            archive.write(source, name)
    return path
