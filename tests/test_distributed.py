"""Data parallelism: two gloo processes under torchrun == one process, same global batch."""

from __future__ import annotations

import json
import subprocess
import sys

import torch

ARGS = ["train", "yinyang", "--quiet", "--set", "train.epochs=2", "train.max_batches=3",
        "model.dt=0.2", "train.batch_size=64", "train.weight_bump=0.001"]  # fmt: skip


def _run(cmd: list[str]) -> None:
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr


def test_two_gloo_processes_match_one_process(tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    _run([sys.executable, "-m", "delayprop", *ARGS, "--out", str(one)])
    _run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
          "-m", "delayprop", *ARGS, "--out", str(two)])  # fmt: skip
    a = torch.load(one / "checkpoint.pt", weights_only=False)["model"]
    b = torch.load(two / "checkpoint.pt", weights_only=False)["model"]
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-5, atol=1e-5, msg=key)
    assert float((a["0.delay.raw"] - torch.zeros(1)).abs().sum()) > 0  # delays were trained
    ma = json.loads((one / "metrics.json").read_text())
    mb = json.loads((two / "metrics.json").read_text())
    for key in ("train_accuracy", "validation_accuracy", "test_accuracy"):
        assert abs(ma[key] - mb[key]) < 2e-3, key
