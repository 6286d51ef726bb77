"""Where data files live, how they are checked, and how they are downloaded.

Data files are looked up in one folder: the ``data_dir`` argument, else the ``DELAYPROP_DATA``
environment variable, else ``~/.delayprop/data``.  ``delayprop data download NAME --data-dir DIR``
fetches the published files there (online machines only): streamed with ``urllib``, hashed while
they arrive, checked against the published MD5 and moved into place only when it matches, so an
interrupted or corrupt download never leaves a file that looks complete.

Checksums: the Heidelberg archives (Cramer et al. 2020) carry the MD5 sums published with them
(also used by tonic); the Braille archive (Mueller-Cleve et al. 2022, Zenodo record 7050094) is
checked against the MD5 that Zenodo's record API lists for it at download time.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "DATA_ENV",
    "RemoteFile",
    "REMOTE_FILES",
    "published_md5",
    "resolve_data_dir",
    "md5sum",
    "verify_md5",
    "missing_data_error",
    "fetch",
    "download",
]

DATA_ENV = "DELAYPROP_DATA"
_DEFAULT_DATA_DIR = "~/.delayprop/data"
_CHUNK = 1 << 20


@dataclass(frozen=True)
class RemoteFile:
    """A published file: its name on disk, its URL and its MD5 (hex).

    ``md5`` is ``None`` when the checksum is read from ``checksum_url`` (a Zenodo record API
    answer listing ``files[].key`` and ``files[].checksum = "md5:..."``) at download time.
    """

    filename: str
    url: str
    md5: str | None = None
    checksum_url: str | None = None


_BRAILLE_RECORD = "7050094"


def _zenke(filename: str, md5: str) -> RemoteFile:
    return RemoteFile(filename, "https://zenkelab.org/datasets/" + filename, md5)


#: The published files of each downloadable data set.
REMOTE_FILES: dict[str, tuple[RemoteFile, ...]] = {
    "shd": (
        _zenke("shd_train.h5.zip", "f3252aeb598ac776c1b526422d90eecb"),
        _zenke("shd_test.h5.zip", "1503a5064faa34311c398fb0a1ed0a6f"),
    ),
    "ssc": (
        _zenke("ssc_train.h5.zip", "d102be95e7144fcc0553d1f45ba94170"),
        _zenke("ssc_valid.h5.zip", "b4eee3516a4a90dd0c71a6ac23a8ae43"),
        _zenke("ssc_test.h5.zip", "a35ff1e9cffdd02a20eb850c17c37748"),
    ),
    "braille": (
        RemoteFile(
            "reading_braille_data.zip",
            f"https://zenodo.org/records/{_BRAILLE_RECORD}/files/reading_braille_data.zip?download=1",
            checksum_url=f"https://zenodo.org/api/records/{_BRAILLE_RECORD}",
        ),
    ),
}


def published_md5(filename: str) -> str | None:
    """The published MD5 of a file name from ``REMOTE_FILES``, or ``None``."""
    for files in REMOTE_FILES.values():
        for remote in files:
            if remote.filename == filename:
                return remote.md5
    return None


def resolve_data_dir(data_dir: str | os.PathLike | None) -> Path:
    """``data_dir``, else ``$DELAYPROP_DATA``, else ``~/.delayprop/data`` (not created)."""
    if data_dir is None:
        data_dir = os.environ.get(DATA_ENV) or _DEFAULT_DATA_DIR
    return Path(data_dir).expanduser()


def md5sum(path: str | os.PathLike) -> str:
    """MD5 hex digest of a file, read in 1 MiB chunks."""
    digest = hashlib.md5()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def verify_md5(path: Path, expected: str, actual: str | None = None) -> str:
    """Raise ``ValueError`` naming ``path`` unless its MD5 is ``expected``; return the MD5."""
    actual = md5sum(path) if actual is None else actual
    if actual != expected.lower():
        raise ValueError(
            f"{path}: checksum mismatch (md5 {actual}, published {expected}); the file is "
            "truncated, corrupt or not the published one: delete it and download it again"
        )
    return actual


def missing_data_error(name: str, wanted: list[str], data_dir: Path) -> FileNotFoundError:
    """The error raised when a data set's files are absent: says how to get them."""
    urls = "\n".join(f"  {r.url}" for r in REMOTE_FILES.get(name, ()))
    return FileNotFoundError(
        f"{name}: none of {', '.join(wanted)} found in {data_dir}.\n"
        f"Download with:  delayprop data download {name} --data-dir {data_dir}\n"
        f"or point --data-dir (data_dir=...) or the {DATA_ENV} environment variable at the "
        f"folder that holds the files." + (f"\nPublished files:\n{urls}" if urls else "")
    )


def _expected_md5(remote: RemoteFile) -> str:
    if remote.md5 is not None:
        return remote.md5
    if remote.checksum_url is None:
        raise ValueError(f"{remote.filename}: no checksum known, refusing to download")
    with urllib.request.urlopen(remote.checksum_url, timeout=60) as response:
        try:
            record = json.load(response)
            entries = {f["key"]: f["checksum"] for f in record["files"]}
        except (ValueError, KeyError, TypeError) as err:
            raise ValueError(f"{remote.checksum_url}: unreadable record ({err})") from err
    checksum = entries.get(remote.filename)
    if checksum is None or not checksum.startswith("md5:"):
        raise ValueError(f"{remote.checksum_url}: no md5 listed for {remote.filename}")
    return checksum[4:]


def fetch(
    remote: RemoteFile,
    data_dir: str | os.PathLike,
    *,
    force: bool = False,
    report: Callable[[str], None] | None = None,
) -> Path:
    """Download one file into ``data_dir`` unless a copy with the right checksum is there.

    The bytes go to a temporary file in ``data_dir`` and are hashed on the way; the file is
    renamed into place only if the MD5 matches (atomic on POSIX).  Returns the final path.
    """
    folder = Path(data_dir).expanduser()
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / remote.filename
    expected = _expected_md5(remote).lower()
    if target.exists() and not force:
        if md5sum(target) == expected:
            if report:
                report(f"{target}: present, checksum ok")
            return target
        if report:
            report(f"{target}: checksum mismatch, downloading again")
    if report:
        report(f"downloading {remote.url} -> {target}")
    fd, tmp_name = tempfile.mkstemp(prefix=f".{remote.filename}.", suffix=".part", dir=folder)
    tmp = Path(tmp_name)
    try:
        digest = hashlib.md5()
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(remote.url, timeout=60) as src:
            while chunk := src.read(_CHUNK):
                digest.update(chunk)
                out.write(chunk)
        verify_md5(tmp, expected, digest.hexdigest())
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


def download(
    name: str,
    data_dir: str | os.PathLike | None = None,
    *,
    force: bool = False,
    report: Callable[[str], None] | None = None,
) -> list[Path]:
    """Download every published file of data set ``name`` (``shd``, ``ssc``, ``braille``)."""
    if name not in REMOTE_FILES:
        raise ValueError(
            f"nothing to download for {name!r}; downloadable: {', '.join(sorted(REMOTE_FILES))}"
        )
    folder = resolve_data_dir(data_dir)
    return [fetch(r, folder, force=force, report=report) for r in REMOTE_FILES[name]]
