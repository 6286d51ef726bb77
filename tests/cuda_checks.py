"""CUDA backend == CPU backend: the checks behind tests/test_cuda.py.

Every check builds one problem on the CPU, runs the Numba CPU kernels there and the CUDA kernels
on ``device`` (CPU tensors under numba-cuda's simulator, CUDA tensors on a GPU), and raises
``AssertionError`` unless the spikes are the same and the values agree to rounding.

Run as a script (the simulator needs ``NUMBA_ENABLE_CUDASIM=1`` before numba.cuda is imported),
``python tests/cuda_checks.py [CASE ...]`` runs the simulator cases and prints one line
``RESULTS {case: "ok" | traceback}``.
"""

from __future__ import annotations

import json
import math
import sys
import traceback
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass

import torch

import delayprop as dp
from delayprop import functional, losses
from delayprop.kernels import grid_constants, grid_cpu, precise_host
from delayprop.kernels.precise_host import PreciseGrid
from problems import random_spikes

RESULTS_MARK = "RESULTS "
CONSTS = grid_constants(dt=1.0, tau_mem=20.0, tau_syn=5.0, threshold=1.0)

#: Launch settings that make tiny problems take the general paths: several neurons per thread,
#: several groups per block sum, fewer blocks than samples, block sums in several rounds.
SMALL_LAUNCH = dict(max_threads=4, group=2, max_blocks=2, shared_bytes=64)


def cuda_backend():
    """``delayprop.kernels.grid_cuda``, imported only when a check runs (it needs numba-cuda)."""
    from delayprop.kernels import grid_cuda

    return grid_cuda


def precise_cuda_host():
    """``delayprop.kernels.precise_cuda_host``, imported only when a check runs."""
    from delayprop.kernels import precise_cuda_host

    return precise_cuda_host


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.detach().double().cpu(), b.detach().double().cpu()
    return float((a - b).norm() / max(float(b.norm()), 1e-30))


def tolerance(dtype: torch.dtype) -> float:
    """Relative agreement expected between two summation orders (and, in backward, fused
    multiply-adds on the GPU)."""
    return 1e-10 if dtype == torch.float64 else 1e-4


@contextmanager
def launch(settings: dict | None):
    """Run with ``LaunchConfig(**settings)`` (the defaults for None)."""
    grid_cuda = cuda_backend()
    previous = grid_cuda.set_launch_config(grid_cuda.LaunchConfig(**(settings or {})))
    try:
        yield
    finally:
        grid_cuda.set_launch_config(previous)


@dataclass(frozen=True)
class Problem:
    """One layer call: input spikes as grid steps, weights/delays in kernel layout [in, out]."""

    in_steps: torch.Tensor
    in_units: torch.Tensor
    in_offsets: torch.Tensor
    w_t: torch.Tensor
    d_t: torch.Tensor
    w_rec_t: torch.Tensor
    d_rec_t: torch.Tensor
    n_steps: int

    def to(self, device: torch.device) -> Problem:
        return Problem(*(getattr(self, f).to(device) for f in self._tensors()), self.n_steps)

    @staticmethod
    def _tensors() -> tuple[str, ...]:
        return ("in_steps", "in_units", "in_offsets", "w_t", "d_t", "w_rec_t", "d_rec_t")


def make_problem(
    dtype: torch.dtype, *, batch: int, n_in: int, n_out: int, n_steps: int, per_sample: int,
    max_delay: int, rec_max_delay: int | None = None, w_mean: float = 0.8, seed: int = 0,
    late_inputs: bool = False, empty_sample: bool = False,
) -> Problem:  # fmt: skip
    """Random input (dt = 1 ms) and parameters; ``late_inputs`` adds spikes at and after the
    last step, ``empty_sample`` makes the second sample silent."""
    g = torch.Generator().manual_seed(seed)
    x = random_spikes(batch, n_in, float(n_steps), per_sample, seed, on_grid=1.0)
    trains = [(t.tolist(), u.tolist()) for t, u in x.to_lists()]
    if late_inputs:
        trains[0][0].extend([n_steps - 1.0, n_steps - 0.4, n_steps - 0.2])
        trains[0][1].extend([0, min(1, n_in - 1), n_in - 1])
    if empty_sample and batch > 1:
        trains[1] = ([], [])
    x = dp.Spikes.from_lists(trains, n_in, float(n_steps), dtype=torch.float64)
    w_t = (torch.randn(n_in, n_out, generator=g, dtype=torch.float64) * 0.5 + w_mean).to(dtype)
    d_t = torch.randint(0, max_delay + 1, (n_in, n_out), generator=g, dtype=torch.int32)
    if rec_max_delay is None:
        w_rec_t, d_rec_t = w_t.new_zeros(0), torch.zeros(0, dtype=torch.int32)
    else:
        w_rec_t = (torch.randn(n_out, n_out, generator=g, dtype=torch.float64) * 0.3).to(dtype)
        d_rec_t = torch.randint(0, rec_max_delay + 1, (n_out, n_out), generator=g).int()
    return Problem(
        torch.round(x.times).to(torch.int32), x.units, x.offsets, w_t, d_t, w_rec_t, d_rec_t,
        n_steps,
    )  # fmt: skip


