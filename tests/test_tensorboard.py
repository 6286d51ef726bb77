"""Optional TensorBoard logging, checked by reading the event files back."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from delayprop.cli import main
from delayprop.config import load_config
from delayprop.data import load_dataset
from delayprop.training import Splits, Trainer
from delayprop.training.io import load_checkpoint


@pytest.fixture
def reader():
    """TensorBoard's event file reader (the test is skipped without the tensorboard extra)."""
    return pytest.importorskip("tensorboard.backend.event_processing.event_accumulator",
                               reason="the tensorboard extra is not installed")  # fmt: skip


def _events(reader, log_dir):
    acc = reader.EventAccumulator(str(log_dir), size_guidance={"scalars": 0, "histograms": 0})
    acc.Reload()
    return acc


def _scalars(acc, tag: str) -> list[tuple[int, float]]:
    return [(e.step, e.value) for e in acc.Scalars(tag)]


def test_event_file_holds_the_epoch_metrics_rates_spikes_and_histograms(tmp_path, reader):
    overrides = ["train.epochs=3", "model.dt=0.2", "train.batch_size=20", "train.max_batches=3",
                 "train.lr=0.005", "train.delay_lr=0.5", "train.lr_decay=0.5"]  # fmt: skip
    cfg = load_config("yinyang", overrides)
    opts = cfg.data.options
    train = load_dataset("yinyang", "train", **opts)
    val = load_dataset("yinyang", "validation", **opts)
    splits = Splits(train.subset(np.arange(60)), val.subset(np.arange(40)),
                    val.subset(np.arange(40, 80)))  # fmt: skip
    run = tmp_path / "run"
    run.mkdir()
    result = Trainer(cfg, run, quiet=True, splits=splits, tensorboard=run / "tb").fit()
    acc = _events(reader, run / "tb")
    history = result["history"]
    steps = [1, 2, 3]

    def expect(tag: str, values: list[float]) -> None:
        got = _scalars(acc, tag)
        assert [s for s, _ in got] == steps, tag
        assert [v for _, v in got] == pytest.approx(values, rel=1e-6), tag

    expect("loss/train", [r["train_loss"] for r in history])
    expect("loss/validation", [r["validation_loss"] for r in history])
    expect("accuracy/train", [r["train_accuracy"] for r in history])
    expect("accuracy/validation", [r["validation_accuracy"] for r in history])
    expect("lr/weights", [0.005, 0.0025, 0.00125])  # lr_decay 0.5 per epoch
    expect("lr/delays", [0.5, 0.25, 0.125])
    expect("spikes_per_neuron/hidden0", [r["spikes_per_neuron"][0] for r in history])
    expect("silent_neurons/hidden0", [r["silent_neurons"][0] for r in history])
    final = _scalars(acc, "final/test_accuracy")
    assert final == [(3, pytest.approx(result["test_accuracy"], rel=1e-6))]

    # the last epoch's histograms describe the model of the last checkpoint
    state = load_checkpoint(run / "checkpoint.pt")["model"]
    tags = set(acc.Tags()["histograms"])
    assert tags == {"delays/0.delay", "weights/0.weight", "weights/1.weight"}
    for tag, key in (("delays/0.delay", "0.delay.raw"), ("weights/0.weight", "0.weight"),
                     ("weights/1.weight", "1.weight")):  # fmt: skip
        events = acc.Histograms(tag)
        assert [e.step for e in events] == steps
        h = events[-1].histogram_value
        values = state[key].double()
        assert h.num == values.numel()
        assert (h.min, h.max) == pytest.approx((float(values.min()), float(values.max())))
        assert h.sum == pytest.approx(float(values.sum()), rel=1e-6, abs=1e-9)
        assert sum(h.bucket) == values.numel()
    delays = state["0.delay.raw"]
    assert float(delays.max()) > 0  # the delays moved from their initial 0 ms


def test_cli_tensorboard_writes_under_the_run_directory(tmp_path, reader):
    out = tmp_path / "run"
    assert main(["train", "sequence", "--out", str(out), "--quiet", "--tensorboard",
                 "--set", "train.epochs=2"]) == 0  # fmt: skip
    acc = _events(reader, out / "tensorboard")
    assert [s for s, _ in _scalars(acc, "accuracy/train")] == [1, 2]
    assert "delays/0.delay" in acc.Tags()["histograms"]


def test_cli_tensorboard_without_the_package_is_a_clear_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # import tensorboard now fails
    out = tmp_path / "run"
    code = main(["train", "sequence", "--out", str(out), "--quiet", "--tensorboard"])
    assert code == 2
    err = capsys.readouterr().err
    assert "--tensorboard" in err and "pip install" in err and "tensorboard" in err
    assert not out.exists()  # nothing started
