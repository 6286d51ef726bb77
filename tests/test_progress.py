"""Training progress: live bars on a terminal, plain grep-able lines anywhere else."""

from __future__ import annotations

import io
import os
import re
import sys

import numpy as np
import pytest

from delayprop.cli import main
from delayprop.config import load_config
from delayprop.data import load_dataset
from delayprop.training import Splits, Trainer
from delayprop.training.progress import (
    BarProgress,
    BatchStats,
    LineProgress,
    make_progress,
)

EPOCH_LINE = re.compile(
    r"^epoch (\d+)/(\d+): loss (\S+) train (\S+) val_loss (\S+) val (\S+) "
    r"spikes/neuron (\S+) lr (\S+) (\S+) s (\d+) samples/s$"
)
BATCH_LINE = re.compile(
    r"^epoch (\d+)/(\d+) batch (\d+)/(\d+): loss (\S+) train (\S+) spikes/neuron (\S+) "
    r"lr (\S+) (\S+) s$"
)


class Terminal(io.StringIO):
    """A text stream that says it is a terminal (tqdm then draws live bars into it)."""

    def isatty(self) -> bool:
        return True


def _tiny_run(epochs: int = 2, max_batches: int = 3):
    cfg = load_config("yinyang", [f"train.epochs={epochs}", "model.dt=0.2",
                                  "train.batch_size=20", f"train.max_batches={max_batches}"])
    opts = cfg.data.options
    train = load_dataset("yinyang", "train", **opts)
    val = load_dataset("yinyang", "validation", **opts)
    splits = Splits(train.subset(np.arange(60)), val.subset(np.arange(40)),
                    val.subset(np.arange(40, 80)))  # fmt: skip
    return cfg, splits


def test_auto_mode_draws_bars_on_a_real_terminal_and_lines_on_a_file(tmp_path):
    main_fd, child_fd = os.openpty()
    try:
        with open(child_fd, "w", closefd=False) as tty:
            assert isinstance(make_progress("auto", tty), BarProgress)
    finally:
        os.close(main_fd)
        os.close(child_fd)
    with open(tmp_path / "log.txt", "w") as f:
        assert isinstance(make_progress("auto", f), LineProgress)
    assert isinstance(make_progress("auto", io.StringIO()), LineProgress)
    assert isinstance(make_progress("bars", io.StringIO()), BarProgress)
    assert isinstance(make_progress("lines", Terminal()), LineProgress)


def test_bad_progress_settings_are_errors():
    with pytest.raises(ValueError, match="progress mode must be one of"):
        make_progress("fancy")
    with pytest.raises(ValueError, match="progress interval"):
        LineProgress(interval=-1.0)


def test_redirected_training_writes_one_plain_line_per_epoch_with_the_history_numbers(
    monkeypatch,
):
    log = io.StringIO()  # not a terminal, as a file, pipe or CI log
    monkeypatch.setattr(sys, "stderr", log)
    cfg, splits = _tiny_run(epochs=3)
    result = Trainer(cfg, splits=splits).fit()
    text = log.getvalue()
    assert "\r" not in text and "\x1b" not in text  # no redraws, no cursor movement
    lines = text.splitlines()
    assert lines[0].startswith("yinyang: 60 train / 40 validation / 40 test samples")
    assert lines[-1].startswith(f"selected epoch {result['best_epoch']}: train ")
    epoch_lines = [EPOCH_LINE.match(line) for line in lines[1:-1]]
    assert all(epoch_lines) and len(epoch_lines) == 3
    for m, row in zip(epoch_lines, result["history"], strict=True):
        assert (int(m[1]), int(m[2])) == (row["epoch"], 3)
        assert float(m[3]) == pytest.approx(row["train_loss"], abs=6e-5)
        assert float(m[4]) == pytest.approx(row["train_accuracy"], abs=6e-5)
        assert float(m[5]) == pytest.approx(row["validation_loss"], abs=6e-5)
        assert float(m[6]) == pytest.approx(row["validation_accuracy"], abs=6e-5)
        assert float(m[7]) == pytest.approx(row["spikes_per_neuron"][0], abs=0.06)
        assert float(m[8]) == pytest.approx(row["lr"], rel=5e-3)  # 3 significant digits


def test_terminal_training_draws_live_bars_and_no_epoch_lines(monkeypatch):
    screen = Terminal()
    monkeypatch.setattr(sys, "stderr", screen)
    cfg, splits = _tiny_run(epochs=2)
    Trainer(cfg, splits=splits).fit()
    text = screen.getvalue()
    assert "\r" in text  # bars redraw in place
    assert re.search(r"epochs: 100%\|.*\| 2/2", text)
    assert re.search(r"epoch 1: +100%\|.*\| 3/3 .*acc=.*loss=.*lr=.*spk=", text)
    assert not any(EPOCH_LINE.match(line) for line in text.replace("\r", "\n").splitlines())


def test_long_epochs_write_batch_lines_at_the_interval():
    log = io.StringIO()
    ticks = iter([0.0, 4.0, 11.0, 15.0, 25.0, 30.0])  # epoch start, then batches 1 to 5
    progress = LineProgress(log, interval=10.0, clock=lambda: next(ticks))
    progress.begin(epochs=5, done=0, n_batches=6)
    progress.start_epoch(2)
    for b in range(1, 7):
        progress.batch(BatchStats(b, 6, loss=1.0 / b, accuracy=0.1 * b,
                                  spikes_per_neuron=[1.25, 0.5], lr=0.005))  # fmt: skip
    lines = log.getvalue().splitlines()
    # clock 11 s (batch 2) and 25 s (batch 4) are >= 10 s after the last line; the last batch
    # (6) never writes one, as the epoch line follows
    assert [BATCH_LINE.match(line)[3] for line in lines] == ["2", "4"]
    assert lines[0] == "epoch 2/5 batch 2/6: loss 0.5000 train 0.2000 spikes/neuron 1.2/0.5 " \
                       "lr 0.005 11.0 s"  # fmt: skip


def test_trainer_writes_batch_lines_in_lines_mode_but_not_when_quiet():
    cfg, splits = _tiny_run(epochs=2, max_batches=3)
    log = io.StringIO()
    Trainer(cfg, splits=splits, progress=LineProgress(log, interval=0.0)).fit()
    batch_lines = [BATCH_LINE.match(line) for line in log.getvalue().splitlines()]
    assert [(m[1], m[3], m[4]) for m in batch_lines if m] == [
        ("1", "1", "3"), ("1", "2", "3"), ("2", "1", "3"), ("2", "2", "3")
    ]  # fmt: skip
    quiet = io.StringIO()
    Trainer(cfg, splits=splits, progress=make_progress("quiet", quiet)).fit()
    lines = quiet.getvalue().splitlines()
    assert not any(BATCH_LINE.match(line) for line in lines)
    assert sum(bool(EPOCH_LINE.match(line)) for line in lines) == 2


def test_cli_progress_lines_on_a_terminal(tmp_path, monkeypatch):
    screen = Terminal()
    monkeypatch.setattr(sys, "stderr", screen)
    out = tmp_path / "run"
    code = main(["train", "sequence", "--out", str(out), "--progress", "lines",
                 "--set", "train.epochs=2"])  # fmt: skip
    assert code == 0
    text = screen.getvalue()
    assert "\r" not in text
    assert sum(bool(EPOCH_LINE.match(line)) for line in text.splitlines()) == 2
