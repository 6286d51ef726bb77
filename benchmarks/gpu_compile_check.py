"""Compile the CUDA kernels for a GPU architecture without a GPU, and report their resources.

numba-cuda's simulator (which the tests use where there is no GPU) runs the kernels as Python,
so it cannot catch what only the real compiler sees: a typing error, or float64 arithmetic
slipping into a float32 kernel (slow on most GPUs).  This script compiles every kernel of the
grid (``kernels/cuda.py``) and of the precise mode (``kernels/precise_cuda.py``) to PTX for
``--cc`` in float32 and float64 with the argument types the host drivers really pass (recorded
by calling the drivers on a tiny problem with the launches intercepted), checks that the
float32 grid kernels contain no float64 instruction (the precise kernels integrate within a
step and find crossings in float64 by design: their count is reported), and, where ``ptxas``
is found (the CUDA toolkit wheels of ``numba-cuda[cu12]``), prints registers, stack and spills
per kernel.

Usage (needs ``pip install 'numba-cuda[cu12]'``, no GPU)::

    python benchmarks/gpu_compile_check.py --cc 9.0

Exit status 1 if a kernel does not compile or a float32 grid kernel uses float64, 2 if the CUDA
toolkit libraries are missing.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from types import SimpleNamespace

import numba
import torch

KERNELS = ("lif_forward", "lif_backward", "li_forward", "li_backward")


def _compile_without_gpu(cc: tuple[int, int]) -> None:
    """Device functions are compiled for the current device; without one, pretend ``cc``."""
    import numba.cuda.dispatcher as dispatcher

    dispatcher.get_current_device = lambda: SimpleNamespace(compute_capability=cc)


class _Launched(Exception):
    """Raised by a recording kernel: the driver's launch was reached and its arguments kept."""


class _Recorder:
    """Stands for a kernel: keeps the Numba types of the launch's arguments in ``recorded``."""

    def __init__(self, name: str, recorded: dict[str, tuple]):
        self.name, self.recorded = name, recorded

    def __getitem__(self, _launch_config):
        return self

    def __call__(self, *args):
        self.recorded[self.name] = tuple(numba.typeof(a) for a in args)
        raise _Launched


def _record(host, limits: dict, calls: dict) -> dict[str, tuple]:
    """Run ``calls`` with ``host.kern`` replaced by recorders (and numpy arguments, no stream:
    nothing touches a device)."""
    from delayprop.kernels import grid_cuda

    recorded: dict[str, tuple] = {}
    kern, simulator = host.kern, grid_cuda.SIMULATOR
    host.kern = SimpleNamespace(**limits, **{k: _Recorder(k, recorded) for k in KERNELS})
    grid_cuda.SIMULATOR = True
    try:
        for call in calls.values():
            try:
                call()
            except _Launched:
                pass
    finally:
        host.kern, grid_cuda.SIMULATOR = kern, simulator
    return recorded


def record_signatures(dtype: torch.dtype) -> dict[str, tuple]:
    """Numba argument types of each grid kernel as the drivers launch it (one tiny problem)."""
    from delayprop.kernels import grid_constants, grid_cpu, grid_cuda

    consts = grid_constants(1.0, 20.0, 5.0, 1.0)
    steps = torch.tensor([0, 2, 3], dtype=torch.int32)
    units = torch.tensor([0, 1, 0], dtype=torch.int32)
    offsets = torch.tensor([0, 3], dtype=torch.int64)
    w = torch.full((2, 3), 2.0, dtype=dtype)
    d = torch.ones(2, 3, dtype=torch.int32)
    w_rec, d_rec = torch.zeros(3, 3, dtype=dtype), torch.zeros(3, 3, dtype=torch.int32)
    out = grid_cpu.lif_forward(steps, units, offsets, w, d, w_rec, d_rec, 6, consts, 8)
    grad_out, kick = torch.ones_like(out[3]), torch.zeros(3, dtype=dtype)
    calls = {
        "lif_forward": lambda: grid_cuda.lif_forward(
            steps, units, offsets, w, d, w_rec, d_rec, 6, consts, 8
        ),
        "lif_backward": lambda: grid_cuda.lif_backward(
            steps, units, offsets, *out[:3], out[3], out[4], grad_out, kick, w, d, w_rec, d_rec,
            6, consts,
        ),  # fmt: skip
        "li_forward": lambda: grid_cuda.li_forward(steps, units, offsets, w, d, 6, consts),
        "li_backward": lambda: grid_cuda.li_backward(
            steps, units, offsets, torch.ones(1, 6, 3, dtype=dtype), w, d, 6, consts
        ),
    }
    limits = dict(MAX_PER_THREAD=grid_cuda.kern.MAX_PER_THREAD, MAX_WORDS=grid_cuda.kern.MAX_WORDS)
    return _record(grid_cuda, limits, calls)


