"""Results independent of the number of threads: the same bits on 1 and 2 Numba threads."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numba
import pytest
import torch

import delayprop as dp

needs_two = pytest.mark.skipif(
    numba.config.NUMBA_NUM_THREADS < 2, reason="needs at least 2 Numba threads"
)


def _gradients(dt: float | None, backward: str, threads: int, precise: bool = False
               ) -> list[torch.Tensor]:  # fmt: skip
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        dp.LIF(20, 40, dt=dt, max_delay=8.0, delay_init=(0.0, 8.0),
               weight_init=dp.Normal(0.4, 0.5), recurrent=not precise, backward=backward,
               precise=precise),
        dp.LIReadout(40, 3, dt=dt, max_delay=4.0, delay_init=(0.0, 4.0),
                     sample_dt=None if dt else 0.5, backward=backward, precise=precise),
    )  # fmt: skip
    gen = torch.Generator().manual_seed(1)
    n = 3000
    spikes = dp.Spikes.from_arrays(
        torch.rand(n, generator=gen) * 40.0, torch.randint(0, 20, (n,), generator=gen),
        torch.randint(0, 37, (n,), generator=gen), 37, 20, 40.0,
        dtype=net[0].weight.dtype,
    )  # fmt: skip
    spikes.requires_grad_()
    previous = numba.get_num_threads()
    numba.set_num_threads(threads)
    try:
        net(spikes).square().sum().backward()
    finally:
        numba.set_num_threads(previous)
    return [p.grad.clone() for p in net.parameters()] + [spikes.times.grad.clone()]


@needs_two
@pytest.mark.parametrize(("dt", "backward", "precise"), [
    (0.5, "eventprop", False), (0.5, "eventprop", True), (None, "eventprop", False),
    (None, "timing", False),
])  # fmt: skip
def test_gradients_are_bit_identical_on_one_and_two_threads(dt, backward, precise):
    one = _gradients(dt, backward, 1, precise)
    two = _gradients(dt, backward, 2, precise)
    assert any(bool(g.abs().sum() > 0) for g in one[:-1])
    for a, b in zip(one, two):
        assert torch.equal(a, b)


@needs_two
def test_training_run_is_identical_on_one_and_two_threads(tmp_path):
    args = ["train", "yinyang", "--quiet", "--set", "train.epochs=2", "train.max_batches=4",
            "train.eval_batch_size=500"]  # fmt: skip
    metrics = []
    for threads in (1, 2):
        out = tmp_path / f"t{threads}"
        env = {**os.environ, "NUMBA_NUM_THREADS": str(threads)}
        done = subprocess.run([sys.executable, "-m", "delayprop", *args, "--out", str(out)],
                              capture_output=True, text=True, timeout=600, env=env)  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr
        run = json.loads((out / "metrics.json").read_text())
        for row in run["history"]:  # wall-clock figures are the only thing allowed to differ
            assert row.pop("epoch_seconds") > 0 and row.pop("samples_per_second") > 0
        metrics.append(run)
        state = torch.load(out / "checkpoint.pt", weights_only=True)["model"]
        metrics[-1]["weights"] = {k: v.tolist() for k, v in state.items()}
    assert metrics[0] == metrics[1]
