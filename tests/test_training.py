"""Learning tests and the training application (run directory, resume, CLI)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from delayprop.cli import main
from delayprop.config import config_to_dict, load_config
from delayprop.data import load_dataset
from delayprop.training import Splits, Trainer
from delayprop.training.io import prepare_run_dir

TIMING_KEYS = {"epoch_seconds", "samples_per_second"}


def _small_yinyang(n_train: int = 300) -> Splits:
    opts = load_config("yinyang").data.options
    train = load_dataset("yinyang", "train", **opts)
    val = load_dataset("yinyang", "validation", **opts)
    return Splits(train.subset(np.arange(n_train)), val.subset(np.arange(200)),
                  val.subset(np.arange(200, 400)))  # fmt: skip


def test_sequence_task_reaches_100_percent_from_the_worst_start():
    cfg = load_config("sequence")
    trainer = Trainer(cfg, quiet=True)
    assert trainer.evaluate(trainer.data.train)["accuracy"] == 0.0  # worst start: both wrong
    result = trainer.fit()
    updates = next(r["epoch"] for r in result["history"] if r["validation_accuracy"] == 1.0)
    assert updates <= 20
    assert result["test_accuracy"] == 1.0
    delays = trainer.model[0].delays().detach()
    # each output learnt to delay the early input of its own class towards the late one
    assert delays[0, 0] > delays[0, 1] and delays[1, 1] > delays[1, 0]


def test_yinyang_learns_well_above_chance():
    cfg = load_config("yinyang", ["train.epochs=3", "model.dt=0.1", "train.batch_size=50"])
    trainer = Trainer(cfg, quiet=True, splits=_small_yinyang(600))
    result = trainer.fit()
    assert result["validation_accuracy"] > 0.6  # chance is 1/3
    assert all(np.isfinite(r["train_loss"]) for r in result["history"])
    assert trainer.model[0].delay.raw.grad is not None


def _strip(history):
    return [{k: v for k, v in row.items() if k not in TIMING_KEYS} for row in history]


@pytest.mark.parametrize("average", ["null", "0.9"])
def test_killed_and_resumed_run_ends_with_the_same_metrics(tmp_path, monkeypatch, average):
    overrides = ["train.epochs=4", "model.dt=0.2", "train.batch_size=60",
                 "train.weight_bump=0.001", f"train.average_decay={average}"]  # fmt: skip
    cfg = load_config("yinyang", overrides)
    splits = _small_yinyang()

    straight = Trainer(cfg, None, quiet=True, splits=splits).fit()

    run = prepare_run_dir(tmp_path / "run", config_to_dict(cfg), resume=False, force=False)
    original_write = Trainer._write

    def write_then_die(self, final=None):
        original_write(self, final)
        if self.epoch == 2 and final is None:
            raise KeyboardInterrupt  # the process is killed right after epoch 2

    monkeypatch.setattr(Trainer, "_write", write_then_die)
    with pytest.raises(KeyboardInterrupt):
        Trainer(cfg, run, quiet=True, splits=splits).fit()
    monkeypatch.setattr(Trainer, "_write", original_write)
    assert json.loads((run / "metrics.json").read_text())["epochs_completed"] == 2

    resumed = Trainer(cfg, run, quiet=True, splits=splits)
    resumed.resume()
    assert resumed.epoch == 2
    final = resumed.fit()
    assert _strip(final["history"]) == _strip(straight["history"])
    for key in ("train_accuracy", "validation_accuracy", "test_accuracy", "best_epoch"):
        assert final[key] == straight[key]


def test_parameter_average_is_evaluated_and_training_goes_on_with_the_raw_parameters(
    monkeypatch,
):
    base = ["train.epochs=2", "model.dt=0.2", "train.batch_size=100"]
    splits = _small_yinyang()
    plain = Trainer(load_config("yinyang", base), quiet=True, splits=splits).fit()
    # decay 0: the average is the parameters themselves, so nothing changes
    zero = Trainer(load_config("yinyang", [*base, "train.average_decay=0"]), quiet=True,
                   splits=splits).fit()  # fmt: skip
    assert _strip(zero["history"]) == _strip(plain["history"])

    decay = 0.7
    trainer = Trainer(load_config("yinyang", [*base, f"train.average_decay={decay}"]),
                      quiet=True, splits=splits)  # fmt: skip
    snapshots = [[p.detach().clone() for p in trainer.model.parameters()]]
    update = Trainer._update_average

    def record(self):
        snapshots.append([p.detach().clone() for p in self.model.parameters()])
        update(self)

    monkeypatch.setattr(Trainer, "_update_average", record)
    validated = []
    evaluate = Trainer.evaluate

    def evaluate_and_keep(self, ds):
        validated.append([p.detach().clone() for p in self.model.parameters()])
        return evaluate(self, ds)

    monkeypatch.setattr(Trainer, "evaluate", evaluate_and_keep)
    history = trainer.fit()["history"]
    expected = snapshots[0]
    for snap in snapshots[1:]:  # the moving average, written out independently
        expected = [decay * e + (1 - decay) * s for e, s in zip(expected, snap)]
    for got, want in zip(validated[1], expected):  # validation after epoch 2 = last step
        torch.testing.assert_close(got, want)
    # training went on from the raw parameters: the last raw snapshot is not the average
    assert not torch.allclose(snapshots[-1][0], expected[0])
    # the selected state is an averaged one
    best = trainer.best_state
    chosen = validated[history.index(max(history, key=lambda r: r["validation_accuracy"]))]
    for name, value in zip(dict(trainer.model.named_parameters()), chosen):
        torch.testing.assert_close(best[name], value)


def test_cli_train_writes_a_complete_run_directory(tmp_path, capsys):
    out = tmp_path / "seq"
    assert main(["train", "sequence", "--out", str(out), "--quiet"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["test_accuracy"] == 1.0
    assert {"train_accuracy", "validation_accuracy", "history", "best_epoch"} <= set(metrics)
    assert len(metrics["history"]) == 20
    for name in ("config.yaml", "metrics.csv", "checkpoint.pt", "best.pt"):
        assert (out / name).exists(), name
    header = (out / "metrics.csv").read_text().splitlines()[0]
    assert "validation_accuracy" in header and "train_loss" in header

    # an existing run directory is refused without --resume / --force
    assert main(["train", "sequence", "--out", str(out), "--quiet"]) == 2
    assert "exists and is not empty" in capsys.readouterr().err
    # resuming with a different configuration is refused
    code = main(["train", "sequence", "--out", str(out), "--resume", "--quiet",
                 "--set", "train.epochs=25"])  # fmt: skip
    assert code == 2 and "config differs" in capsys.readouterr().err
    # --force starts afresh
    assert main(["train", "sequence", "--out", str(out), "--force", "--quiet"]) == 0


def test_cli_seeds_write_a_summary(tmp_path):
    out = tmp_path / "seeds"
    code = main(["train", "sequence", "--out", str(out), "--quiet", "--seeds", "0,1",
                 "--set", "train.epochs=8"])  # fmt: skip
    assert code == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["seeds"] == [0, 1]
    assert summary["test_accuracy"]["values"] == [1.0, 1.0]
    assert (out / "seed1" / "metrics.json").exists()


def test_cli_reports_bad_config(tmp_path, capsys):
    code = main(["train", "yinyang", "--out", str(tmp_path / "x"), "--set", "train.lrr=1"])
    assert code == 2
    assert "unknown key train.lrr" in capsys.readouterr().err


def test_regularizer_is_attached_to_hidden_layers():
    cfg = load_config("yinyang", ["train.reg_target=2.0", "train.reg_strength_upper=1e-3"])
    trainer = Trainer(cfg, quiet=True, splits=_small_yinyang(10))
    hidden, out = trainer.model[0], trainer.model[1]
    assert hidden.regularizer is not None and hidden.regularizer.target == 2.0
    assert out.regularizer is None
    assert isinstance(trainer.optimizer.param_groups[1]["lr"], float)
    assert torch.is_tensor(hidden.weight)


def test_weight_bump_raises_the_weights_of_silent_neurons_only():
    """The trainer reads the spike counts of the last forward pass from its SpikeRecorder."""
    cfg = load_config("yinyang", ["train.weight_bump=0.5", "train.lr=0", "train.delay_lr=0",
                                  "train.max_batches=1", "train.epochs=1", "train.batch_size=10"])
    trainer = Trainer(cfg, quiet=True, splits=_small_yinyang(10))
    trainer.model[0].weight.data[:5] = -10.0  # five hidden neurons that cannot fire
    before = [layer.weight.detach().clone() for layer in trainer.model]
    stats = trainer._train_epoch()  # one batch; the bump follows its step
    assert stats["silent_neurons"][0] >= 5
    for layer, w0, counts in zip(trainer.model, before, trainer.spike_recorder.counts):
        silent = counts == 0
        assert torch.equal(layer.weight.detach()[silent], w0[silent] + 0.5)
        assert torch.equal(layer.weight.detach()[~silent], w0[~silent])
    assert bool((trainer.spike_recorder.counts[0][:5] == 0).all())


def test_eval_and_plot_commands(tmp_path, capsys):
    out = tmp_path / "yy"
    code = main(["train", "yinyang", "--out", str(out), "--quiet", "--set", "train.epochs=1",
                 "train.max_batches=3", "model.dt=0.2"])  # fmt: skip
    assert code == 0
    capsys.readouterr()
    assert main(["eval", str(out), "--split", "validation"]) == 0
    result = json.loads(capsys.readouterr().out)
    stored = json.loads((out / "metrics.json").read_text())
    assert result["accuracy"] == pytest.approx(stored["validation_accuracy"])
    assert (out / "eval_validation_best.json").exists()
    assert main(["plot", str(out), "--samples", "8", "--format", "png"]) == 0
    names = sorted(p.name for p in (out / "plots").iterdir())
    assert names == ["delays.png", "learning_curves.png", "raster.png", "spike_counts.png"]
    assert all((out / "plots" / n).stat().st_size > 5000 for n in names)
    assert main(["plot", str(tmp_path / "nothing")]) == 2


def test_load_run_gives_the_selected_model(tmp_path):
    from delayprop.training.runs import load_run

    out = tmp_path / "seq"
    assert main(["train", "sequence", "--out", str(out), "--quiet"]) == 0
    model, cfg = load_run(out)
    initial, _ = load_run(out, "initial")
    assert cfg.task == "sequence" and not model.training
    assert not torch.equal(model[0].delays(), initial[0].delays())
    with pytest.raises(ValueError, match="which must be"):
        load_run(out, "worst")


def test_recurrent_delays_learn_a_memory_task_a_network_without_delays_cannot():
    """Sequence task with a 100 ms gap (tau_mem 20 ms): learnt from delays of 0 ms (chance)
    to 100 % with learnable input and recurrent delays.  A feed-forward network without delays
    keeps only a residual of exp(-100 / 20) of the first response when the second arrives: it
    can tip the sign of the output difference (accuracy is no test) but its cross-entropy stays
    near chance, ln 2 = 0.69.  (A recurrent network without delays can hold the first spike in
    reverberating activity, so it is no negative control.)"""
    with_delays = Trainer(load_config("sequence_memory"), quiet=True).fit()
    without = Trainer(load_config("sequence_memory", ["model.max_delay=0",
                                                      "model.recurrent=false"]), quiet=True).fit()
    assert with_delays["history"][0]["validation_accuracy"] <= 0.6
    assert with_delays["test_accuracy"] >= 0.95
    assert min(e["validation_loss"] for e in with_delays["history"]) < 0.3
    assert min(e["validation_loss"] for e in without["history"]) > 0.5
