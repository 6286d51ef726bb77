"""Run directories and atomic files: a killed run never leaves a half-written result."""

from __future__ import annotations

import csv
import io
import json
import math
import os
import pickle
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
import yaml

__all__ = [
    "atomic_write_bytes",
    "atomic_write_text",
    "write_json",
    "write_csv",
    "save_checkpoint",
    "load_checkpoint",
    "prepare_run_dir",
    "require_keys",
    "RUN_FILES",
]

#: files of a run directory
RUN_FILES = {
    "config": "config.yaml",
    "metrics": "metrics.json",
    "csv": "metrics.csv",
    "checkpoint": "checkpoint.pt",
    "best": "best.pt",
    "initial": "initial.pt",
}


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file in the same directory and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def write_json(path: Path, values: dict[str, Any]) -> None:
    atomic_write_text(path, json.dumps(_json_safe(values), indent=2) + "\n")


def write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    """One row per epoch; columns are the union of the keys, lists flattened as k_0, k_1, ..."""
    flat = []
    for row in rows:
        out = {}
        for k, v in row.items():
            if isinstance(v, (list, tuple)):
                out.update({f"{k}_{i}": x for i, x in enumerate(v)})
            else:
                out[k] = v
        flat.append(out)
    columns: list[str] = []
    for row in flat:
        columns += [k for k in row if k not in columns]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns)
    writer.writeheader()
    writer.writerows(flat)
    atomic_write_text(path, buf.getvalue())


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    buf = io.BytesIO()
    torch.save(state, buf)
    atomic_write_bytes(path, buf.getvalue())


def load_checkpoint(path: Path) -> dict[str, Any]:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        # weights_only: tensors, containers and plain values only; a pickled object that would
        # run code on loading is refused (every file delayprop writes loads this way).
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise ValueError(
            f"checkpoint {path} holds objects other than tensors and plain values; it was not "
            "written by delayprop and is not loaded (loading it could run code from the file): "
            f"{str(err).splitlines()[0]}"
        ) from None
    except Exception as err:  # torch raises several types for damaged files
        raise ValueError(f"checkpoint {path} is damaged or not a checkpoint: {err}") from None


#: files of a run that never completed an epoch: a plain rerun may replace them
_STARTED_ONLY = {RUN_FILES["config"], RUN_FILES["initial"]}


def _remove_orphans(out: Path) -> None:
    """Delete temporary files of atomic writes that a killed process left behind
    (``.NAME.*.tmp``); call only while holding the directory's lock."""
    for tmp in out.glob(".*.tmp"):
        if tmp.is_file():
            tmp.unlink(missing_ok=True)


def _stored_config(cfg_path: Path) -> Any:
    try:
        return yaml.safe_load(cfg_path.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        raise ValueError(
            f"cannot resume: {cfg_path} is corrupt ({str(err).splitlines()[0]}); restore it or "
            "start a new run"
        ) from None


def require_keys(state: Any, keys: tuple[str, ...], what: str) -> None:
    """``ValueError`` naming the missing entries unless ``state`` is a dict holding ``keys``."""
    if not isinstance(state, dict):
        raise ValueError(f"{what} is not a dict of saved state (got {type(state).__name__})")
    missing = [k for k in keys if k not in state]
    if missing:
        raise ValueError(f"{what} lacks {', '.join(missing)}: not written by delayprop or "
                         "from an incompatible version")  # fmt: skip


def prepare_run_dir(out: Path, config: dict[str, Any], *, resume: bool, force: bool) -> Path:
    """Create (or reuse, with ``resume``) a run directory and store the config in it.

    Refuses an existing non-empty directory unless ``resume`` (the stored config must then
    match) or ``force`` (the directory is emptied; only a run directory, one that holds
    ``config.yaml``).  A directory holding only what a failed
    start leaves (``config.yaml``, ``initial.pt``: no epoch completed) is reused by a plain
    start.  Orphan temporary files of killed writes are removed.  Hidden files (the lock of
    ``lock.run_lock``) are kept.  Call it while holding that lock.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"--out {out} exists and is not a directory")
    cfg_path = out / RUN_FILES["config"]
    text = yaml.safe_dump(config, sort_keys=False)
    if out.is_dir():
        _remove_orphans(out)
    if resume:
        if not cfg_path.exists():
            raise FileNotFoundError(f"cannot resume: {out} holds no run ({cfg_path} missing)")
        if _stored_config(cfg_path) != yaml.safe_load(text):
            raise ValueError(
                f"cannot resume {out}: its config differs from the requested one "
                "(resume with the same task and overrides, or start a new run)"
            )
        return out
    held = [p for p in out.iterdir() if not p.name.startswith(".")] if out.is_dir() else []
    if held and not {p.name for p in held} <= _STARTED_ONLY:
        if not force:
            raise FileExistsError(
                f"run directory {out} exists and is not empty; use --resume to continue it "
                "or --force to overwrite it"
            )
        if not cfg_path.exists():  # --force empties run directories only, never e.g. "."
            raise FileExistsError(
                f"{out} holds files but no {RUN_FILES['config']}: it is not a run directory, "
                "and --force does not empty it; choose another --out"
            )
    for p in held:
        shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(cfg_path, text)
    return out
