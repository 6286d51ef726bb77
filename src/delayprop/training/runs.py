"""Load a trained network back from its run directory."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ..config import RunConfig, config_from_dict
from .io import RUN_FILES, load_checkpoint, require_keys
from .model import build_network

__all__ = ["load_run", "CHECKPOINTS"]

#: which saved state to load: the selected model, the last epoch, or the initial network
CHECKPOINTS = {"best": RUN_FILES["best"], "last": RUN_FILES["checkpoint"],
               "initial": RUN_FILES["initial"]}  # fmt: skip


def load_run(run_dir: str | Path, which: str = "best",
             device: torch.device | str = "cpu") -> tuple[nn.Module, RunConfig]:  # fmt: skip
    """(model in eval mode, config) of the run in ``run_dir``.

    ``which``: ``"best"`` (the model selected on the validation split), ``"last"`` (the latest
    checkpoint) or ``"initial"`` (the network before training).
    """
    if which not in CHECKPOINTS:
        raise ValueError(f"which must be one of {sorted(CHECKPOINTS)}, got {which!r}")
    run_dir = Path(run_dir)
    path = run_dir / CHECKPOINTS[which]
    state = load_checkpoint(path)
    require_keys(state, ("config", "n_in", "n_out", "model"), f"checkpoint {path}")
    cfg = config_from_dict(state["config"])
    model = build_network(cfg.model, state["n_in"], state["n_out"])
    try:
        model.load_state_dict(state["model"])
    except (RuntimeError, KeyError) as err:
        raise ValueError(f"checkpoint {path} does not fit its own config: {err}") from None
    return model.to(device).eval(), cfg
