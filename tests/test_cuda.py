"""CUDA backends (grid and precise mode): agree with the CPU kernels; clear errors where CUDA
is asked for and absent.

The agreement checks live in ``cuda_checks.py``.  They run

* under numba-cuda's simulator in one subprocess (``NUMBA_ENABLE_CUDASIM=1`` must be set before
  numba.cuda is imported, and would turn every later numba.cuda import of this process into the
  simulator too, including the real-GPU tests below): tiny sizes and small blocks, so that
  several blocks, groups and neurons per thread are exercised;
* in this process on a real GPU (marked ``gpu``; skipped without one), at the same sizes with
  the same small blocks and at larger sizes with the default launch settings.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import cuda_checks
from delayprop.kernels import grid_backend, precise_backend

HERE = Path(__file__).resolve().parent
HAS_NUMBA_CUDA = importlib.util.find_spec("numba_cuda") is not None
needs_numba_cuda = pytest.mark.skipif(not HAS_NUMBA_CUDA, reason="numba-cuda is not installed")


def _python(code_or_script: list[str], **env: str) -> subprocess.CompletedProcess:
    src = str(HERE.parent / "src")
    path = os.pathsep.join([src, str(HERE), os.environ.get("PYTHONPATH", "")])
    return subprocess.run(
        [sys.executable, "-W", "error", "-W", "ignore::DeprecationWarning", *code_or_script],
        env={**os.environ, "PYTHONPATH": path, **env},
        capture_output=True,
        text=True,
        timeout=600,
    )


# ----------------------------------------------------------------------------- simulator
@pytest.fixture(scope="module")
def simulator_results() -> dict[str, str]:
    proc = _python([str(HERE / "cuda_checks.py")], NUMBA_ENABLE_CUDASIM="1")
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(cuda_checks.RESULTS_MARK)]
    assert proc.returncode == 0 and lines, f"simulator run failed:\n{proc.stdout}\n{proc.stderr}"
    return json.loads(lines[-1][len(cuda_checks.RESULTS_MARK) :])


@needs_numba_cuda
@pytest.mark.parametrize("case", sorted(cuda_checks.SIM_CASES))
def test_simulated_kernels_match_cpu(case, simulator_results):
    assert simulator_results[case] == "ok", simulator_results[case]


# ----------------------------------------------------------------------------- real GPU
requires_gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU")


@pytest.mark.gpu
@needs_numba_cuda
@requires_gpu
@pytest.mark.parametrize("case", sorted(cuda_checks.SIM_CASES))
def test_gpu_kernels_match_cpu_small_blocks(case):
    cuda_checks.run_case(case, torch.device("cuda"))


GPU_SIZES = {
    "lif_ff": dict(
        batch=6, n_in=100, n_out=300, n_steps=300, per_sample=400, max_delay=60, w_mean=0.15
    ),
    "lif_rec": dict(
        batch=5,
        n_in=80,
        n_out=200,
        n_steps=250,
        per_sample=300,
        max_delay=40,
        rec_max_delay=20,
        w_mean=0.2,
    ),
}


@pytest.mark.gpu
@needs_numba_cuda
@requires_gpu
@pytest.mark.parametrize(
    "case,dtype",
    # Not ("lif_rec", float32): a recurrent layer adds input and recurrent arrivals by time, the
    # CPU kernels inputs first; in float32 at this size a voltage within one rounding of the
    # threshold may then flip a spike.  Float32 recurrence is compared at the small sizes above.
    [("lif_ff", torch.float32), ("lif_ff", torch.float64), ("lif_rec", torch.float64)],
)
def test_gpu_kernels_match_cpu_default_launch(case, dtype):
    cuda_checks.check_lif(torch.device("cuda"), dtype, capacity=64, **GPU_SIZES[case])
    sizes = dict(GPU_SIZES[case], n_out=20)
    sizes.pop("rec_max_delay", None)
    cuda_checks.check_li(torch.device("cuda"), dtype, **sizes)


#: Precise mode on the GPU: ~6 spikes per neuron and sample at dt = 1 ms; at dt = 2 ms with
#: strong weights ~90, up to 3 of one neuron in one step.
GPU_PRECISE_SIZES = {
    "lif": dict(batch=6, n_in=100, n_out=300, n_steps=300, per_sample=400, max_delay=60.0,
                w_mean=0.15, w_std=0.3),
    "lif_bursts": dict(batch=4, n_in=40, n_out=200, n_steps=100, per_sample=200, max_delay=20.0,
                       dt=2.0, w_mean=2.0, w_std=1.0),
}  # fmt: skip


@pytest.mark.gpu
@needs_numba_cuda
@requires_gpu
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("case", sorted(GPU_PRECISE_SIZES))
def test_gpu_precise_kernels_match_cpu_default_launch(case, dtype):
    sizes = GPU_PRECISE_SIZES[case]
    per_step = 3 if case == "lif_bursts" else 1
    cuda_checks.check_precise_lif(torch.device("cuda"), dtype, 64, per_step=per_step, **sizes)
    cuda_checks.check_precise_li(torch.device("cuda"), dtype, **dict(sizes, n_out=20))


@pytest.mark.gpu
@needs_numba_cuda
@requires_gpu
def test_gpu_precise_results_are_reproducible_bitwise():
    """No float atomics, fixed-order block sums: precise kernels give the same bits each run."""
    from delayprop.kernels import precise_cuda_host as host

    dev = torch.device("cuda")
    p = cuda_checks.make_precise_problem(torch.float32, **GPU_PRECISE_SIZES["lif"]).to(dev)
    n_out = p.w.shape[0]
    runs = []
    for _ in range(2):
        prep = p.prepare(host)
        out = host.lif_forward(prep, n_out, p.grid, 64)
        grad_out = torch.linspace(-1, 1, out[0].numel(), device=dev)
        kick = torch.full((n_out,), 0.01, device=dev)
        back = host.lif_backward(prep, n_out, *out[:5], grad_out, kick, p.grid)
        runs.append(out[:5] + back)
    for a, b in zip(*runs):
        assert torch.equal(a, b)


# ----------------------------------------------------------------------------- errors
def test_cuda_tensors_without_numba_cuda_raise_clear_error(monkeypatch):
    """Without numba-cuda, asking for the CUDA backend names the missing package."""
    import numba

    import delayprop.kernels as kernels

    monkeypatch.setitem(sys.modules, "numba.cuda", None)
    monkeypatch.delattr(numba, "cuda", raising=False)
    for name in ("grid_cuda", "cuda", "precise_cuda_host", "precise_cuda"):
        monkeypatch.delitem(sys.modules, f"delayprop.kernels.{name}", raising=False)
        monkeypatch.delattr(kernels, name, raising=False)
    for backend in (grid_backend, precise_backend):
        with pytest.raises(RuntimeError, match="numba-cuda"):
            backend(torch.device("cuda"))


@needs_numba_cuda
@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA GPU is present")
def test_cuda_backend_without_gpu_raises_clear_error():
    sizes = dict(batch=1, n_in=3, n_out=2, n_steps=5, per_sample=2, max_delay=1)
    p = cuda_checks.make_problem(torch.float32, **sizes)
    backend = grid_backend(torch.device("cuda"))
    with pytest.raises(RuntimeError, match="no usable CUDA driver or GPU"):
        backend.li_forward(
            p.in_steps, p.in_units, p.in_offsets, p.w_t, p.d_t, 5, cuda_checks.CONSTS
        )
    q = cuda_checks.make_precise_problem(torch.float32, **cuda_checks.PRECISE_TINY)
    with pytest.raises(RuntimeError, match="no usable CUDA driver or GPU"):
        q.prepare(precise_backend(torch.device("cuda")))


def test_package_and_cpu_paths_work_without_numba_cuda():
    """Importing delayprop and training on the CPU never touch numba.cuda."""
    code = """