# ----------------------------------------------------------------------------- layer checks
def check_lif(device: torch.device, dtype: torch.dtype, capacity: int,
              tau_adapt: float | None = None, refractory: float = 0.0,
              max_spikes: int | None = None, **sizes) -> None:  # fmt: skip
    """LIF forward and backward (with a spike-count kick) on both backends; with ``tau_adapt``
    (ms) an adaptation current with random jumps b > 0, else with the gradients of the time
    constants; with a ``refractory`` period (ms, dt = 1 ms) and spike limit ``max_spikes``
    (None: none) if given."""
    p = make_problem(dtype, **sizes)
    q = p.to(device)
    rec = (p.w_rec_t, p.d_rec_t)
    consts = grid_constants(dt=1.0, tau_mem=20.0, tau_syn=5.0, threshold=1.0,
                            refractory=refractory, max_spikes=max_spikes, tau_adapt=tau_adapt)
    n_out = p.w_t.shape[1]
    jumps = None
    if tau_adapt is not None:
        g_b = torch.Generator().manual_seed(7)
        jumps = (0.05 + 0.4 * torch.rand(n_out, generator=g_b, dtype=torch.float64)).to(dtype)
    jumps_dev = None if jumps is None else jumps.to(device)
    fwd_cpu = grid_cpu.lif_forward(
        p.in_steps, p.in_units, p.in_offsets, p.w_t, p.d_t, *rec, p.n_steps, consts, capacity,
        jumps,
    )
    fwd_gpu = cuda_backend().lif_forward(
        q.in_steps, q.in_units, q.in_offsets, q.w_t, q.d_t, q.w_rec_t, q.d_rec_t, p.n_steps,
        consts, capacity, jumps_dev,
    )  # fmt: skip
    steps, units, offsets, vdot, iref = fwd_cpu
    batch = p.in_offsets.numel() - 1
    assert steps.numel() >= 2 * batch * n_out // 3, f"too few spikes to test: {steps.numel()}"
    for name, a, b in zip(("steps", "units", "offsets"), fwd_cpu[:3], fwd_gpu[:3]):
        assert torch.equal(a, b.cpu()), f"output spike {name} differ"
    if max_spikes is not None:
        per_neuron = torch.bincount(offsets_sample(offsets) * n_out + units.long())
        assert int(per_neuron.max()) == max_spikes, "the spike limit is not reached"
    assert fwd_gpu[4].shape == iref.shape, "drives at refractory ends: shapes differ"
    ends = ~torch.isnan(iref)
    assert torch.equal(torch.isnan(fwd_gpu[4].cpu()), ~ends), "refractory ends differ"
    assert (refractory > 0) == bool(ends.any()), "no refractory end to test"
    for name, a, b in (("tau_mem dV/dt at spikes", vdot, fwd_gpu[3]),
                       ("drives at refractory ends", iref[ends], fwd_gpu[4].cpu()[ends])):
        if p.w_rec_t.numel():
            assert rel_err(b, a) < tolerance(dtype), f"{name} differ"
        else:  # same operations in the same order as the CPU kernels: bit for bit
            assert torch.equal(b.cpu(), a), f"{name} differ"

    g = torch.Generator().manual_seed(99)
    grad_out = torch.randn(steps.numel(), generator=g, dtype=torch.float64).to(dtype)
    kick = (0.05 * torch.rand(n_out, generator=g, dtype=torch.float64)).to(dtype)
    args = (steps, units, offsets, vdot, iref, grad_out, kick)
    tau_grad = jumps is None
    bwd_cpu = grid_cpu.lif_backward(
        p.in_steps, p.in_units, p.in_offsets, *args, p.w_t, p.d_t, *rec, p.n_steps, consts, jumps,
        tau_grad,
    )  # fmt: skip
    bwd_gpu = cuda_backend().lif_backward(
        q.in_steps, q.in_units, q.in_offsets, *(a.to(device) for a in args), q.w_t, q.d_t,
        q.w_rec_t, q.d_rec_t, p.n_steps, consts, jumps_dev, tau_grad,
    )  # fmt: skip
    names = ("dL/d input times", "dL/dw", "delay sums", "dL/dw_rec", "delay sums rec", "dL/db",
             "dL/dtau")  # fmt: skip
    assert len(bwd_cpu) == len(bwd_gpu) == len(names)
    assert bwd_cpu[5].numel() == (0 if jumps is None else n_out)
    assert bwd_cpu[6].numel() == (2 if tau_grad else 0)
    for name, a, b in zip(names, bwd_cpu, bwd_gpu):
        assert a.shape == b.shape, f"{name}: shape {tuple(b.shape)} != {tuple(a.shape)}"
        if a.numel():
            assert float(a.abs().max()) > 0, f"{name}: all zero, the check would be empty"
            err = rel_err(b, a)
            assert err < tolerance(dtype), f"{name}: relative error {err:.2e}"


