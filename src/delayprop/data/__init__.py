"""Data sets as ``EventDataset`` objects, one registry to load them, augmentations and loaders.

``load_dataset(name, split, *, data_dir=None, **options)`` with ``split`` in ``train``,
``validation``, ``test``:

==========  ===================================================  ==================================
name        source                                               options
==========  ===================================================  ==================================
yinyang     generated (Kriener et al. 2021), published seeds      encoding ("eventprop", "delgrad"
                                                                 or a YinYangEncoding), tau_syn,
                                                                 t_early, t_late, bias_time,
                                                                 duration, size, seed
sequence    generated order task (Meszaros et al. 2025)          gap, duration, n_samples, jitter
shd         Heidelberg HDF5 files in ``data_dir``                fold, binning, crop, verify,
                                                                 cache, cache_dir
ssc         Heidelberg HDF5 files in ``data_dir``                binning, crop, verify, cache,
                                                                 cache_dir
braille     Zenodo 7050094 pickle / zip in ``data_dir``           threshold, seed
digits      scikit-learn's bundled 8x8 digits, latency-coded     t_early, t_late, duration, seed
==========  ===================================================  ==================================

``data_dir`` defaults to ``$DELAYPROP_DATA`` (see ``download``).  Data sets without a published
validation split derive it from the training data with a documented seeded split (SHD: a held-out
speaker; Braille and digits: class-stratified 70 / 10 / 20), and ``train`` excludes it.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable
from dataclasses import replace

from .base import EventBatch, EventDataset
from .braille import load_braille
from .digits import load_digits
from .download import download
from .loader import EventTorchDataset, collate_spikes, spike_loader
from .sequence import sequence_dataset
from .shd import load_shd, load_ssc
from .splits import check_split, speaker_fold, speaker_split, stratified_split, validation_split
from .tonic_adapter import from_tonic
from .transforms import (
    Blend,
    ChannelShift,
    Compose,
    TimeDilation,
    TimeJitter,
    bin_channels,
    crop_time,
    make_augmentation,
)
from .yinyang import YinYangEncoding, yinyang_dataset

__all__ = [
    "DATASETS",
    "load_dataset",
    "EventDataset",
    "EventBatch",
    "validation_split",
    "stratified_split",
    "speaker_split",
    "speaker_fold",
    "download",
    "from_tonic",
    "EventTorchDataset",
    "collate_spikes",
    "spike_loader",
    "ChannelShift",
    "TimeJitter",
    "TimeDilation",
    "Blend",
    "Compose",
    "bin_channels",
    "crop_time",
    "make_augmentation",
    "YinYangEncoding",
]


def _yinyang(
    split: str,
    data_dir: str | os.PathLike | None = None,
    *,
    encoding: str | YinYangEncoding = "eventprop",
    tau_syn: float = 5.0,
    t_early: float | None = None,
    t_late: float | None = None,
    bias_time: float | None = None,
    duration: float = 30.0,
    size: int | None = None,
    seed: int | None = None,
) -> EventDataset:
    """Yin-Yang: an encoding preset (``"delgrad"`` scales with ``tau_syn``, ms) whose fields
    ``t_early``, ``t_late``, ``bias_time`` can be overridden one by one."""
    if encoding == "eventprop":
        encoding = YinYangEncoding.eventprop()
    elif encoding == "delgrad":
        encoding = YinYangEncoding.delgrad(tau_syn)
    elif not isinstance(encoding, YinYangEncoding):
        raise ValueError(
            f"unknown Yin-Yang encoding {encoding!r}; use 'eventprop', 'delgrad' or a "
            "YinYangEncoding"
        )
    given = {"t_early": t_early, "t_late": t_late, "bias_time": bias_time}
    encoding = replace(encoding, **{k: v for k, v in given.items() if v is not None})
    return yinyang_dataset(split, encoding, duration, size, seed)


def _sequence(
    split: str,
    data_dir: str | os.PathLike | None = None,
    *,
    gap: float = 10.0,
    duration: float | None = None,
    n_samples: int | None = None,
    jitter: float = 0.0,
) -> EventDataset:
    """The sequence task: its two examples in every split, or with ``n_samples`` jittered
    samples drawn per split (seeds 0 / 1 / 2 for train / validation / test)."""
    check_split(split, "sequence")
    seed = {"train": 0, "validation": 1, "test": 2}[split]
    return sequence_dataset(gap, duration, n_samples=n_samples, jitter=jitter, seed=seed)


def _digits(split: str, data_dir: str | os.PathLike | None = None, **options) -> EventDataset:
    return load_digits(split, **options)


_LOADERS: dict[str, Callable[..., EventDataset]] = {
    "yinyang": _yinyang,
    "sequence": _sequence,
    "shd": load_shd,
    "ssc": load_ssc,
    "braille": load_braille,
    "digits": _digits,
}
_OPTION_SOURCE = {"digits": load_digits}

#: Names accepted by ``load_dataset``.
DATASETS = tuple(_LOADERS)


def _options(name: str) -> list[str]:
    params = inspect.signature(_OPTION_SOURCE.get(name, _LOADERS[name])).parameters.values()
    return [p.name for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY]


def load_dataset(
    name: str, split: str = "train", *, data_dir: str | os.PathLike | None = None, **options
) -> EventDataset:
    """Load split ``split`` of data set ``name`` (see the table in the module docstring)."""
    if name not in _LOADERS:
        raise ValueError(f"unknown data set {name!r}; choose one of {', '.join(DATASETS)}")
    accepted = _options(name)
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise ValueError(
            f"unknown option(s) {', '.join(unknown)} for data set {name!r}; "
            f"accepted: {', '.join(accepted) or 'none'}"
        )
    return _LOADERS[name](split, data_dir, **options)
