"""Host side shared by the drivers of both engines (``grid_cpu``, ``grid_cuda``,
``precise_host``, ``exact._host``): output room for spikes, reruns, compaction, layout checks.

A layer's kernel cannot know in advance how many spikes a sample fires, so every driver runs
the same loop (``run_in_slots``): each sample of the batch gets ``cap`` slots of its own in the
output arrays, ``cap`` a guess of the spikes per sample (a ``SpikeCapacity``, or a plain int);
the samples that need more run again with more room, and the spikes are then compacted into
flat arrays (samples one after another) with per-sample offsets.  A kernel reports each
sample's count, or -1 where it stopped at ``cap`` without knowing the count (the exact engine:
an event-driven sample may fire without bound); a known count is the room of the rerun, an
unknown one doubles the room, up to an optional limit.

Nothing here depends on the device: the loop runs on torch tensors of any device
(``run_in_device_slots``) and, through ``run_in_slots``, on numpy arrays (zero-copy views).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor

from ..validation import check_dtype, check_event_arrays
from ._grid_math import GridConstants

__all__ = [
    "SpikeCapacity",
    "Capacity",
    "SpikeLimitExceeded",
    "run_in_slots",
    "run_in_device_slots",
    "check_grid_layout",
    "check_spike_gradients",
    "check_voltage_gradient",
    "adaptation_jumps",
    "check_tau_grad",
    "layer_tau_grad",
]


class SpikeCapacity:
    """How many output spikes per sample a layer's next call makes room for: a hint that only
    affects speed (a sample that needs more is run again with enough room).

    Pass one object to every call of a layer (``GridSettings.capacity``,
    ``ExactSettings.capacity``; ``nn.LIF`` keeps one per layer): after each call the host
    layer sets it from that call's largest spike count per sample, with some margin.  A plain
    int instead is a guess for one call that nothing updates.
    """

    def __init__(self, per_sample: int) -> None:
        self.per_sample = max(int(per_sample), 1)

    def observe(self, most: int) -> None:
        """Size the next call for ``most`` spikes per sample (the last call's largest count)."""
        self.per_sample = max(16, int(1.25 * most) + 16)

    def __repr__(self) -> str:
        return f"SpikeCapacity({self.per_sample})"


#: what the drivers accept as a capacity: a hint they update, or a guess for one call
Capacity = int | SpikeCapacity


class SpikeLimitExceeded(Exception):
    """A sample needs more than ``limit`` output spikes; with ``pending`` > 0, ``pending``
    samples each needing more than ``limit`` exceed the room one call may allocate."""

    def __init__(self, sample: int, limit: int, pending: int = 0) -> None:
        super().__init__(f"sample {sample} needs more than {limit} spikes")
        self.sample, self.limit, self.pending = sample, limit, pending


#: ``run(sample_ids, cap)`` of ``run_in_device_slots``: flat arrays [len(sample_ids) * cap] (slots
#: ``r * cap ...`` belong to sample ``sample_ids[r]``) and the count of each sample [len]
DeviceRun = Callable[[Tensor, int], tuple[list[Tensor], Tensor]]


def run_in_device_slots(
    run: DeviceRun,
    batch: int,
    capacity: Capacity,
    device: torch.device,
    *,
    limit: int | None = None,
    max_slots: int | None = None,
) -> tuple[list[Tensor], Tensor]:
    """Run a layer whose kernel writes each sample's spikes into ``cap`` slots of its own.

    ``run(sample_ids, cap)`` (int64 ids on ``device``) returns the slot arrays and the spike
    count of each sample, or -1 for a sample that ran out of room without counting.  Samples
    that do not fit run again: with exactly enough room where their count is known, with twice
    the room where it is not, up to ``limit`` spikes per sample (None: no limit; beyond it
    ``SpikeLimitExceeded``) and ``max_slots`` slots per call over all samples (None: no bound).
    Returns the arrays compacted (samples one after another) and offsets [batch + 1] (int64).
    One device synchronisation per run of the kernel when every sample fits, none in the
    compaction.  A ``SpikeCapacity`` is updated from the counts.
    """
    hint = capacity if isinstance(capacity, SpikeCapacity) else None
    cap = max(int(hint.per_sample if hint is not None else capacity), 1)
    if limit is not None:
        limit = max(int(limit), 1)
        cap = min(cap, limit)
    if max_slots is not None:
        cap = min(cap, max(max_slots // max(batch, 1), 1))
    counts = torch.zeros(batch, dtype=torch.int64, device=device)
    pending = torch.arange(batch, dtype=torch.int64, device=device)
    runs: list[tuple[Tensor, Tensor, int, int, list[Tensor]]] = []
    total = most = 0
    while True:
        arrays, got = run(pending, cap)
        fits = (got >= 0) & (got <= cap)
        kept = torch.where(fits, got, 0)
        zero = got.new_zeros(1)  # the maximum over no samples
        n_over, n_kept, most_kept, most_got = torch.stack(
            [(~fits).sum(), kept.sum(), torch.cat((kept, zero)).max(), torch.cat((got, zero)).max()]
        ).tolist()  # one synchronisation
        counts[pending] = kept
        runs.append((pending, kept, cap, n_kept, arrays))
        total += n_kept
        most = max(most, most_kept)
        if n_over == 0:
            break
        over = ~fits
        if limit is not None and cap >= limit:
            raise SpikeLimitExceeded(int(pending[over][0]), limit)
        room = None if max_slots is None else max_slots // n_over
        if room is not None and room <= cap:
            raise SpikeLimitExceeded(int(pending[over][0]), cap, n_over)
        cap = most_got if most_got > cap else 2 * cap  # the exact need, where it is known
        if limit is not None:
            cap = min(cap, limit)
        if room is not None:
            cap = min(cap, room)
        pending = pending[over]
    offsets = torch.zeros(batch + 1, dtype=torch.int64, device=device)
    torch.cumsum(counts, 0, out=offsets[1:])
    if len(runs) == 1:  # every sample fitted at once: its kept slots, in order, are the output
        _, kept, run_cap, n_kept, arrays = runs[0]
        slots = _kept_index(kept, n_kept, _row_starts(kept, run_cap))
        out = [a.reshape(-1).index_select(0, slots) for a in arrays]
    else:
        out = [torch.empty(total, dtype=a.dtype, device=device) for a in runs[0][4]]
        for ids, kept, run_cap, n_kept, arrays in runs:
            slots = _kept_index(kept, n_kept, _row_starts(kept, run_cap))
            dst = _kept_index(kept, n_kept, offsets[ids])
            for a, b in zip(arrays, out, strict=True):
                b.index_copy_(0, dst, a.reshape(-1).index_select(0, slots))
    if hint is not None and batch > 0:
        hint.observe(most)
    return out, offsets


def _row_starts(counts: Tensor, cap: int) -> Tensor:
    """r * cap for each row r of a run's slot arrays."""
    return torch.arange(counts.numel(), device=counts.device) * cap


def _kept_index(counts: Tensor, total: int, base: Tensor) -> Tensor:
    """base[r] + e for e < counts[r], row after row: where the ``counts[r]`` kept entries of row
    r lie when the row begins at ``base[r]`` ([total] int64; ``total`` = counts.sum(), known to
    the caller, so no device synchronisation)."""
    first = torch.cumsum(counts, 0) - counts  # row r's first entry among all kept entries
    pos = torch.arange(total, device=counts.device)
    return pos + torch.repeat_interleave(base - first, counts, output_size=total)


def run_in_slots(
    run: Callable[[np.ndarray, int], tuple[list[np.ndarray], np.ndarray]],
    batch: int,
    capacity: Capacity,
    *,
    limit: int | None = None,
    max_slots: int | None = None,
) -> tuple[list[np.ndarray], np.ndarray]:
    """``run_in_device_slots`` for a CPU kernel on numpy arrays: ``run(sample_ids, cap)``
    takes int64 ids and returns numpy slot arrays and counts; returns numpy arrays and
    offsets (no copies between numpy and torch)."""

    def run_tensors(sample_ids: Tensor, cap: int) -> tuple[list[Tensor], Tensor]:
        arrays, counts = run(sample_ids.numpy(), cap)
        return [torch.from_numpy(a) for a in arrays], torch.from_numpy(counts)

    out, offsets = run_in_device_slots(run_tensors, batch, capacity, torch.device("cpu"),
                                       limit=limit, max_slots=max_slots)  # fmt: skip
    return [a.numpy() for a in out], offsets.numpy()


# ----------------------------------------------------------------------------- layout checks
def check_grid_layout(
    in_steps: Tensor, in_units: Tensor, in_offsets: Tensor, w_t: Tensor, d_t: Tensor,
    w_rec_t: Tensor | None = None, d_rec_t: Tensor | None = None,
) -> None:  # fmt: skip
    """Shapes and dtypes the time-grid kernels rely on (a mismatch would read out of bounds):
    input spikes as int32 steps and units with int64 offsets, weights [n_in, n_out] of a
    supported float dtype with int32 delay steps of the same shape, recurrent weights and
    delays [n_out, n_out] or empty.  O(1): no pass over the values."""
    check_event_arrays("input", in_steps, in_units, in_offsets)
    if in_steps.dtype != torch.int32:
        raise ValueError(f"input: spike steps must be int32, got {in_steps.dtype}")
    if w_t.dim() != 2 or d_t.shape != w_t.shape or d_t.dtype != torch.int32:
        raise ValueError(
            f"weights must be [n_in, n_out] with int32 delay steps of the same shape, got "
            f"{tuple(w_t.shape)} and {tuple(d_t.shape)} {d_t.dtype}"
        )
    check_dtype("weights", w_t.dtype)
    if w_rec_t is not None and w_rec_t.numel():
        n_out = w_t.shape[1]
        if w_rec_t.shape != (n_out, n_out) or d_rec_t.shape != w_rec_t.shape:
            raise ValueError(
                f"recurrent weights and delays must be [{n_out}, {n_out}], got "
                f"{tuple(w_rec_t.shape)} and {tuple(d_rec_t.shape)}"
            )
        if w_rec_t.dtype != w_t.dtype:
            raise ValueError(f"recurrent weights are {w_rec_t.dtype}, weights {w_t.dtype}")
    if d_rec_t is not None and d_rec_t.dtype != torch.int32:
        raise ValueError(f"recurrent delay steps must be int32, got {d_rec_t.dtype}")


def check_spike_gradients(out_steps: Tensor, out_units: Tensor, out_offsets: Tensor,
                          out_vdot: Tensor, grad_out: Tensor, kick: Tensor, n_out: int,
                          batch: int) -> None:  # fmt: skip
    """A LIF backward's own spikes (as its forward returned them), their dL/dt and the
    regulariser's kick [n_out] fit together.  O(1)."""
    check_event_arrays("output", out_steps, out_units, out_offsets)
    if out_offsets.numel() != batch + 1:
        raise ValueError(f"output offsets must have batch + 1 = {batch + 1} entries, got "
                         f"{out_offsets.numel()}")  # fmt: skip
    if not out_steps.numel() == out_vdot.numel() == grad_out.numel():
        raise ValueError("output spikes, their vdot and their gradients differ in length")
    if kick.shape != (n_out,):
        raise ValueError(f"kick must be [{n_out}], got {tuple(kick.shape)}")


def check_voltage_gradient(grad_v: Tensor, batch: int, n_steps: int, n_out: int) -> None:
    """dL/dV of an LI readout is [batch, n_steps, n_out].  O(1)."""
    if tuple(grad_v.shape) != (batch, n_steps, n_out):
        raise ValueError(f"grad_v must be {[batch, n_steps, n_out]}, got {list(grad_v.shape)}")


def adaptation_jumps(b: Tensor | None, consts: GridConstants, w_t: Tensor) -> Tensor:
    """The adaptation jumps b [n_out] (V units) as the LIF kernels take them: ``b`` itself, or
    an empty tensor of the weights' dtype and device without adaptation.  ``b`` must be given
    exactly when ``consts`` has an adaptation time constant, as a contiguous-able [n_out]
    tensor of the weights' dtype.  O(1)."""
    if (b is not None) != consts.adaptive:
        raise ValueError("adaptation jumps b must be given exactly when the constants have "
                         f"tau_adapt (tau_adapt={consts.tau_adapt} ms, b "
                         f"{'given' if b is not None else 'missing'})")  # fmt: skip
    if b is None:
        return w_t.new_zeros(0)
    n_out = w_t.shape[1]
    if b.shape != (n_out,) or b.dtype != w_t.dtype:
        raise ValueError(f"adaptation jumps b must be [{n_out}] {w_t.dtype}, got "
                         f"{tuple(b.shape)} {b.dtype}")  # fmt: skip
    return b.detach().contiguous()


def check_tau_grad(tau_grad: bool, n_jumps: int) -> None:
    """Gradients of the time constants (``tau_grad``) are not derived for adaptive neurons
    (``n_jumps`` > 0 adaptation jumps)."""
    if tau_grad and n_jumps:
        raise ValueError("gradients of the time constants (learn_tau) are not derived for "
                         "adaptive neurons (tau_adapt)")  # fmt: skip


def layer_tau_grad(parts: Tensor) -> Tensor:
    """[dL/dtau_mem, dL/dtau_syn] of a layer from the kernels' per-worker sums per neuron
    ``parts`` [n_workers, 2 * n_out] (dL/dtau_mem of every neuron, then dL/dtau_syn), summed
    over workers, then neurons; empty where ``parts`` is [n_workers, 0] (none asked)."""
    if parts.shape[1] == 0:
        return parts.new_zeros(0)
    return parts.sum(0).view(2, -1).sum(1)