def offsets_sample(offsets: torch.Tensor) -> torch.Tensor:
    """The sample of every spike, from per-sample offsets [batch + 1]."""
    return torch.repeat_interleave(torch.arange(offsets.numel() - 1), torch.diff(offsets))


def check_li(device: torch.device, dtype: torch.dtype, **sizes) -> None:
    """LI readout forward and backward on both backends."""
    p = make_problem(dtype, **sizes)
    q = p.to(device)
    v_cpu = grid_cpu.li_forward(
        p.in_steps, p.in_units, p.in_offsets, p.w_t, p.d_t, p.n_steps, CONSTS
    )
    v_gpu = cuda_backend().li_forward(
        q.in_steps, q.in_units, q.in_offsets, q.w_t, q.d_t, p.n_steps, CONSTS
    )
    assert v_gpu.shape == v_cpu.shape and v_gpu.dtype == v_cpu.dtype
    assert torch.equal(v_gpu.cpu(), v_cpu), "voltage traces differ"
    grad_v = torch.randn(v_cpu.shape, generator=torch.Generator().manual_seed(5)).to(dtype)
    bwd_cpu = grid_cpu.li_backward(
        p.in_steps, p.in_units, p.in_offsets, grad_v, p.w_t, p.d_t, p.n_steps, CONSTS, True
    )
    bwd_gpu = cuda_backend().li_backward(
        q.in_steps, q.in_units, q.in_offsets, grad_v.to(device), q.w_t, q.d_t, p.n_steps, CONSTS,
        True,
    )  # fmt: skip
    names = ("dL/d input times", "dL/dw", "delay sums", "dL/dtau")
    for name, a, b in zip(names, bwd_cpu, bwd_gpu, strict=True):
        assert float(a.abs().max()) > 0, f"{name}: all zero, the check would be empty"
        err = rel_err(b, a)
        assert err < tolerance(dtype), f"{name}: relative error {err:.2e}"


def check_network(device: torch.device, dtype: torch.dtype) -> None:
    """A recurrent LIF layer and an LI readout through the public modules and autograd: the
    loss, every parameter gradient (learned time constants included) and the input-time
    gradient agree with the CPU run."""
    torch.manual_seed(3)
    hidden = dp.LIF(
        8, 6, max_delay=6.0, delay_init=(0.0, 6.0), weight_init=dp.Normal(0.6, 0.4),
        recurrent=True, rec_max_delay=3.0, rec_delay_init=(0.0, 3.0), learn_tau=True,
        dtype=dtype,
    )  # fmt: skip
    readout = dp.LIReadout(6, 3, max_delay=4.0, delay_init=(0.0, 4.0), learn_tau=True,
                           dtype=dtype)  # fmt: skip
    x = random_spikes(3, 8, 30.0, 20, seed=4)

    def run(dev: torch.device):
        net = torch.nn.Sequential(hidden, readout).to(dev)
        net.zero_grad()
        xs = x.to(dev)
        xs = xs.with_times(xs.times.to(dtype).requires_grad_())
        v = net(xs)
        loss = (v.max(dim=1).values ** 2).sum() + v.mean()
        loss.backward()
        grads = {n: p.grad.detach().cpu().clone() for n, p in net.named_parameters()}
        return float(loss.detach()), grads, xs.times.grad.detach().cpu()

    loss_cpu, grads_cpu, gx_cpu = run(torch.device("cpu"))
    with _backend_on(device):
        loss_gpu, grads_gpu, gx_gpu = run(device)
    assert abs(loss_gpu - loss_cpu) <= tolerance(dtype) * abs(loss_cpu), "losses differ"
    assert rel_err(gx_gpu, gx_cpu) < tolerance(dtype), "input-time gradients differ"
    assert grads_cpu.keys() == grads_gpu.keys()
    for name, a in grads_cpu.items():
        assert float(a.abs().max()) > 0, f"{name}: zero gradient, the check would be empty"
        assert rel_err(grads_gpu[name], a) < tolerance(dtype), f"gradient of {name} differs"


@contextmanager
def _backend_on(device: torch.device):
    """Route layer calls to the CUDA backend (under the simulator the tensors stay on the CPU,
    where ``grid_backend`` would pick the CPU backend)."""
    if device.type == "cuda":
        yield
        return
    original = functional.grid_backend
    grid_cuda = cuda_backend()
    functional.grid_backend = lambda _device: grid_cuda
    try:
        yield
    finally:
        functional.grid_backend = original


