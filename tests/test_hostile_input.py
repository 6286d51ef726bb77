"""Hostile or careless input: clear errors, never a crash, a hang or code from a file."""

from __future__ import annotations

import pytest
import torch

import delayprop as dp
from delayprop.training.io import load_checkpoint, save_checkpoint


def _plain_spikes(units: list[int], n_units: int = 2) -> dp.Spikes:
    """A batch from the plain constructor, which trusts its arguments."""
    n = len(units)
    times = torch.arange(1, n + 1, dtype=torch.float32)
    return dp.Spikes(times, torch.tensor(units, dtype=torch.int32), torch.tensor([0, n]), n_units,
                     30.0)  # fmt: skip

@pytest.mark.parametrize("dt", [1.0, None])
@pytest.mark.parametrize("units", [[0, 10**8], [0, 2], [-1, 0]])
def test_unit_index_out_of_range_is_an_error_not_a_segfault(dt, units):
    layer = dp.LIF(2, 3, dt=dt)
    with pytest.raises(ValueError, match="unit index out of range"):
        layer(_plain_spikes(units))

@pytest.mark.parametrize("dt", [1.0, None])
def test_readout_checks_unit_indices_too(dt):
    readout = dp.LIReadout(2, 1, dt=dt, sample_dt=None if dt else 1.0)
    with pytest.raises(ValueError, match="unit index out of range"):
        readout(_plain_spikes([0, 5]))

@pytest.mark.parametrize("bad", [float("nan"), -1.0, float("inf")])
def test_plain_spikes_with_bad_times_are_rejected_by_both_engines(bad):
    spikes = dp.Spikes(torch.tensor([1.0, bad]), torch.tensor([0, 1], dtype=torch.int32),
                       torch.tensor([0, 2]), 2, 30.0)  # fmt: skip
    for dt in (1.0, None):
        with pytest.raises(ValueError, match="spike times"):
            dp.LIF(2, 3, dt=dt)(spikes)

def test_inconsistent_offsets_are_rejected():
    spikes = dp.Spikes(torch.tensor([1.0, 2.0]), torch.tensor([0, 1], dtype=torch.int32),
                       torch.tensor([0, 5]), 2, 30.0)  # fmt: skip
    with pytest.raises(ValueError, match="offsets"):
        dp.LIF(2, 3, dt=1.0)(spikes)

class _Payload:
    """Pickles to a call of ``exec``: loading it would run code."""

    def __reduce__(self):
        return (exec, ("import pathlib; pathlib.Path('PWNED').write_text('x')",))

def test_checkpoint_with_pickled_code_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "best.pt"
    torch.save({"model": {}, "payload": _Payload()}, path)
    with pytest.raises(ValueError, match="not loaded"):
        load_checkpoint(path)
    assert not (tmp_path / "PWNED").exists()

def test_checkpoints_written_by_delayprop_load_safely(tmp_path):
    state = {"model": {"w": torch.ones(2)}, "rng": {"state": {"state": 2**100, "inc": 3}},
             "history": [{"loss": 0.5, "acc": [0.1, 0.2]}], "best": None}  # fmt: skip
    save_checkpoint(tmp_path / "c.pt", state)
    back = load_checkpoint(tmp_path / "c.pt")
    assert back["rng"] == state["rng"] and back["history"] == state["history"]
    assert torch.equal(back["model"]["w"], state["model"]["w"])
    assert back["best"] is None
