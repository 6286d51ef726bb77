"""A lock on a run directory: one live run writes to it at a time.

``run_lock(out)`` creates ``out/.lock`` exclusively (``O_CREAT | O_EXCL``) holding
``hostname pid``, and removes it when the block ends (also on an exception).  A second run,
``--force`` or ``--resume`` included, finds the file and refuses while that process lives.  A
lock left by a killed run is stale: on the same host its process no longer exists, so the lock
is removed and taken.  A lock written on another host cannot be checked from here; it is
reported with its path, for the user to remove if no run is active.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["LOCK_FILE", "RunDirectoryLocked", "run_lock"]

#: name of the lock file inside a run directory
LOCK_FILE = ".lock"


class RunDirectoryLocked(FileExistsError):
    """Another live process holds the run directory."""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def _holder(path: Path) -> tuple[str, int] | None:
    """(host, pid) written in a lock file, or None if unreadable (a lock being written)."""
    try:
        host, pid = path.read_text().split()
        return host, int(pid)
    except (OSError, ValueError):
        return None


def _try_create(path: Path) -> bool:
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as f:
        f.write(f"{socket.gethostname()} {os.getpid()}\n")
    return True


def _acquire(out: Path) -> Path:
    path = out / LOCK_FILE
    for _ in range(3):  # a stale lock removed by two starters at once: one of them wins
        if _try_create(path):
            return path
        holder = _holder(path)
        if holder is None:
            raise RunDirectoryLocked(
                f"run directory {out} is being locked by another process ({path} is empty or "
                "unreadable); retry, or remove the file if no run is active"
            )
        host, pid = holder
        if host != socket.gethostname():
            raise RunDirectoryLocked(
                f"run directory {out} is locked by process {pid} on host {host} ({path}); "
                "remove the file if that run is no longer active"
            )
        if _alive(pid):
            raise RunDirectoryLocked(
                f"run directory {out} is in use by a live run (process {pid}); wait for it to "
                f"end or choose another --out (--force does not override a live run)"
            )
        path.unlink(missing_ok=True)  # stale: its process is gone
    raise RunDirectoryLocked(f"could not lock run directory {out} ({path})")


@contextmanager
def run_lock(out: str | os.PathLike) -> Iterator[Path]:
    """Hold the lock of run directory ``out`` (created if missing) for the block."""
    out = Path(out)
    if out.is_symlink() and not out.exists():
        raise FileExistsError(f"--out {out} is a symbolic link to a missing directory")
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"--out {out} exists and is not a directory")
    out.mkdir(parents=True, exist_ok=True)
    path = _acquire(out)
    try:
        yield path
    finally:
        if _holder(path) == (socket.gethostname(), os.getpid()):
            path.unlink(missing_ok=True)
