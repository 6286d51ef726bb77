"""Spiking Heidelberg Digits (SHD) and Spiking Speech Commands (SSC) (Cramer et al. 2020).

Spoken words passed through a cochlea model: 700 channels; SHD has 20 classes (English and German
digits; 8156 train / 2264 test samples), SSC 35 classes (75466 / 9981 / 20382).  One HDF5 file
per split, laid out as::

    spikes/times   [n] variable-length float16 arrays, seconds
    spikes/units   [n] variable-length uint16 arrays, channel ids in [0, 700)
    labels         [n] integer class ids
    extra/speaker  [n] integer speaker ids
    extra/keys     class names (bytes)
    extra/meta_info/{gender, age, body_height}   per speaker id (SHD only)

The files are published zipped (``shd_train.h5.zip``, checked against the published MD5) and
gzipped (``.h5.gz``); ``.h5``, ``.h5.gz`` and ``.h5.zip`` are all accepted.  Times are cast from
float16 to float64 before they are scaled to ms (float16 cannot hold milliseconds).  Converted
files are cached (see ``cache``).

Splits: SSC has published train / validation / test files.  SHD has train and test only; its
``validation`` split is leave-one-speaker-out fold ``fold`` of the training file (speaker ids in
ascending order; Meszaros et al. 2025 used these 10 folds), and ``train`` then excludes that
speaker.  ``fold=None`` gives the whole training file as ``train`` (and no validation split).

Options: ``binning`` merges neighbouring channels (5 gives 140 channels, as in Hammouamri et al.
2023); ``crop`` (ms) drops later spikes and sets the duration.  Without ``crop`` the duration is
1400 ms for SHD and 1000 ms for SSC, or just past the latest spike if that is later.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

import numpy as np

from .._util import optional_import
from .base import EventDataset
from .cache import cache_path, cached, resolve_cache_dir
from .download import md5sum, published_md5, resolve_data_dir, verify_md5
from .sources import find_file, prefix_errors, unpacked
from .splits import check_split, speaker_fold
from .transforms import bin_channels, crop_time

__all__ = ["N_CHANNELS", "HeidelbergSpec", "SHD", "SSC", "read_heidelberg_h5",
           "load_heidelberg_file", "load_shd", "load_ssc"]  # fmt: skip

if TYPE_CHECKING:
    import h5py

N_CHANNELS = 700
_CONVERTER_VERSION = "1"


def _h5py() -> ModuleType:
    return optional_import("h5py", "data", "reading SHD and SSC files")


@dataclass(frozen=True)
class HeidelbergSpec:
    """A Heidelberg data set: name, classes, file stem of each split, nominal duration (ms)."""

    name: str
    n_classes: int
    files: dict[str, str]
    duration: float


SHD = HeidelbergSpec("shd", 20, {"train": "shd_train", "test": "shd_test"}, 1400.0)
SSC = HeidelbergSpec(
    "ssc", 35, {"train": "ssc_train", "validation": "ssc_valid", "test": "ssc_test"}, 1000.0
)


def _vlen_base(f: h5py.File, key: str, kind: str) -> h5py.Dataset:
    if key not in f:
        raise ValueError(f"missing dataset {key!r}: not a Heidelberg spike file")
    ds = f[key]
    h5py = _h5py()
    base = h5py.check_vlen_dtype(ds.dtype) if isinstance(ds, h5py.Dataset) else None
    if base is None or base.kind not in kind or ds.ndim != 1:
        raise ValueError(
            f"{key!r} must be a 1-D list of variable-length "
            f"{'float' if kind == 'f' else 'integer'} arrays, found {getattr(ds, 'dtype', ds)}"
        )
    return ds


def _int_array(f: h5py.File, key: str, n: int) -> np.ndarray:
    arr = np.asarray(f[key][()])
    if arr.shape != (n,) or not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"{key!r} must hold {n} integers, found {arr.dtype} {arr.shape}")
    return arr.astype(np.int64)


def _strings(values) -> list[str]:
    return [v.decode() if isinstance(v, bytes) else str(v) for v in np.asarray(values).ravel()]


def _speaker_meta(f: h5py.File, n: int) -> dict[str, np.ndarray]:
    """``speaker`` per sample and, where ``extra/meta_info`` exists, each speaker's details."""
    if "extra/speaker" not in f:
        return {}
    speaker = _int_array(f, "extra/speaker", n)
    meta = {"speaker": speaker}
    if "extra/meta_info" in f and n:
        for key, item in f["extra/meta_info"].items():
            values = np.asarray(item[()])
            if values.ndim != 1 or speaker.min() < 0 or speaker.max() >= len(values):
                raise ValueError(
                    f"extra/meta_info/{key} does not cover speaker ids 0..{speaker.max()}"
                )
            if values.dtype.kind in "SOU":
                values = np.array(_strings(values))
            meta[key] = values[speaker]
    return meta


