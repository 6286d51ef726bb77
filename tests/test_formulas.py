"""The formula module (``kernels.formulas``) and the grid constants built on it.

* the propagator coefficients agree with a 50-digit evaluation of their textbook form for time
  constants far apart, close together and equal, so they are continuous across
  tau_mem == tau_syn (the old difference of two exponentials lost up to all of its digits
  there);
* the formulas give the same numbers compiled (as in the Numba kernels) and as plain Python (as
  in the torch reference); the CUDA kernels' side is checked against the CPU by
  ``cuda_checks.check_formulas`` (under numba-cuda's simulator in ``test_cuda.py``);
* the CUDA kernels, which call the formulas' ``@njit`` functions, type-check and lower for a GPU
  (the simulator runs them as Python and cannot).
"""

from __future__ import annotations

import importlib.util
import re
from decimal import Decimal, localcontext
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from delayprop.kernels import formulas, grid_constants

EPS = np.finfo(np.float64).eps
HAS_NUMBA_CUDA = importlib.util.find_spec("numba_cuda") is not None
BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def _reference(dt: float, tau_mem: float, tau_syn: float) -> tuple[Decimal, ...]:
    """(alpha, beta, c_vi, c_adj) to 50 digits from the textbook forms, the float arguments
    taken exactly."""
    with localcontext() as ctx:
        ctx.prec = 50
        dt_, tm, ts = Decimal(dt), Decimal(tau_mem), Decimal(tau_syn)
        alpha, beta = (-dt_ / tm).exp(), (-dt_ / ts).exp()
        if tm == ts:
            c_vi = c_adj = dt_ / tm * alpha
        else:
            c_vi = ts / (ts - tm) * (beta - alpha)
            c_adj = tm / (ts - tm) * (beta - alpha)
        return alpha, beta, c_vi, c_adj


def _rel(x: float, ref: Decimal) -> float:
    return float(abs(Decimal(x) - ref) / abs(ref))


TAU_PAIRS = [
    (20.0, 5.0),
    (5.0, 20.0),
    (10.0, 10.0),
    (10.0, float(np.nextafter(10.0, 11.0))),  # adjacent floats: delta rounds to 0
    *[(10.0, 10.0 * (1.0 + x)) for x in (1e-15, 1e-12, 1e-9, 1e-6, 1e-3)],
    *[(10.0 * (1.0 + x), 10.0) for x in (1e-13, 1e-7)],
]


@pytest.mark.parametrize("dt", [0.01, 1.0, 25.0])
@pytest.mark.parametrize("tau_mem, tau_syn", TAU_PAIRS)
def test_propagator_coefficients_match_a_high_precision_reference(dt, tau_mem, tau_syn):
    c = grid_constants(dt, tau_mem, tau_syn, 1.0)
    for name, value, ref in zip(("alpha", "beta", "c_vi", "c_adj"),
                                (c.alpha, c.beta, c.c_vi, c.c_adj),
                                _reference(dt, tau_mem, tau_syn)):  # fmt: skip
        assert _rel(value, ref) < 8 * EPS, f"{name}: {value!r} vs {ref}"


def test_equal_time_constants_is_one_exact_test():
    assert formulas.equal_time_constants(10.0, 10.0)
    assert not formulas.equal_time_constants(10.0, 10.0 * (1.0 + 1e-15))
    assert formulas.rate_difference(20.0, 5.0) == 1 / 20 - 1 / 5
    # the coefficients move smoothly through the equal case: no jump where the rule switches
    near = [grid_constants(1.0, 10.0, 10.0 * (1.0 + x), 1.0).c_vi for x in (-1e-14, 0.0, 1e-14)]
    assert abs(near[0] - near[1]) < 4 * EPS * near[1] and abs(near[2] - near[1]) < 4 * EPS * near[1]


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