def check_formulas(device: torch.device) -> None:
    """Every event formula of ``kernels.formulas`` evaluated in a CUDA kernel and in a Numba CPU
    kernel on the same arrays, float32 and float64: the same numbers.  Bit for bit under the
    simulator and, on a GPU, for the forward formulas (their roundings are pinned); the others
    to rounding of their largest value (the GPU compiler may fuse a multiply-add)."""
    import numpy as np
    from numba import cuda, njit

    from delayprop.kernels import cuda as _kernels  # noqa: F401  (the CUDA roundings)
    from delayprop.kernels.formulas import (
        adjoint_jump,
        adjoint_step,
        arrival_read,
        crossing_slope,
        readout_drive,
        state_step,
    )

    def evaluate(x, out, k):
        a, b, c, d = x[0, k], x[1, k], x[2, k], x[3, k]
        out[0, k] = adjoint_jump(a, b, c, x[4, 0], x[4, 1], d)
        out[1, k], out[2, k] = arrival_read(a, b, c, x[4, 2])
        out[3, k], out[4, k] = adjoint_step(a, b, x[4, 3], x[4, 4], x[4, 5])
        out[5, k] = readout_drive(a, b, x[4, 6])
        out[6, k], out[7, k] = state_step(a, b, x[4, 3], x[4, 4], x[4, 5])
        out[8, k] = crossing_slope(a, b, c, x[4, 7])

    evaluate_cpu, evaluate_gpu = njit(evaluate), cuda.jit(device=True)(evaluate)

    @njit
    def on_cpu(x, out):
        for k in range(out.shape[1]):
            evaluate_cpu(x, out, k)

    @cuda.jit
    def on_gpu(x, out):  # one thread: the formulas, not the launch, are under test
        for k in range(out.shape[1]):
            evaluate_gpu(x, out, k)

    g = np.random.default_rng(11)
    for dtype in (np.float32, np.float64):
        x = g.normal(size=(5, 64)).astype(dtype)
        x[2, ::3] = 1e-6  # slopes below the floor
        x[4, :8] = [1.2, 1.2e-3, 5.0, 0.95, 0.8, 0.044, 20.0, 20.0]
        expected = np.zeros((9, 64), dtype)
        on_cpu(x, expected)
        x_dev = torch.from_numpy(x).to(device)
        out = torch.zeros(9, 64, dtype=x_dev.dtype, device=device)
        arr = (lambda t: t.numpy()) if device.type == "cpu" else cuda.as_cuda_array
        on_gpu[1, 1](arr(x_dev), arr(out))
        got = out.cpu().numpy()
        exact = slice(None) if device.type == "cpu" else slice(6, 9)
        assert np.array_equal(got[exact], expected[exact]), f"{dtype}: formulas differ"
        scale = np.abs(expected).max(axis=1, keepdims=True)  # per formula
        assert (np.abs(got - expected) <= 16 * np.finfo(dtype).eps * scale).all(), dtype


def check_empty_batch(device: torch.device) -> None:
    grid_cuda = cuda_backend()
    sizes = dict(batch=1, n_in=4, n_out=3, n_steps=10, per_sample=0, max_delay=2)
    p = make_problem(torch.float32, **sizes).to(device)
    offsets = torch.zeros(1, dtype=torch.int64, device=device)
    steps, units, out_offsets, vdot, iref = grid_cuda.lif_forward(
        p.in_steps, p.in_units, offsets, p.w_t, p.d_t, p.w_rec_t, p.d_rec_t, 10, CONSTS, 4
    )
    assert steps.numel() == units.numel() == vdot.numel() == iref.numel() == 0
    assert out_offsets.tolist() == [0]
    v = grid_cuda.li_forward(p.in_steps, p.in_units, offsets, p.w_t, p.d_t, 10, CONSTS)
    assert v.shape == (0, 10, 3)


