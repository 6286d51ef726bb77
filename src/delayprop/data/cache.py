"""Cache of converted data sets: one ``.npz`` per source file, keyed by the source's checksum.

Reading the Heidelberg HDF5 files (variable-length arrays, zip / gzip wrappers) takes seconds to
minutes; loading the converted flat arrays takes a fraction of that.  An entry is named after
the source file and the first 16 hex digits of its MD5, and stores the full key (source MD5 and
converter version) inside, so a changed source or converter never reuses a stale entry.  An
entry that is unreadable (truncated, CRC mismatch, missing arrays), has another key or fails
``EventDataset.validate`` is rebuilt, never trusted.  Entries are written to a temporary file
and renamed into place, so concurrent readers never see a partial file.

Location: ``cache_dir`` argument, else ``$DELAYPROP_CACHE``, else ``<data_dir>/.delayprop-cache``
when ``data_dir`` is writable, else ``~/.cache/delayprop``.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from .base import EventDataset

__all__ = ["CACHE_ENV", "resolve_cache_dir", "cache_path", "cached", "load_entry", "save_entry"]

CACHE_ENV = "DELAYPROP_CACHE"
_log = logging.getLogger(__name__)


def resolve_cache_dir(data_dir: Path, cache_dir: str | os.PathLike | None = None) -> Path:
    """Where cache entries for files in ``data_dir`` go (see module docstring)."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    local = data_dir / ".delayprop-cache"
    if (local.is_dir() and os.access(local, os.W_OK)) or os.access(data_dir, os.W_OK):
        return local
    return Path("~/.cache/delayprop").expanduser()


def cache_path(cache_dir: Path, source: Path, key: str) -> Path:
    """The entry of ``source`` under ``key`` (whose first 16 characters name the file)."""
    return cache_dir / f"{source.name}.{key[:16]}.npz"


def save_entry(path: Path, key: str, ds: EventDataset) -> None:
    """Write ``ds`` atomically; failures to write are logged, not raised (the cache is
    optional)."""
    header = {
        "key": key,
        "n_channels": ds.n_channels,
        "n_classes": ds.n_classes,
        "duration": ds.duration,
        "name": ds.name,
        "class_names": list(ds.class_names),
        "meta": sorted(ds.meta),
    }
    arrays = {f"meta_{k}": np.asarray(v) for k, v in ds.meta.items()}
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "wb") as f:
            np.savez(
                f, header=np.array(json.dumps(header)), times=ds.times, units=ds.units,
                offsets=ds.offsets, labels=ds.labels, **arrays,
            )  # fmt: skip
        os.replace(tmp, path)
        tmp = None
    except OSError as err:
        _log.warning("could not write cache entry %s: %s", path, err)
    finally:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)


def load_entry(path: Path, key: str) -> EventDataset | None:
    """The cached data set, or ``None`` if the entry is absent, unreadable or for another key."""
    if not path.is_file():
        return None
    try:
        with open(path, "rb") as f, np.load(f, allow_pickle=False) as z:
            header = json.loads(str(z["header"]))
            if header["key"] != key:
                return None
            return EventDataset(
                z["times"], z["units"], z["offsets"], z["labels"], header["n_channels"],
                header["n_classes"], header["duration"], header["name"],
                {k: z[f"meta_{k}"] for k in header["meta"]}, tuple(header["class_names"]),
            )  # fmt: skip
    except (OSError, ValueError, KeyError, TypeError, EOFError, zipfile.BadZipFile) as err:
        _log.info("cache entry %s is unusable (%s); rebuilding it", path, err)
        return None


def cached(path: Path | None, key: str, build: Callable[[], EventDataset]) -> EventDataset:
    """``load_entry(path, key)`` if usable, else ``build()`` stored at ``path``; no caching
    when ``path`` is ``None``."""
    if path is None:
        return build()
    ds = load_entry(path, key)
    if ds is None:
        ds = build()
        save_entry(path, key, ds)
    return ds
