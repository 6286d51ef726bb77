"""Finding a data set's source file and reading it through its ``.zip`` / ``.gz`` wrapper."""

from __future__ import annotations

import gzip
import shutil
import tempfile
import zipfile
import zlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path, PurePosixPath

from .download import missing_data_error

__all__ = ["find_file", "unpacked", "prefix_errors"]


def find_file(name: str, candidates: Sequence[str], data_dir: Path) -> Path:
    """The first of ``candidates`` (file names, in order of preference) present in
    ``data_dir``; ``FileNotFoundError`` with download instructions when none is."""
    for candidate in candidates:
        path = data_dir / candidate
        if path.is_file():
            return path
    raise missing_data_error(name, list(candidates), data_dir)


@contextmanager
def prefix_errors(source: str) -> Iterator[None]:
    """Re-raise any ``ValueError`` inside the block with ``source`` (a file name) in front."""
    try:
        yield
    except ValueError as err:
        if str(err).startswith(source):
            raise
        raise ValueError(f"{source}: {err}") from err


@contextmanager
def unpacked(path: Path, member: str, workdir: Path | None = None) -> Iterator[Path]:
    """A plain file holding the content of ``path``: ``path`` itself, the decompressed ``.gz``,
    or the member of a ``.zip`` whose base name is ``member``.  Temporary copies go to a
    folder under ``workdir`` (default: the system's) and are removed on exit.  A corrupt or
    truncated archive raises ``ValueError`` naming ``path`` and the problem."""
    if path.suffix not in (".zip", ".gz"):
        yield path
        return
    if workdir is not None:
        workdir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".unpack-", dir=workdir) as tmp:
        target = Path(tmp) / member
        if path.suffix == ".zip":
            _extract_zip_member(path, member, target)
        else:
            _gunzip(path, target)
        yield target


def _extract_zip_member(path: Path, member: str, target: Path) -> None:
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile as err:
        raise ValueError(f"{path}: not a valid zip archive, truncated or corrupt ({err})") from err
    with archive:
        names = [n for n in archive.namelist() if PurePosixPath(n).name == member]
        if not names:
            held = ", ".join(archive.namelist()[:10]) or "nothing"
            raise ValueError(f"{path}: the archive has no member {member!r} (it holds {held})")
        try:
            with archive.open(names[0]) as src, open(target, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
        except (zipfile.BadZipFile, zlib.error, EOFError) as err:
            raise ValueError(f"{path}: member {names[0]!r} is corrupt ({err})") from err


def _gunzip(path: Path, target: Path) -> None:
    try:
        with gzip.open(path, "rb") as src, open(target, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
    except (gzip.BadGzipFile, zlib.error, EOFError) as err:
        raise ValueError(f"{path}: not a valid gzip file, truncated or corrupt ({err})") from err