def record_precise_signatures(dtype: torch.dtype) -> dict[str, tuple]:
    """The same for the precise-mode kernels (``kernels.precise_cuda_host``)."""
    from delayprop.functional import GridSettings
    from delayprop.kernels import precise_cuda_host as host

    g = GridSettings(20.0, 5.0, 1.0, 1.0, 6, 0, precise=True).precise_grid(dtype)
    times = torch.tensor([0.5, 2.25, 3.0], dtype=dtype)
    units = torch.tensor([0, 1, 0], dtype=torch.int32)
    offsets = torch.tensor([0, 3], dtype=torch.int64)
    w, d = torch.full((3, 2), 2.0, dtype=dtype), torch.full((3, 2), 1.5, dtype=dtype)
    steps = torch.tensor([1, 3], dtype=torch.int32)
    spikes = (steps, steps.clone(), torch.tensor([0, 2], dtype=torch.int64),
              torch.full((2,), 0.5, dtype=dtype), torch.ones(2, dtype=dtype))  # fmt: skip

    def prepared():
        return host.prepare(times, units, offsets, w, d, g)

    calls = {
        "lif_forward": lambda: host.lif_forward(prepared(), 3, g, 8),
        "lif_backward": lambda: host.lif_backward(prepared(), 3, *spikes,
                                                  torch.ones(2, dtype=dtype),
                                                  torch.zeros(3, dtype=dtype), g),
        "li_forward": lambda: host.li_forward(prepared(), 3, g),
        "li_backward": lambda: host.li_backward(prepared(), 3, torch.ones(1, 6, 3, dtype=dtype),
                                                g),
    }  # fmt: skip
    return _record(host, {}, calls)


def _ptxas_info(ptx: str, cc: tuple[int, int]) -> str:
    ptxas = shutil.which("ptxas") or _wheel_ptxas()
    if ptxas is None:
        return "(ptxas not found)"
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "k.ptx"
        src.write_text(ptx)
        proc = subprocess.run(
            [ptxas, "-v", "--gpu-name", f"sm_{cc[0]}{cc[1]}", str(src), "-o", str(src) + ".o"],
            capture_output=True,
            text=True,
        )
    info = re.findall(r"(\d+ bytes stack frame, \d+ bytes spill stores, \d+ bytes spill loads"
                      r"|Used \d+ registers)", proc.stderr)  # fmt: skip
    return "; ".join(info) or proc.stderr.strip()


def _wheel_ptxas() -> str | None:
    try:
        import nvidia.cuda_nvcc  # the CUDA toolkit wheel of numba-cuda[cu12]
    except ImportError:
        return None
    path = Path(next(iter(nvidia.cuda_nvcc.__path__))) / "bin" / "ptxas"
    return str(path) if path.exists() else None


def _probe(x):
    x[0] = 1


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cc", default="8.0", help="compute capability, e.g. 8.0 (A100), 9.0 (H100)")
    args = p.parse_args(argv)
    cc = tuple(int(x) for x in args.cc.split("."))
    if len(cc) != 2:
        p.error(f"--cc must look like 9.0, got {args.cc!r}")
    from numba import cuda

    from delayprop.kernels import cuda as grid_kernels
    from delayprop.kernels import precise_cuda as precise_kernels

    _compile_without_gpu(cc)
    try:
        cuda.compile_ptx(_probe, "(float32[::1],)", cc=cc)
    except Exception as err:  # noqa: BLE001 - any missing library of the toolkit
        print(f"cannot compile for CUDA here ({err}); install the CUDA toolkit libraries: "
              "pip install 'numba-cuda[cu12]'")  # fmt: skip
        return 2
    failures = 0
    families = (("", grid_kernels, record_signatures, False),
                ("precise ", precise_kernels, record_precise_signatures, True))  # fmt: skip
    for label, kernels, record, float64_by_design in families:
        for dtype in (torch.float32, torch.float64):
            for name, sig in record(dtype).items():
                try:
                    ptx, _ = cuda.compile_ptx(getattr(kernels, name).py_func, sig, cc=cc)
                except Exception as err:  # noqa: BLE001 - reported, then the next kernel
                    print(f"{label}{name} {dtype}: does not compile: {err}")
                    failures += 1
                    continue
                f64 = sum(".f64" in line for line in ptx.splitlines())
                bad = dtype == torch.float32 and f64 > 0 and not float64_by_design
                failures += bad
                print(
                    f"{label + name:21s} {str(dtype):14s} compiles for sm_{cc[0]}{cc[1]}; "
                    f"{f64} float64 instructions{' (float32 kernel!)' if bad else ''}; "
                    f"{_ptxas_info(ptx, cc)}"
                )
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