def check_bad_input(device: torch.device) -> None:
    """Inconsistent shapes and dtypes are refused before any launch, naming the problem."""
    grid_cuda = cuda_backend()
    p = make_problem(torch.float32, **dict(TINY, batch=1)).to(device)
    rec = (p.w_rec_t, p.d_rec_t)
    bad = {
        "delay steps of the same shape": (p.w_t, p.d_t[:-1], *rec),
        "int32 delay steps": (p.w_t, p.d_t.long(), *rec),
        "recurrent weights and delays must be": (p.w_t, p.d_t, p.w_t, p.d_t),
    }
    for message, params in bad.items():
        try:
            grid_cuda.lif_forward(p.in_steps, p.in_units, p.in_offsets, *params, 30, CONSTS, 4)
        except ValueError as err:
            assert message in str(err), f"{message!r} not in {err}"
        else:
            raise AssertionError(f"no error for: {message}")
    adaptive = grid_constants(dt=1.0, tau_mem=20.0, tau_syn=5.0, threshold=1.0, tau_adapt=30.0)
    jumps = torch.full((6,), 0.2, device=device)
    cases = {  # constants, b, error, message
        "adaptation without b": (adaptive, None, ValueError, "b missing"),
        "b without adaptation": (CONSTS, jumps, ValueError, "b given"),
        "b of the wrong length": (adaptive, jumps[:5], ValueError, "must be [6]"),
    }  # fmt: skip
    for case, (consts, b, error, message) in cases.items():
        try:
            grid_cuda.lif_forward(p.in_steps, p.in_units, p.in_offsets, p.w_t, p.d_t, *rec, 30,
                                  consts, 4, b)  # fmt: skip
        except error as err:
            assert message in str(err), f"{case}: {err}"
        else:
            raise AssertionError(f"no error for {case} on CUDA")
    grad_v = torch.zeros(1, 29, 6, device=device)
    try:
        grid_cuda.li_backward(p.in_steps, p.in_units, p.in_offsets, grad_v, p.w_t, p.d_t, 30,
                              CONSTS)  # fmt: skip
    except ValueError as err:
        assert "grad_v must be [1, 30, 6]" in str(err), str(err)
    else:
        raise AssertionError("no error for a grad_v of the wrong shape")


# ----------------------------------------------------------------------------- precise mode
@dataclass(frozen=True)
class PreciseProblem:
    """One precise layer call: input spikes at any times (ms), w and d [n_out, n_in] (d in ms,
    never rounded), the layer's grid and constants."""

    times: torch.Tensor
    units: torch.Tensor
    offsets: torch.Tensor
    w: torch.Tensor
    d: torch.Tensor
    grid: PreciseGrid

    def to(self, device: torch.device) -> PreciseProblem:
        moved = (t.to(device) for t in (self.times, self.units, self.offsets, self.w, self.d))
        return PreciseProblem(*moved, self.grid)

    def prepare(self, host):
        return host.prepare(self.times, self.units, self.offsets, self.w, self.d, self.grid)


def make_precise_problem(
    dtype: torch.dtype, *, batch: int, n_in: int, n_out: int, n_steps: int, per_sample: int,
    max_delay: float, dt: float = 1.0, w_mean: float = 1.0, w_std: float = 0.8, seed: int = 0,
    late_inputs: bool = False, empty_sample: bool = False, grid_inputs: bool = False,
) -> PreciseProblem:  # fmt: skip
    """Random input times and delays (tau_mem 20 ms, tau_syn 5 ms, threshold 1); delays of
    neuron 0 on whole steps (remainder 0); with ``late_inputs``, spikes within the last step
    (most of their arrivals fall after the trial); ``empty_sample`` silences the second
    sample; ``grid_inputs`` moves every other input spike onto a grid time, so that arrivals
    at neuron 0 land exactly at the start of a step (offset 0)."""
    g = torch.Generator().manual_seed(seed)
    duration = n_steps * dt
    x = random_spikes(batch, n_in, duration, per_sample, seed)
    trains = [(t.tolist(), u.tolist()) for t, u in x.to_lists()]
    if late_inputs:
        trains[0][0].extend([duration - 0.3 * dt, duration - 1e-6 * dt])
        trains[0][1].extend([0, n_in - 1])
    if empty_sample and batch > 1:
        trains[1] = ([], [])
    if grid_inputs:
        for times, _ in trains:
            times[::2] = [math.floor(t / dt) * dt for t in times[::2]]
    x = dp.Spikes.from_lists(trains, n_in, duration, dtype=dtype)
    w = (torch.randn(n_out, n_in, generator=g, dtype=torch.float64) * w_std + w_mean).to(dtype)
    d = torch.rand(n_out, n_in, generator=g, dtype=torch.float64) * max_delay
    d[0] = torch.randint(0, int(max_delay / dt) + 1, (n_in,), generator=g) * dt
    settings = functional.GridSettings(tau_mem=20.0, tau_syn=5.0, threshold=1.0, dt=dt,
                                       n_steps=n_steps, max_delay_steps=0, precise=True)
    return PreciseProblem(x.times, x.units, x.offsets, w, d.to(dtype),
                          settings.precise_grid(dtype))  # fmt: skip


def spike_time_tolerance(dtype: torch.dtype) -> float:
    """Largest difference (ms) of spike offsets: float64 root finding to a few ulp on both, the
    exponentials of libdevice and of the CPU differing by an ulp; float32 stored offsets."""
    return 1e-10 if dtype == torch.float64 else 1e-4