import sys
sys.modules["numba.cuda"] = None
import torch
import delayprop as dp
torch.manual_seed(0)
net = torch.nn.Sequential(dp.LIF(5, 4, max_delay=3.0, delay_init=(0.0, 3.0),
                                 weight_init=dp.Normal(3.0, 0.3)), dp.LIReadout(4, 2))
x = dp.Spikes.from_lists([([1.0, 2.0, 4.0, 5.0], [0, 1, 4, 2])], 5, 20.0)
with dp.SpikeRecorder([net[0]]) as rec:
    net(x).sum().backward()
assert rec.counts[0].sum() > 0 and net[0].weight.grad.abs().sum() > 0
print("cpu ok")
"""
    proc = _python(["-c", code])
    assert proc.returncode == 0 and "cpu ok" in proc.stdout, proc.stderr


# ----------------------------------------------------------------------------- scripts
BENCHMARKS = HERE.parent / "benchmarks"


@pytest.mark.slow
@needs_numba_cuda
def test_kernels_compile_for_a_gpu_without_float64_in_float32_kernels():
    """The real compiler's view (the simulator cannot type-check): every kernel compiles to
    PTX with the argument types the drivers pass; float32 kernels use no float64."""
    proc = _python([str(BENCHMARKS / "gpu_compile_check.py"), "--cc", "8.0"])
    if proc.returncode == 2:
        pytest.skip("the CUDA toolkit libraries are not installed (pip install 'numba-cuda[cu12]')")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("compiles for sm_80") == 16, proc.stdout


@pytest.mark.slow
def test_gpu_epoch_benchmark_dry_run_on_cpu(tmp_path):
    """The GPU benchmark script end to end at tiny sizes on the CPU (its plumbing, not timings)."""
    pytest.importorskip("delayprop.bench", reason="needs the benchmark helpers (delayprop.bench)")
    pytest.importorskip("delayprop.methods", reason="needs the DCLS baseline (delayprop.methods)")
    args = ["--device", "cpu", "--quick", "--max-delays", "4", "--out", str(tmp_path)]
    proc = _python([str(BENCHMARKS / "gpu_epoch.py"), *args])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    record = json.loads((tmp_path / "gpu_epoch.json").read_text())
    done = {(r["net"], r["method"]): r for r in record["results"]}
    assert set(done) == {("ff", "eventprop"), ("ff", "dcls"), ("rec512", "eventprop")}
    for r in done.values():
        assert r["status"] == "ok" and r["seconds_per_epoch"] > 0, r
        assert all(abs(rate - 15.0) < 3.0 for rate in r["spikes_per_neuron"]), r
    assert "| ff | 4 |" in (tmp_path / "gpu_epoch.md").read_text()


@pytest.mark.gpu
@needs_numba_cuda
@requires_gpu
def test_gpu_results_are_reproducible_bitwise():
    """Per-block partial sums and fixed-order block sums: no run-to-run rounding differences."""
    p = cuda_checks.make_problem(torch.float32, **GPU_SIZES["lif_rec"]).to(torch.device("cuda"))
    grid_cuda = cuda_checks.cuda_backend()
    args = (p.in_steps, p.in_units, p.in_offsets, p.w_t, p.d_t, p.w_rec_t, p.d_rec_t, p.n_steps)
    runs = []
    for _ in range(2):
        out = grid_cuda.lif_forward(*args, cuda_checks.CONSTS, 64)
        grad_out = torch.linspace(-1, 1, out[0].numel(), device=out[0].device)
        kick = torch.zeros(p.w_t.shape[1], device=out[0].device)
        back = grid_cuda.lif_backward(
            p.in_steps, p.in_units, p.in_offsets, *out[:3], out[3], out[4], grad_out, kick,
            p.w_t, p.d_t, p.w_rec_t, p.d_rec_t, p.n_steps, cuda_checks.CONSTS,
        )  # fmt: skip
        runs.append(out + back)
    for a, b in zip(*runs):
        assert torch.equal(a, b)
