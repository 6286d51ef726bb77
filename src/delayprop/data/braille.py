"""Braille letter reading (Mueller-Cleve et al. 2022, Zenodo record 7050094).

An iCub fingertip with 12 capacitive taxels slides over 27 Braille characters (Space, A-Z); each
taxel's signal is sigma-delta encoded into ON and OFF events.  The published archive
``reading_braille_data.zip`` holds one pickle per encoding threshold,
``data_braille_letters_th_{threshold}.pkl`` (thresholds 1, 2, 5, 10): records with a ``letter``
and ``events``, where ``events[taxel] = [ON times, OFF times]`` in seconds.

Accepted pickle layouts: a list of dicts, a dict of lists (neither needs pandas) or a pandas
DataFrame with those two columns (the published layout; needs pandas to unpickle).  The file is
read by ``restricted_pickle.restricted_load``: only the globals of these layouts (numpy arrays,
the pieces of a DataFrame) are resolved, any other one (``os.system``, ``builtins.exec``, ...)
is refused with an error naming it, so a pickle cannot run code here.

Channels: ``taxel + 12 * polarity`` (polarity 0 = ON, 1 = OFF), 24 in all, as in the code of
Meszaros et al. 2025.  Classes: index in ``LETTERS``.  No split is published: train / validation /
test are a seeded class-stratified 70 / 10 / 20 split (``splits.stratified_indices``).  The
duration is shared by all splits: just past the latest event of the whole file.
"""

from __future__ import annotations

import os
import pickle
import struct
from dataclasses import replace
from pathlib import Path

import numpy as np

from .base import EventDataset
from .download import resolve_data_dir
from .restricted_pickle import restricted_load
from .sources import find_file, prefix_errors, unpacked
from .splits import check_split, stratified_part

__all__ = ["LETTERS", "N_TAXELS", "braille_dataset", "read_braille_pickle", "load_braille"]

LETTERS = ("Space",) + tuple(chr(c) for c in range(ord("A"), ord("Z") + 1))
N_TAXELS = 12
_THRESHOLDS = (1, 2, 5, 10)
#: what an unpickler raises on a truncated or corrupt file
_CORRUPT = (pickle.UnpicklingError, EOFError, AttributeError, TypeError, KeyError, IndexError,
            struct.error, MemoryError)  # fmt: skip


def _columns(obj) -> tuple[list, list]:
    """``(letters, events)`` from any accepted layout."""
    if isinstance(obj, list):
        if not all(isinstance(r, dict) and "letter" in r and "events" in r for r in obj):
            raise ValueError("a list layout must hold dicts with keys 'letter' and 'events'")
        return [r["letter"] for r in obj], [r["events"] for r in obj]
    if isinstance(obj, dict) or hasattr(obj, "columns"):
        missing = [k for k in ("letter", "events") if k not in obj]
        if missing:
            raise ValueError(f"missing column(s) {missing}; expected 'letter' and 'events'")
        letters, events = list(obj["letter"]), list(obj["events"])
        if len(letters) != len(events):
            raise ValueError(f"{len(letters)} letters but {len(events)} event records")
        return letters, events
    raise ValueError(
        f"unsupported pickle content {type(obj).__name__}: expected a list of dicts, a dict of "
        "lists or a DataFrame with columns 'letter' and 'events'"
    )


def _sample_arrays(index: int, letter, events) -> tuple[np.ndarray, np.ndarray]:
    """Times (s, float64) and channels of one recording, in taxel / polarity order."""
    if len(events) != N_TAXELS or any(len(taxel) != 2 for taxel in events):
        raise ValueError(
            f"sample {index} ({letter!r}): events must be {N_TAXELS} taxels of [ON, OFF] lists"
        )
    try:
        lists = [np.asarray(ts, dtype=np.float64).ravel() for taxel in events for ts in taxel]
    except (TypeError, ValueError) as err:
        raise ValueError(
            f"sample {index} ({letter!r}): event times must be numbers ({err})"
        ) from err
    lengths = [len(ts) for ts in lists]
    channel_of_list = np.array([t + N_TAXELS * p for t in range(N_TAXELS) for p in (0, 1)])
    return np.concatenate(lists), np.repeat(channel_of_list, lengths)


def braille_dataset(letters: list, events: list, name: str = "braille") -> EventDataset:
    """All recordings as one ``EventDataset`` (24 channels, 27 classes, ms)."""
    labels = np.empty(len(letters), np.int64)
    for i, letter in enumerate(letters):
        if letter not in LETTERS:
            raise ValueError(f"sample {i}: unknown letter {letter!r} (expected one of {LETTERS})")
        labels[i] = LETTERS.index(letter)
    pairs = [_sample_arrays(i, letters[i], ev) for i, ev in enumerate(events)]
    return EventDataset.from_ragged(
        [p[0] for p in pairs], [p[1] for p in pairs], labels, 2 * N_TAXELS, len(LETTERS), None,
        name, class_names=LETTERS, time_scale=1000.0,
    )  # fmt: skip


def _unpickle(path: Path):
    with open(path, "rb") as f:
        try:
            return restricted_load(f)
        except ModuleNotFoundError as err:
            if err.name and err.name.split(".")[0] == "pandas":
                raise ImportError(
                    f"{path} holds a pandas DataFrame: install pandas to read it "
                    "(pip install pandas)"
                ) from err
            raise ValueError(f"not a Braille pickle (needs module {err.name})") from err
        except _CORRUPT as err:
            raise ValueError(f"not a readable pickle, truncated or corrupt ({err})") from err


def read_braille_pickle(path: str | os.PathLike, source: str | None = None) -> EventDataset:
    """Read one Braille pickle (any accepted layout); errors name ``source`` (default path)."""
    path = Path(path)
    with prefix_errors(source or str(path)):
        return braille_dataset(*_columns(_unpickle(path)), name=path.name)


def load_braille(
    split: str = "train",
    data_dir: str | os.PathLike | None = None,
    *,
    threshold: int = 1,
    seed: int = 0,
) -> EventDataset:
    """Braille split ``train`` / ``validation`` / ``test`` (70 / 10 / 20 %, stratified by
    letter, permuted with ``seed``), read from ``data_braille_letters_th_{threshold}.pkl`` or
    from ``reading_braille_data.zip`` in the data folder."""
    check_split(split, "Braille")
    if threshold not in _THRESHOLDS:
        raise ValueError(f"threshold must be one of {_THRESHOLDS}, got {threshold!r}")
    member = f"data_braille_letters_th_{threshold}.pkl"
    path = find_file("braille", [member, "reading_braille_data.zip"], resolve_data_dir(data_dir))
    with unpacked(path, member) as pkl:
        ds = read_braille_pickle(pkl, source=str(path))
    part = stratified_part(ds.labels, split, seed, "Braille")
    return replace(ds.subset(part), name=f"braille-{split}")
