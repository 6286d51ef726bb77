"""Compile the CUDA kernels for a GPU architecture without a GPU, and report their resources.

numba-cuda's simulator (which the tests use where there is no GPU) runs the kernels as Python,
so it cannot catch what only the real compiler sees: a typing error, or float64 arithmetic
slipping into a float32 kernel (slow on most GPUs).  This script compiles every kernel to PTX
for ``--cc`` in float32 and float64 with the argument types the host drivers really pass
(recorded by calling the drivers on a tiny problem with the launches intercepted), checks that
the float32 kernels contain no float64 instruction, and, where ``ptxas`` is found (the CUDA
toolkit wheels of ``numba-cuda[cu12]``), prints registers, stack and spills per kernel.

Usage (needs ``pip install 'numba-cuda[cu12]'``, no GPU)::

    python benchmarks/gpu_compile_check.py --cc 9.0

Exit status 1 if a kernel does not compile or a float32 kernel uses float64, 2 if the CUDA
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


def record_signatures(dtype: torch.dtype) -> dict[str, tuple]:
    """Numba argument types of each kernel as the drivers launch it (one tiny problem)."""
    from delayprop.kernels import grid_constants, grid_cpu, grid_cuda

    recorded: dict[str, tuple] = {}

    class Recorder:
        def __init__(self, name: str):
            self.name = name

        def __getitem__(self, _launch_config):
            return self

        def __call__(self, *args):
            recorded[self.name] = tuple(numba.typeof(a) for a in args)
            raise _Launched

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
            steps, units, offsets, *out[:3], out[3], grad_out, kick, w, d, w_rec, d_rec, 6, consts
        ),
        "li_forward": lambda: grid_cuda.li_forward(steps, units, offsets, w, d, 6, consts),
        "li_backward": lambda: grid_cuda.li_backward(
            steps, units, offsets, torch.ones(1, 6, 3, dtype=dtype), w, d, 6, consts
        ),
    }
    kern, simulator = grid_cuda.kern, grid_cuda.SIMULATOR
    limits = dict(MAX_PER_THREAD=kern.MAX_PER_THREAD, MAX_WORDS=kern.MAX_WORDS)
    grid_cuda.kern = SimpleNamespace(**limits, **{k: Recorder(k) for k in KERNELS})
    grid_cuda.SIMULATOR = True  # numpy arguments, no stream: nothing touches a device
    try:
        for call in calls.values():
            try:
                call()
            except _Launched:
                pass
    finally:
        grid_cuda.kern, grid_cuda.SIMULATOR = kern, simulator
    return recorded


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

    from delayprop.kernels import cuda as kernels

    _compile_without_gpu(cc)
    try:
        cuda.compile_ptx(_probe, "(float32[::1],)", cc=cc)
    except Exception as err:  # noqa: BLE001 - any missing library of the toolkit
        print(f"cannot compile for CUDA here ({err}); install the CUDA toolkit libraries: "
              "pip install 'numba-cuda[cu12]'")  # fmt: skip
        return 2
    failures = 0
    for dtype in (torch.float32, torch.float64):
        for name, sig in record_signatures(dtype).items():
            try:
                ptx, _ = cuda.compile_ptx(getattr(kernels, name).py_func, sig, cc=cc)
            except Exception as err:  # noqa: BLE001 - reported, then the next kernel
                print(f"{name} {dtype}: does not compile: {err}")
                failures += 1
                continue
            f64 = sum(".f64" in line for line in ptx.splitlines())
            bad = dtype == torch.float32 and f64 > 0
            failures += bad
            print(
                f"{name:13s} {str(dtype):14s} compiles for sm_{cc[0]}{cc[1]}; "
                f"{f64} float64 instructions{' (float32 kernel!)' if bad else ''}; "
                f"{_ptxas_info(ptx, cc)}"
            )
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