def check_precise_lif(device: torch.device, dtype: torch.dtype, capacity: int,
                      per_step: int = 1, drops: bool = False, **sizes) -> None:  # fmt: skip
    """Precise LIF forward and backward (with a spike-count kick) on both backends; at least
    one neuron fires ``per_step`` times within one step, and with ``drops`` some crossings
    beyond ``MAX_SPIKES_PER_STEP`` are dropped."""
    p = make_precise_problem(dtype, **sizes)
    q = p.to(device)
    cuda_host = precise_cuda_host()
    n_out = p.w.shape[0]
    prep_cpu, prep_gpu = p.prepare(precise_host), q.prepare(cuda_host)
    fwd_cpu = precise_host.lif_forward(prep_cpu, n_out, p.grid, capacity)
    fwd_gpu = cuda_host.lif_forward(prep_gpu, n_out, p.grid, capacity)
    steps, units, offsets, s, vdot, dropped = fwd_cpu
    batch = offsets.numel() - 1
    assert steps.numel() >= batch * n_out, f"too few spikes to test: {steps.numel()}"
    sample = torch.repeat_interleave(torch.arange(batch), torch.diff(offsets))
    key = (sample * p.grid.n_steps + steps.long()) * n_out + units.long()
    most = int(torch.unique(key, return_counts=True)[1].max())
    assert most >= per_step, f"at most {most} spikes of a neuron in a step, wanted {per_step}"
    for name, a, b in zip(("steps", "units", "offsets"), fwd_cpu[:3], fwd_gpu[:3]):
        assert torch.equal(a, b.cpu()), f"output spike {name} differ"
    assert fwd_gpu[5] == dropped and (dropped > 0) == drops, f"dropped: {fwd_gpu[5]}, {dropped}"
    gap = float((fwd_gpu[3].cpu().double() - s.double()).abs().max())
    assert gap <= spike_time_tolerance(dtype), f"spike offsets differ by {gap:.2e} ms"
    assert rel_err(fwd_gpu[4], vdot) < tolerance(dtype), "I - threshold at spikes differ"

    g = torch.Generator().manual_seed(99)
    grad_out = torch.randn(steps.numel(), generator=g, dtype=torch.float64).to(dtype)
    kick = (0.05 * torch.rand(n_out, generator=g, dtype=torch.float64)).to(dtype)
    args = (steps, units, offsets, s, vdot, grad_out, kick)
    bwd_cpu = precise_host.lif_backward(prep_cpu, n_out, *args, p.grid)
    bwd_gpu = cuda_host.lif_backward(prep_gpu, n_out, *(a.to(device) for a in args), p.grid)
    _compare_gradients(bwd_cpu, bwd_gpu, dtype)


def _compare_gradients(cpu: tuple, gpu: tuple, dtype: torch.dtype) -> None:
    for name, a, b in zip(("dL/d input times", "dL/dw", "delay sums"), cpu, gpu):
        assert a.shape == b.shape, f"{name}: shape {tuple(b.shape)} != {tuple(a.shape)}"
        assert float(a.abs().max()) > 0, f"{name}: all zero, the check would be empty"
        err = rel_err(b, a)
        assert err < tolerance(dtype), f"{name}: relative error {err:.2e}"


def check_precise_li(device: torch.device, dtype: torch.dtype, **sizes) -> None:
    """Precise LI readout forward and backward on both backends."""
    p = make_precise_problem(dtype, **sizes)
    q = p.to(device)
    cuda_host = precise_cuda_host()
    n_out = p.w.shape[0]
    prep_cpu, prep_gpu = p.prepare(precise_host), q.prepare(cuda_host)
    v_cpu = precise_host.li_forward(prep_cpu, n_out, p.grid)
    v_gpu = cuda_host.li_forward(prep_gpu, n_out, p.grid)
    assert v_gpu.shape == v_cpu.shape and v_gpu.dtype == v_cpu.dtype
    gap = float((v_gpu.cpu() - v_cpu).abs().max() / v_cpu.abs().max())
    assert gap < tolerance(dtype), f"voltage traces differ by {gap:.2e} relative"
    grad_v = torch.randn(v_cpu.shape, generator=torch.Generator().manual_seed(5)).to(dtype)
    bwd_cpu = precise_host.li_backward(prep_cpu, n_out, grad_v, p.grid)
    bwd_gpu = cuda_host.li_backward(prep_gpu, n_out, grad_v.to(device), p.grid)
    _compare_gradients(bwd_cpu, bwd_gpu, dtype)