def read_heidelberg_h5(path: Path, spec: HeidelbergSpec, source: str | None = None) -> EventDataset:
    """Read a plain Heidelberg HDF5 file; errors name ``source`` (default ``path``)."""
    source = source or str(path)
    with prefix_errors(source):
        try:
            f = _h5py().File(path, "r")
        except OSError as err:
            raise ValueError(f"not a readable HDF5 file, truncated or corrupt ({err})") from err
        try:
            with f:
                times_ds = _vlen_base(f, "spikes/times", "f")
                units_ds = _vlen_base(f, "spikes/units", "iu")
                if "labels" not in f:
                    raise ValueError("missing dataset 'labels': not a Heidelberg spike file")
                n = len(f["labels"])
                labels = _int_array(f, "labels", n)
                times, units = times_ds[()], units_ds[()]
                if len(times) != n or len(units) != n:
                    raise ValueError(
                        f"{len(times)} spike trains, {len(units)} unit lists, {n} labels"
                    )
                meta = _speaker_meta(f, n)
                keys = _strings(f["extra/keys"][()]) if "extra/keys" in f else []
        except OSError as err:
            raise ValueError(f"corrupt or truncated HDF5 file ({err})") from err
        if len(labels) and (labels.min() < 0 or labels.max() >= spec.n_classes):
            raise ValueError(
                f"labels outside [0, {spec.n_classes}): {labels.min()}..{labels.max()}"
            )
        if keys and len(keys) != spec.n_classes:
            raise ValueError(f"'extra/keys' names {len(keys)} classes, expected {spec.n_classes}")
        ds = EventDataset.from_ragged(
            times, units, labels, N_CHANNELS, spec.n_classes, None, Path(source).name, meta,
            keys, time_scale=1000.0,
        )  # fmt: skip
        return replace(ds, duration=spec.duration) if ds.duration < spec.duration else ds


def load_heidelberg_file(
    path: str | os.PathLike,
    spec: HeidelbergSpec,
    *,
    verify: bool = True,
    cache: bool = True,
    cache_dir: str | os.PathLike | None = None,
) -> EventDataset:
    """Read one ``.h5`` / ``.h5.gz`` / ``.h5.zip`` file (whole, unsplit, unprocessed).

    ``verify`` checks a file that carries a published name against the published MD5.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    md5 = md5sum(path)
    expected = published_md5(path.name)
    if verify and expected is not None:
        verify_md5(path, expected, md5)
    key = f"{md5}:heidelberg:{_CONVERTER_VERSION}"
    workdir = resolve_cache_dir(path.parent, cache_dir)
    member = path.name.removesuffix(".zip").removesuffix(".gz")

    def build() -> EventDataset:
        with unpacked(path, member, workdir if cache else None) as h5:
            return read_heidelberg_h5(h5, spec, source=str(path))

    return cached(cache_path(workdir, path, key) if cache else None, key, build)


def _load_split(
    spec: HeidelbergSpec, split: str, data_dir, *, verify: bool, cache: bool, cache_dir
) -> EventDataset:
    stem = spec.files[split]
    folder = resolve_data_dir(data_dir)
    path = find_file(spec.name, [f"{stem}.h5.zip", f"{stem}.h5", f"{stem}.h5.gz"], folder)
    return load_heidelberg_file(path, spec, verify=verify, cache=cache, cache_dir=cache_dir)


def _preprocess(ds: EventDataset, binning: int, crop: float | None, name: str) -> EventDataset:
    ds = bin_channels(ds, binning)
    if crop is not None:
        ds = crop_time(ds, crop)
    return replace(ds, name=name)


def load_shd(
    split: str = "train",
    data_dir: str | os.PathLike | None = None,
    *,
    fold: int | None = 0,
    binning: int = 1,
    crop: float | None = None,
    verify: bool = True,
    cache: bool = True,
    cache_dir: str | os.PathLike | None = None,
) -> EventDataset:
    """SHD split ``train`` / ``validation`` / ``test`` (see module docstring)."""
    check_split(split, "SHD")
    opts = dict(verify=verify, cache=cache, cache_dir=cache_dir)
    ds = _load_split(SHD, "test" if split == "test" else "train", data_dir, **opts)
    if split != "test":
        if fold is not None:
            train, val = speaker_fold(ds, fold)
            ds = val if split == "validation" else train
        elif split == "validation":
            raise ValueError(
                "SHD has no published validation split: pass fold=k to hold out the k-th "
                "speaker of the training file"
            )
    return _preprocess(ds, binning, crop, f"shd-{split}")


def load_ssc(
    split: str = "train",
    data_dir: str | os.PathLike | None = None,
    *,
    binning: int = 1,
    crop: float | None = None,
    verify: bool = True,
    cache: bool = True,
    cache_dir: str | os.PathLike | None = None,
) -> EventDataset:
    """SSC split ``train`` / ``validation`` / ``test`` (the published files)."""
    check_split(split, "SSC")
    opts = dict(verify=verify, cache=cache, cache_dir=cache_dir)
    ds = _load_split(SSC, split, data_dir, **opts)
    return _preprocess(ds, binning, crop, f"ssc-{split}")
