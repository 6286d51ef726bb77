"""Finite-difference checks of event-based gradients (the verification ladder of
docs/convergence.md).

``check_gradients`` compares the gradients that autograd computes (for a spiking network: the
adjoint) with central differences in float64, entry by entry.  The fourth-order stencil
(f(x-2h) - 8 f(x-h) + 8 f(x+h) - f(x+2h)) / 12h keeps both the truncation error (h^4) and the
rounding noise (the root finding leaves spike times accurate to ~1e-14 ms, amplified by 1/h)
far below the 1e-5 relative tolerance of the tests.  Spike times are piecewise smooth
functions of the parameters: a perturbation that adds or removes a spike crosses a discontinuity,
so such perturbations are skipped and counted instead of compared.

Checking a new neuron model, layer or loss::

    import torch, delayprop as dp
    from delayprop import losses
    from delayprop.verify import check_gradients

    torch.manual_seed(0)
    net = torch.nn.Sequential(
        dp.LIF(4, 8, dt=None, max_delay=10.0, delay_init=(0.0, 10.0), weight_init=dp.Normal(3, 1)),
        dp.LIF(8, 3, dt=None, weight_init=dp.Normal(3, 1)),
    )                                           # dt=None: exact engine, float64 parameters
    x = dp.Spikes.from_lists([([1.0, 2.5, 4.0], [0, 1, 3])], 4, 30.0, dtype=torch.float64)
    x.requires_grad_()

    def loss():                                 # any scalar built from the network's outputs
        t = losses.first_spike_times(net(x))
        return losses.time_invariant_mse(t, torch.tensor([1]))

    inputs = dict(net.named_parameters()) | {"input times": x.times}
    report = check_gradients(loss, inputs, watch=net, lower_bounds={"0.delay.raw": 0.0})
    print(report)
    report.assert_ok(rtol=1e-5)

``watch`` registers forward hooks on every submodule that returns ``Spikes`` and compares their
spike counts per (sample, unit); ``loss_fn`` may also return ``(loss, spikes...)`` to have other
spike batches watched.  Tensors must be float64 leaves that require grad.  Entries closer than
``2 eps`` of a lower bound (e.g. delays at 0 ms, which must stay >= 0) are differenced
one-sidedly with a fourth-order formula.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from ..spikes import Spikes

__all__ = ["check_gradients", "GradcheckReport", "TensorCheck"]

# finite-difference stencils of order h^4: (offsets in units of h, weights / 12h)
_CENTRAL = ((-2.0, -1.0, 1.0, 2.0), (1.0, -8.0, 8.0, -1.0))
_FORWARD = ((1.0, 2.0, 3.0, 4.0), (48.0, -36.0, 16.0, -3.0))  # plus -25 f(x)
_FORWARD_AT_X = -25.0


@dataclass(frozen=True)
class TensorCheck:
    """Result for one tensor: the checked flat indices with both gradients."""

    name: str
    indices: np.ndarray  # flat indices compared
    analytic: np.ndarray
    numeric: np.ndarray
    rel_error: np.ndarray  # |analytic - numeric| / max(|analytic|, |numeric|, floor)
    skipped: int  # perturbations that changed a spike count

    @property
    def checked(self) -> int:
        return len(self.indices)

    @property
    def max_rel_error(self) -> float:
        return float(self.rel_error.max()) if self.checked else 0.0

    def worst(self) -> str:
        if not self.checked:
            return "-"
        k = int(np.argmax(self.rel_error))
        return (
            f"[{int(self.indices[k])}] analytic {self.analytic[k]:.10g} "
            f"numeric {self.numeric[k]:.10g}"
        )


@dataclass(frozen=True)
class GradcheckReport:
    """All tensors of one ``check_gradients`` call."""

    tensors: tuple[TensorCheck, ...]
    eps: float

    @property
    def checked(self) -> int:
        return sum(t.checked for t in self.tensors)

    @property
    def skipped(self) -> int:
        return sum(t.skipped for t in self.tensors)

    @property
    def max_rel_error(self) -> float:
        return max((t.max_rel_error for t in self.tensors), default=0.0)

    def __getitem__(self, name: str) -> TensorCheck:
        for t in self.tensors:
            if t.name == name:
                return t
        raise KeyError(name)

    def __str__(self) -> str:
        lines = [f"gradient check (central differences, eps={self.eps:g}):"]
        width = max((len(t.name) for t in self.tensors), default=4)
        for t in self.tensors:
            lines.append(
                f"  {t.name:<{width}}  checked {t.checked:4d}  skipped {t.skipped:4d}  "
                f"max rel err {t.max_rel_error:.2e}  worst {t.worst()}"
            )
        return "\n".join(lines)

    def assert_ok(self, rtol: float = 1e-5, min_checked: int = 1, nonzero: bool = True) -> None:
        """Raise ``AssertionError`` (with the report) unless every tensor has at least
        ``min_checked`` compared entries, all within relative error ``rtol``, and (if
        ``nonzero``) some nonzero numeric gradient: a check of zeros against zeros proves
        nothing."""
        why = []
        bad = [t.name for t in self.tensors if t.max_rel_error > rtol]
        if bad:
            why.append(f"relative error above {rtol:g} in {bad}")
        few = [t.name for t in self.tensors if t.checked < min_checked]
        if few:
            why.append(f"fewer than {min_checked} entries compared in {few}")
        zero = [t.name for t in self.tensors if nonzero and not np.any(t.numeric != 0)]
        if zero:
            why.append(f"numeric gradient identically zero in {zero}")
        if why:
            raise AssertionError("; ".join(why) + "\n" + str(self))


class _SpikeWatch:
    """Spike counts per (sample, unit) of every ``Spikes`` a module tree produces."""

    def __init__(self, module: nn.Module | None) -> None:
        self.counts: list[Tensor] = []
        self._handles = []
        if module is not None:
            for m in module.modules():
                self._handles.append(m.register_forward_hook(self._hook))

    def _hook(self, _module, _inputs, output) -> None:
        if isinstance(output, Spikes):
            self.counts.append(output.counts_per_unit().detach().clone())

    def close(self) -> None:
        for h in self._handles:
            h.remove()


def _evaluate(loss_fn: Callable, watch: _SpikeWatch) -> tuple[Tensor, list[Tensor]]:
    watch.counts = []
    result = loss_fn()
    extra: Iterable = ()
    if isinstance(result, tuple):
        result, *extra = result
    if not isinstance(result, Tensor) or result.numel() != 1:
        raise TypeError("loss_fn must return a scalar tensor (or a tuple (loss, spikes...))")
    counts = list(watch.counts)
    for s in extra:
        for spikes in [s] if isinstance(s, Spikes) else s:
            counts.append(spikes.counts_per_unit().detach().clone())
    return result, counts


def _same(a: list[Tensor], b: list[Tensor]) -> bool:
    return len(a) == len(b) and all(torch.equal(x, y) for x, y in zip(a, b, strict=True))


def _check_inputs(inputs: Mapping[str, Tensor]) -> None:
    if not inputs:
        raise ValueError("no tensors to check")
    for name, t in inputs.items():
        if not isinstance(t, Tensor):
            raise TypeError(f"{name}: expected a tensor, got {type(t).__name__}")
        if t.dtype != torch.float64:
            raise ValueError(f"{name}: finite differences need float64, got {t.dtype}")
        if not (t.is_leaf and t.requires_grad):
            raise ValueError(f"{name}: must be a leaf tensor that requires grad")
        if not t.is_contiguous():
            raise ValueError(f"{name}: must be contiguous")


def check_gradients(
    loss_fn: Callable[[], Tensor | tuple],
    inputs: Mapping[str, Tensor],
    *,
    eps: float = 1e-4,
    max_entries: int | Mapping[str, int | None] | None = None,
    seed: int = 0,
    lower_bounds: Mapping[str, float] | None = None,
    watch: nn.Module | None = None,
    rel_floor: float = 1e-3,
) -> GradcheckReport:
    """Compare autograd's gradient of ``loss_fn()`` with central finite differences.

    Args:
        loss_fn: builds the scalar loss from the current values of ``inputs`` (no arguments);
            may return ``(loss, spikes...)`` to watch those spike batches.
        inputs: named float64 leaf tensors to check (parameters, input spike times).
        eps: finite-difference step h (units of each tensor: ms for times and delays).
        max_entries: check at most this many entries per tensor (a random subset), or all
            (None); a mapping gives it per tensor name (absent names: all).
        seed: seed of that subset.
        lower_bounds: per tensor name, a bound the entries must not cross (one-sided
            differences near it).
        watch: module whose submodules' ``Spikes`` outputs must keep their counts.
        rel_floor: denominators of relative errors are at least ``rel_floor`` times the largest
            analytic gradient of the tensor, so that entries with vanishing gradients are
            compared in absolute terms.

    Returns a ``GradcheckReport``; call ``assert_ok`` on it in tests.
    """
    _check_inputs(inputs)
    if not eps > 0:
        raise ValueError(f"eps must be > 0, got {eps}")
    bounds = dict(lower_bounds or {})
    unknown = set(bounds) - set(inputs)
    if unknown:
        raise ValueError(f"lower_bounds names unknown tensors {sorted(unknown)}")
    rng = np.random.default_rng(seed)
    spikes = _SpikeWatch(watch)
    try:
        for t in inputs.values():
            t.grad = None
        loss, base_counts = _evaluate(loss_fn, spikes)
        loss.backward()
        results = []
        for name, t in inputs.items():
            grad = torch.zeros_like(t) if t.grad is None else t.grad.detach()
            n = t.numel()
            limit = max_entries.get(name) if isinstance(max_entries, Mapping) else max_entries
            chosen = np.arange(n)
            if limit is not None and n > limit:
                chosen = np.sort(rng.choice(n, size=limit, replace=False))
            results.append(
                _check_tensor(
                    name,
                    t,
                    grad.reshape(-1),
                    chosen,
                    loss_fn,
                    spikes,
                    base_counts,
                    float(loss.detach()),
                    eps,
                    bounds.get(name),
                    rel_floor,
                )  # fmt: skip
            )
    finally:
        spikes.close()
    return GradcheckReport(tuple(results), eps)


def _check_tensor(name, t, grad, chosen, loss_fn, spikes, base_counts, loss0, eps, bound,
                  rel_floor) -> TensorCheck:  # fmt: skip
    flat = t.data.view(-1)
    kept, analytic, numeric = [], [], []
    skipped = 0
    with torch.no_grad():
        for idx in chosen:
            orig = flat[idx].clone()
            one_sided = bound is not None and float(orig) - 2 * eps < bound
            offsets, weights = _FORWARD if one_sided else _CENTRAL
            total = _FORWARD_AT_X * loss0 if one_sided else 0.0
            changed = False
            for k, c in zip(offsets, weights, strict=True):
                flat[idx] = orig + k * eps
                value, counts = _evaluate(loss_fn, spikes)
                changed |= not _same(counts, base_counts)
                total += c * float(value)
            flat[idx] = orig
            if changed:
                skipped += 1
                continue
            num = total / (12 * eps)
            kept.append(int(idx))
            analytic.append(float(grad[idx]))
            numeric.append(num)
    a, nmr = np.array(analytic), np.array(numeric)
    floor = max(rel_floor * float(np.abs(grad.numpy()).max(initial=0.0)), 1e-12)
    rel = np.abs(a - nmr) / np.maximum(np.maximum(np.abs(a), np.abs(nmr)), floor)
    return TensorCheck(name, np.array(kept, dtype=np.int64), a, nmr, rel, skipped)
