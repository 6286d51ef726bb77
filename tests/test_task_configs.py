"""End to end: every built-in task config trains a few batches on data files written in the real
on-disk formats (the downloads are not available here)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from delayprop.cli import main
from delayprop.config import load_config
from delayprop.data.fixtures import (
    random_braille,
    random_heidelberg,
    write_braille_pickle,
    write_heidelberg_h5,
)

# shrink the networks, keep everything else (recurrence, delays, augmentation, regulariser)
SMALL = ["train.epochs=2", "train.max_batches=2", "train.batch_size=8", "train.eval_batch_size=16"]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("data")
    for stem, n, classes, seed in [("shd_train", 40, 20, 0), ("shd_test", 12, 20, 1),
                                   ("ssc_train", 24, 35, 2), ("ssc_valid", 12, 35, 3),
                                   ("ssc_test", 12, 35, 4)]:  # fmt: skip
        trains = random_heidelberg(n, classes, seed=seed, n_speakers=4, mean_spikes=200)
        write_heidelberg_h5(folder / f"{stem}.h5", trains, meta_info=stem.startswith("shd"))
    letters, events = random_braille(3, seed=5)
    write_braille_pickle(folder / "data_braille_letters_th_1.pkl", letters, events, "records")
    return folder


CASES = {
    "shd_rec": ["model.hidden=[24]", "data.augment=[{kind: shift, max_shift: 40}, "
                "{kind: blend, p: 0.5, n: 8}]"],
    "shd_ff": ["model.hidden=[24]"],
    "shd_adlif": ["model.hidden=[16, 16]"],
    "ssc": ["model.hidden=[16, 16]", "model.weight_init=[[0.03,0.01],[0.02,0.03],[0,0.03]]"],
    "braille": ["model.hidden=[16, 16]", "model.weight_init=[[0.03,0.01],[0.02,0.03],[0,0.03]]"],
}


@pytest.mark.parametrize("task", sorted(CASES))
def test_published_task_trains_on_fixture_files(task, data_dir, tmp_path):
    cfg = load_config(task)  # the unmodified config is valid
    out = tmp_path / task
    code = main(["train", task, "--out", str(out), "--quiet", "--data-dir", str(data_dir),
                 "--set", *SMALL, *CASES[task]])  # fmt: skip
    assert code == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert len(metrics["history"]) == 2
    row = metrics["history"][-1]
    assert np.isfinite(row["train_loss"]) and row["spikes_per_neuron"]
    assert 0.0 <= metrics["test_accuracy"] <= 1.0
    assert cfg.data.name in ("shd", "ssc", "braille")


def test_missing_data_set_gives_the_download_instructions(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("DELAYPROP_DATA", raising=False)
    code = main(["train", "shd_rec", "--out", str(tmp_path / "r"), "--quiet",
                 "--data-dir", str(tmp_path / "empty")])  # fmt: skip
    assert code == 2
    err = capsys.readouterr().err
    assert "delayprop data download shd" in err


@pytest.mark.parametrize("task", ["digits", "yinyang_nodelay", "yinyang_adlif"])
def test_offline_tasks_train(task, tmp_path):
    out = tmp_path / task
    assert main(["train", task, "--out", str(out), "--quiet", "--set", *SMALL]) == 0
    assert json.loads((out / "metrics.json").read_text())["epochs_completed"] == 2
