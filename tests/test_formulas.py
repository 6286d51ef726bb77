"""The formula module (``kernels.formulas``).

* the formulas give the same numbers compiled (as in the Numba kernels) and as plain Python (as
  in the torch reference); the CUDA kernels' side is checked against the CPU by
  ``cuda_checks.check_formulas`` (under numba-cuda's simulator in ``test_cuda.py``);
* the CUDA kernels, which call the formulas' ``@njit`` functions, type-check and lower for a GPU
  (the simulator runs them as Python and cannot).
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from delayprop.kernels import formulas

HAS_NUMBA_CUDA = importlib.util.find_spec("numba_cuda") is not None
BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


CASES = {  # arguments of each formula, drawn per element; the adjoint jump sees floored slopes
    "adjoint_jump": lambda g: (g.normal(), g.normal(), g.choice([-0.3, 1e-5, 0.7]), 1.2,
                               1.2e-3, g.normal() * 0.1),  # fmt: skip
    "arrival_read": lambda g: (g.normal(), g.normal(), g.normal(), 5.0),
    "state_step": lambda g: (g.normal(), g.normal(), 0.95, 0.8, 0.044),
    "adjoint_step": lambda g: (g.normal(), g.normal(), 0.95, 0.8, 0.18),
    "crossing_slope": lambda g: (g.normal(), g.normal(), g.normal(), 20.0),
    "readout_drive": lambda g: (g.normal(), g.normal(), 20.0),
}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", sorted(CASES))
def test_compiled_and_plain_python_formulas_agree_bit_for_bit(name, dtype):
    """The Numba kernels run the compiled formula, the torch reference its Python source."""
    f = getattr(formulas, name)
    g = np.random.default_rng(0)

    def values(result) -> np.ndarray:
        parts = result if isinstance(result, tuple) else (result,)
        return np.array([np.asarray(x).item() for x in parts], dtype)

    for _ in range(20):
        args = tuple(dtype(a) for a in CASES[name](g))
        compiled = values(f(*args))
        assert np.array_equal(compiled, values(f.py_func(*args))), args
        on_tensors = f.py_func(*(torch.tensor(a) for a in args))  # 0-d tensors of dtype
        parts = on_tensors if isinstance(on_tensors, tuple) else (on_tensors,)
        assert all(p.dtype == torch.from_numpy(compiled).dtype for p in parts)
        assert np.array_equal(compiled, values(on_tensors)), args


def test_adjoint_jump_is_the_eventprop_jump():
    lam_v, g, threshold, kick = 0.3, -1.5, 1.2, 0.05
    assert formulas.adjoint_jump(lam_v, g, 0.6, threshold, 1.2e-3, kick) == \
        lam_v + ((threshold * lam_v + g) / 0.6 - kick)  # fmt: skip
    # a near-tangential crossing: the slope is floored
    assert formulas.adjoint_jump(lam_v, g, -0.1, threshold, 1.2e-3, kick) == \
        lam_v + ((threshold * lam_v + g) / 1.2e-3 - kick)  # fmt: skip


@pytest.mark.skipif(not HAS_NUMBA_CUDA, reason="numba-cuda is not installed")
def test_cuda_kernels_type_check_and_lower_for_a_gpu(monkeypatch):
    """Every float32 kernel, with the argument types its driver passes, compiles to NVVM IR
    (typing and lowering by numba-cuda, no GPU or CUDA toolkit needed): the formulas become
    device code, the membrane update keeps its rounded libdevice operations and no float64
    arithmetic slips in."""
    from numba.cuda import config as cuda_config

    if cuda_config.ENABLE_CUDASIM:
        pytest.skip("numba-cuda runs as its simulator in this process")
    import numba.cuda.dispatcher as dispatcher
    from numba.cuda.compiler import compile_cuda

    from delayprop.kernels import cuda as kernels

    spec = importlib.util.spec_from_file_location("gpu_compile_check",
                                                  BENCHMARKS / "gpu_compile_check.py")  # fmt: skip
    check = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(check)
    monkeypatch.setattr(dispatcher, "get_current_device",
                        lambda: SimpleNamespace(compute_capability=(8, 0)))  # fmt: skip
    for name, sig in check.record_signatures(torch.float32).items():
        ir = compile_cuda(getattr(kernels, name).py_func, None, sig, cc=(8, 0)).library \
            .get_llvm_str()  # fmt: skip
        assert not re.search(r"\b(fadd|fsub|fmul|fdiv) double\b|\bfpext\b", ir), name
        assert "formulas" not in " ".join(re.findall(r"call [^\n]*", ir)), f"{name}: not inlined"
        if name.endswith("forward"):
            assert "__nv_fmul_rn" in ir and "__nv_fadd_rn" in ir, name