def check_precise_network(device: torch.device, dtype: torch.dtype) -> None:
    """A precise LIF layer (spike-count regulariser) into a precise LI readout through the
    public modules and autograd, loss on the maximum over time and the mean of the trace: the
    loss, every parameter gradient and the input-time gradient agree with the CPU run."""
    torch.manual_seed(5)
    kw = {"dt": 1.0, "precise": True, "dtype": dtype}
    hidden = dp.LIF(6, 5, max_delay=4.0, delay_init=(0.0, 4.0), weight_init=dp.Normal(1.5, 0.8),
                    regularizer=dp.SpikeCountRegularizer(1.0, 1e-3, 1e-3), **kw)  # fmt: skip
    readout = dp.LIReadout(5, 2, max_delay=3.0, delay_init=(0.0, 3.0),
                           weight_init=dp.Normal(0.3, 0.5), **kw)  # fmt: skip
    x = random_spikes(2, 6, 16.0, 14, seed=6)

    def run(dev: torch.device):
        net = torch.nn.Sequential(hidden, readout).to(dev)
        net.zero_grad()
        xs = x.to(dev)
        xs = xs.with_times(xs.times.to(dtype).requires_grad_())
        v = net(xs)
        loss = losses.max_over_time(v).square().sum() + v.mean()
        loss.backward()
        grads = {n: p.grad.detach().cpu().clone() for n, p in net.named_parameters()}
        return float(loss.detach()), grads, xs.times.grad.detach().cpu()

    loss_cpu, grads_cpu, gx_cpu = run(torch.device("cpu"))
    with _precise_backend_on(device):
        loss_gpu, grads_gpu, gx_gpu = run(device)
    assert abs(loss_gpu - loss_cpu) <= tolerance(dtype) * abs(loss_cpu), "losses differ"
    assert rel_err(gx_gpu, gx_cpu) < tolerance(dtype), "input-time gradients differ"
    assert grads_cpu.keys() == grads_gpu.keys()
    for name, a in grads_cpu.items():
        assert float(a.abs().max()) > 0, f"{name}: zero gradient, the check would be empty"
        assert rel_err(grads_gpu[name], a) < tolerance(dtype), f"gradient of {name} differs"


def check_precise_empty_batch(device: torch.device) -> None:
    """A batch of no samples: empty outputs and zero gradients, no launch."""
    cuda_host = precise_cuda_host()
    p = make_precise_problem(torch.float32, **dict(PRECISE_TINY, batch=1)).to(device)
    none = torch.zeros(1, dtype=torch.int64, device=device)
    times, units = p.times[:0], p.units[:0]
    prep = cuda_host.prepare(times, units, none, p.w, p.d, p.grid)
    n_out = p.w.shape[0]
    steps, units_out, offsets, s, vdot, dropped = cuda_host.lif_forward(prep, n_out, p.grid, 4)
    assert steps.numel() == s.numel() == 0 and offsets.tolist() == [0] and dropped == 0
    kick = torch.zeros(n_out, device=device)
    grads = cuda_host.lif_backward(prep, n_out, steps, units_out, offsets, s, vdot, s, kick,
                                   p.grid)  # fmt: skip
    assert grads[0].numel() == 0 and not grads[1].any() and grads[2].shape == (6, n_out)
    v = cuda_host.li_forward(prep, n_out, p.grid)
    assert v.shape == (0, p.grid.n_steps, n_out)
    assert not cuda_host.li_backward(prep, n_out, v, p.grid)[1].any()


@contextmanager
def _precise_backend_on(device: torch.device):
    """Route precise layer calls to the CUDA host (as ``_backend_on`` for the grid)."""
    if device.type == "cuda":
        yield
        return
    original = functional.precise_backend
    cuda_host = precise_cuda_host()
    functional.precise_backend = lambda _device: cuda_host
    try:
        yield
    finally:
        functional.precise_backend = original


# ----------------------------------------------------------------------------- cases
TINY = dict(batch=3, n_in=10, n_out=6, n_steps=30, per_sample=25, max_delay=5)
#: 40 neurons: two words of the spike bitmask, five neurons per thread with 8 threads.
TWO_WORDS = dict(
    batch=2, n_in=12, n_out=40, n_steps=20, per_sample=30, max_delay=4, rec_max_delay=2, w_mean=0.5
)

#: Precise mode: 5 neurons, 1-2 spikes per neuron and step at dt = 1 ms; with dt = 2 ms and
#: strong weights up to MAX_SPIKES_PER_STEP (8) in one step, and some crossings dropped.
PRECISE_TINY = dict(batch=3, n_in=6, n_out=5, n_steps=12, per_sample=14, max_delay=4.0, w_mean=2.0)
PRECISE_BURSTS = dict(batch=2, n_in=4, n_out=5, n_steps=8, per_sample=8, max_delay=4.0, dt=2.0,
                      w_mean=25.0)  # fmt: skip

#: Simulator cases: tiny sizes, ``SMALL_LAUNCH`` unless stated.
SIM_CASES: dict[str, tuple[Callable[..., None], dict, dict | None]] = {
    "lif_ff_float64": (check_lif, dict(dtype=torch.float64, capacity=2, **TINY), SMALL_LAUNCH),
    "lif_ff_float32_late_and_empty": (
        check_lif,
        dict(dtype=torch.float32, capacity=64, late_inputs=True, empty_sample=True, **TINY),
        SMALL_LAUNCH,
    ),
    "lif_rec_float64": (
        check_lif,
        dict(dtype=torch.float64, capacity=3, rec_max_delay=3, **TINY),
        SMALL_LAUNCH,
    ),
    "lif_rec_zero_delays_float64": (
        check_lif,
        dict(dtype=torch.float64, capacity=64, **dict(TINY, max_delay=0), rec_max_delay=0),
        SMALL_LAUNCH,
    ),
    "lif_rec_two_words_float32": (
        check_lif,
        dict(dtype=torch.float32, capacity=64, **TWO_WORDS),
        dict(max_threads=8, group=4, max_blocks=1, shared_bytes=256),
    ),
    "lif_adapt_ff_float32": (
        check_lif,
        dict(dtype=torch.float32, capacity=3, tau_adapt=30.0, **dict(TINY, w_mean=1.2)),
        SMALL_LAUNCH,
    ),
    "lif_adapt_rec_float64": (
        check_lif,
        dict(dtype=torch.float64, capacity=64, tau_adapt=30.0, rec_max_delay=3,
             **dict(TINY, w_mean=1.2)),
        SMALL_LAUNCH,
    ),  # fmt: skip
    "lif_refractory_ff_float64": (
        check_lif, dict(dtype=torch.float64, capacity=2, refractory=3.0, **TINY), SMALL_LAUNCH
    ),
    "lif_max_spikes_ff_float32": (
        check_lif, dict(dtype=torch.float32, capacity=64, max_spikes=2, **TINY), SMALL_LAUNCH
    ),
    "lif_refractory_max_spikes_rec_float64": (
        check_lif,
        dict(dtype=torch.float64, capacity=3, refractory=2.0, max_spikes=3, rec_max_delay=3,
             **TINY),
        SMALL_LAUNCH,
    ),  # fmt: skip
    "lif_refractory_adapt_float32": (
        check_lif,
        dict(dtype=torch.float32, capacity=3, tau_adapt=30.0, refractory=2.0,
             **dict(TINY, w_mean=1.2)),
        SMALL_LAUNCH,
    ),  # fmt: skip
    "li_float64": (
        check_li,
        dict(dtype=torch.float64, **dict(TINY, n_out=3, max_delay=7), late_inputs=True),
        SMALL_LAUNCH,
    ),
    "li_float32": (check_li, dict(dtype=torch.float32, **TINY), None),
    "network_float64": (check_network, dict(dtype=torch.float64), SMALL_LAUNCH),
    "precise_lif_float64": (
        check_precise_lif, dict(dtype=torch.float64, capacity=3, **PRECISE_TINY), SMALL_LAUNCH
    ),
    "precise_lif_grid_aligned_float64": (
        check_precise_lif, dict(dtype=torch.float64, capacity=8, grid_inputs=True, **PRECISE_TINY),
        SMALL_LAUNCH,
    ),
    "precise_lif_bursts_float64": (
        check_precise_lif,
        dict(dtype=torch.float64, capacity=64, per_step=8, drops=True, **PRECISE_BURSTS),
        SMALL_LAUNCH,
    ),
    "precise_lif_float32_late_and_empty": (
        check_precise_lif,
        dict(dtype=torch.float32, capacity=64, late_inputs=True, empty_sample=True,
             **PRECISE_TINY),
        dict(max_threads=8, group=4, max_blocks=1, shared_bytes=256),
    ),  # fmt: skip
    "precise_li_float64": (
        check_precise_li,
        dict(dtype=torch.float64, late_inputs=True, **dict(PRECISE_TINY, n_out=3, max_delay=6.0)),
        SMALL_LAUNCH,
    ),
    "precise_li_float32": (check_precise_li, dict(dtype=torch.float32, **PRECISE_TINY), None),
    "precise_network_float64": (check_precise_network, dict(dtype=torch.float64), SMALL_LAUNCH),
    "precise_empty_batch": (check_precise_empty_batch, {}, None),
    "formulas": (check_formulas, {}, None),
    "empty_batch": (check_empty_batch, {}, None),
    "bad_input": (check_bad_input, {}, None),
}


def run_case(name: str, device: torch.device) -> None:
    check, kwargs, settings = SIM_CASES[name]
    with launch(settings):
        check(device, **kwargs)


def main(names: list[str]) -> None:
    if not cuda_backend().SIMULATOR:
        raise SystemExit("run with NUMBA_ENABLE_CUDASIM=1 (numba-cuda's simulator)")
    results = {}
    for name in names or list(SIM_CASES):
        try:
            run_case(name, torch.device("cpu"))
            results[name] = "ok"
        except Exception:  # noqa: BLE001 - reported to the calling test
            results[name] = traceback.format_exc()
    print(RESULTS_MARK + json.dumps(results))


if __name__ == "__main__":
    main(sys.argv[1:])
