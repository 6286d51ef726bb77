"""The batch event list that carries spikes between layers.

A batch of spike trains is stored flat, sorted by sample and, within a sample, by time
(ties by unit).  Memory is O(number of spikes): independent of the simulated duration, the
time step and the maximum delay.

    times    float tensor [n_spikes], ms; the only differentiable field
    units    int32 tensor [n_spikes], index of the emitting neuron / input channel
    samples  int32 tensor [n_spikes], index of the sample in the batch
    offsets  int64 tensor [batch + 1]; sample b owns entries offsets[b]:offsets[b + 1]
    n_units  number of neurons / channels (units lie in [0, n_units))
    duration length of each trial, ms (spikes lie in [0, duration))
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

__all__ = ["Spikes"]


@dataclass(frozen=True, eq=False)
class Spikes:
    """A batch of spike trains as one flat, sorted event list (see module docstring).

    Build it with one of the ``from_*`` constructors, which validate and sort; the plain
    constructor trusts its arguments (use it only for arrays that are known to be valid, e.g.
    the output of a layer).
    """

    times: Tensor
    units: Tensor
    offsets: Tensor
    n_units: int
    duration: float
    samples: Tensor = field(default=None)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        if self.samples is None:
            object.__setattr__(self, "samples", samples_from_offsets(self.offsets))

    # ------------------------------------------------------------------ properties
    @property
    def batch_size(self) -> int:
        return int(self.offsets.numel()) - 1

    @property
    def n_spikes(self) -> int:
        return int(self.times.numel())

    @property
    def device(self) -> torch.device:
        return self.times.device

    def counts(self) -> Tensor:
        """Spikes per sample, int64 [batch]."""
        return self.offsets[1:] - self.offsets[:-1]

    def counts_per_unit(self) -> Tensor:
        """Spikes per (sample, unit), int64 [batch, n_units]."""
        flat = self.samples.long() * self.n_units + self.units.long()
        out = torch.bincount(flat, minlength=self.batch_size * self.n_units)
        return out.view(self.batch_size, self.n_units)

    def __len__(self) -> int:
        return self.batch_size

    def __repr__(self) -> str:
        return (
            f"Spikes(batch={self.batch_size}, n_units={self.n_units}, "
            f"n_spikes={self.n_spikes}, duration={self.duration} ms)"
        )

    # ------------------------------------------------------------------ validation
    def validate(self) -> Spikes:
        """Check every invariant; raise ``ValueError`` naming the first one broken."""
        _check_fields(self.times, self.units, self.offsets, self.n_units, self.duration)
        times = self.times.detach()
        if times.numel():
            same_sample = self.samples[1:] == self.samples[:-1]
            backwards = same_sample & (times[1:] < times[:-1])
            if bool(backwards.any()):
                i = int(torch.nonzero(backwards)[0, 0])
                raise ValueError(
                    f"spike times are not sorted within sample {int(self.samples[i])} "
                    f"(entry {i + 1}: {float(times[i + 1])} ms after {float(times[i])} ms); "
                    "build Spikes with a from_* constructor, which sorts"
                )
        return self

    # ------------------------------------------------------------------ constructors
    @classmethod
    def from_arrays(
        cls,
        times: Tensor | np.ndarray,
        units: Tensor | np.ndarray,
        samples: Tensor | np.ndarray,
        batch_size: int,
        n_units: int,
        duration: float,
        *,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
    ) -> Spikes:
        """Build from unsorted flat arrays of (time ms, unit, sample index); sorts them.

        Sorting keeps ``times`` differentiable when it is a tensor that requires grad.
        """
        t = torch.as_tensor(times, device=device)
        if not t.is_floating_point():
            t = t.to(dtype)
        elif t.dtype != dtype:
            t = t.to(dtype)
        u = _index_tensor("unit", units, t.device)
        s = _index_tensor("sample", samples, t.device)
        if not (t.dim() == u.dim() == s.dim() == 1) or not (len(t) == len(u) == len(s)):
            raise ValueError(
                "times, units and samples must be 1-D of equal length, got shapes "
                f"{tuple(t.shape)}, {tuple(u.shape)}, {tuple(s.shape)}"
            )
        if isinstance(batch_size, bool) or int(batch_size) != batch_size or batch_size < 0:
            raise ValueError(f"batch_size must be an integer >= 0, got {batch_size!r}")
        batch_size = int(batch_size)
        if s.numel() and (int(s.min()) < 0 or int(s.max()) >= batch_size):
            raise ValueError(
                f"sample index out of range [0, {batch_size}): "
                f"min {int(s.min())}, max {int(s.max())}"
            )
        _check_values(t.detach(), u, n_units, duration)
        order = _sort_order(t.detach(), u, s, n_units)
        t, u, s = t[order], u[order], s[order]
        counts = torch.bincount(s, minlength=batch_size)
        offsets = torch.zeros(batch_size + 1, dtype=torch.int64, device=t.device)
        torch.cumsum(counts, 0, out=offsets[1:])
        return cls(t, u.to(torch.int32), offsets, int(n_units), float(duration), s.to(torch.int32))

    @classmethod
    def from_lists(
        cls,
        trains: Sequence[tuple[Sequence[float] | np.ndarray, Sequence[int] | np.ndarray]],
        n_units: int,
        duration: float,
        **kwargs,
    ) -> Spikes:
        """Build from one ``(times_ms, units)`` pair per sample."""
        if not isinstance(trains, Sequence) or isinstance(trains, (str, bytes)):
            raise TypeError("trains must be a sequence of (times, units) pairs, one per sample")
        times, units, samples = [], [], []
        for b, pair in enumerate(trains):
            if len(pair) != 2:
                raise ValueError(f"sample {b}: expected a (times, units) pair, got {len(pair)}")
            t = np.asarray(pair[0], dtype=np.float64).reshape(-1)
            u = np.asarray(pair[1]).reshape(-1)
            if len(t) != len(u):
                raise ValueError(f"sample {b}: {len(t)} times but {len(u)} units")
            if u.size and not np.issubdtype(u.dtype, np.integer):
                if not np.all(np.mod(u, 1) == 0):
                    raise ValueError(f"sample {b}: unit indices must be integers")
            times.append(t)
            units.append(u)
            samples.append(np.full(len(t), b, dtype=np.int64))
        cat = (lambda xs, dt: np.concatenate(xs) if xs else np.zeros(0, dt))  # noqa: E731
        units = [u if np.issubdtype(u.dtype, np.integer) else u.astype(np.float64) for u in units]
        return cls.from_arrays(
            cat(times, np.float64),
            cat(units, np.int64),
            cat(samples, np.int64),
            len(trains),
            n_units,
            duration,
            **kwargs,
        )

    @classmethod
    def from_raster(cls, raster: Tensor | np.ndarray, dt: float, **kwargs) -> Spikes:
        """Build from a dense raster [batch, steps, n_units]; a nonzero entry at step n is a
        spike at time n * dt ms (counts > 1 are not supported: use from_arrays)."""
        r = torch.as_tensor(raster)
        if r.dim() != 3:
            raise ValueError(f"raster must be [batch, steps, n_units], got shape {tuple(r.shape)}")
        if dt <= 0 or not np.isfinite(dt):
            raise ValueError(f"dt must be a positive number of ms, got {dt}")
        if torch.is_floating_point(r) and bool(torch.isnan(r).any()):
            raise ValueError("raster contains NaN")
        if bool(((r != 0) & (r != 1)).any()):
            raise ValueError("raster entries must be 0 or 1 (one spike per step and unit)")
        b, n, u = torch.nonzero(r, as_tuple=True)
        batch, steps, n_units = r.shape
        return cls.from_arrays(
            n.double() * dt, u, b, batch, n_units, steps * dt, device=r.device, **kwargs
        )

    @classmethod
    def from_structured(
        cls,
        events: Sequence[np.ndarray],
        n_units: int,
        duration: float,
        *,
        time_scale: float = 1e-3,
        unit_field: str = "x",
        **kwargs,
    ) -> Spikes:
        """Build from tonic-style structured arrays (fields ``t`` and ``x``), one per sample.

        ``time_scale`` converts the ``t`` field to ms (tonic stores microseconds: 1e-3).
        """
        trains = []
        for b, ev in enumerate(events):
            names = getattr(getattr(ev, "dtype", None), "names", None) or ()
            if "t" not in names or unit_field not in names:
                raise ValueError(
                    f"sample {b}: structured array needs fields 't' and {unit_field!r}, "
                    f"has {names}"
                )
            trains.append((ev["t"].astype(np.float64) * time_scale, ev[unit_field]))
        return cls.from_lists(trains, n_units, duration, **kwargs)

    # ------------------------------------------------------------------ conversions
    def to_raster(self, dt: float, n_steps: int | None = None) -> Tensor:
        """Dense spike counts [batch, steps, n_units] (float32), spike at t -> step round(t/dt)."""
        if n_steps is None:
            n_steps = int(round(self.duration / dt))
        steps = torch.round(self.times.detach().double() / dt).long()
        keep = steps < n_steps
        out = torch.zeros(self.batch_size, n_steps, self.n_units, device=self.device)
        flat = (self.samples.long()[keep] * n_steps + steps[keep]) * self.n_units
        flat = flat + self.units.long()[keep]
        out.view(-1).index_add_(0, flat, torch.ones_like(flat, dtype=out.dtype))
        return out

    def to_lists(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per-sample ``(times_ms, units)`` numpy pairs."""
        t = self.times.detach().cpu().numpy()
        u = self.units.cpu().numpy()
        o = self.offsets.cpu().numpy()
        return [(t[o[b] : o[b + 1]], u[o[b] : o[b + 1]]) for b in range(self.batch_size)]

    def sample(self, b: int) -> tuple[Tensor, Tensor]:
        """Times and units of sample ``b``."""
        lo, hi = int(self.offsets[b]), int(self.offsets[b + 1])
        return self.times[lo:hi], self.units[lo:hi]

    def to(self, device: torch.device | str) -> Spikes:
        return Spikes(
            self.times.to(device),
            self.units.to(device),
            self.offsets.to(device),
            self.n_units,
            self.duration,
            self.samples.to(device),
        )

    def with_times(self, times: Tensor) -> Spikes:
        """The same events with new (e.g. differentiable) times; order must be preserved."""
        if times.shape != self.times.shape:
            raise ValueError(f"times must have shape {tuple(self.times.shape)}")
        return Spikes(times, self.units, self.offsets, self.n_units, self.duration, self.samples)

    def requires_grad_(self, flag: bool = True) -> Spikes:
        self.times.requires_grad_(flag)
        return self

    @staticmethod
    def concat(batches: Sequence[Spikes]) -> Spikes:
        """Concatenate batches along the sample axis (same n_units, same duration)."""
        if not batches:
            raise ValueError("nothing to concatenate")
        first = batches[0]
        for s in batches[1:]:
            if s.n_units != first.n_units or s.duration != first.duration:
                raise ValueError("batches differ in n_units or duration")
        counts = torch.cat([s.counts() for s in batches])
        offsets = torch.zeros(len(counts) + 1, dtype=torch.int64, device=first.device)
        torch.cumsum(counts, 0, out=offsets[1:])
        return Spikes(
            torch.cat([s.times for s in batches]),
            torch.cat([s.units for s in batches]),
            offsets,
            first.n_units,
            first.duration,
        )


# ---------------------------------------------------------------------- helpers
def samples_from_offsets(offsets: Tensor) -> Tensor:
    """int32 sample index of every event from per-sample offsets [batch + 1]."""
    counts = offsets[1:] - offsets[:-1]
    if offsets.device.type == "cpu":  # numpy's repeat is ~300x faster than torch's on CPU
        idx = np.repeat(np.arange(len(counts), dtype=np.int32), counts.numpy())
        return torch.from_numpy(idx)
    return torch.repeat_interleave(
        torch.arange(len(counts), dtype=torch.int32, device=offsets.device), counts
    )


def _index_tensor(what: str, values: Tensor | np.ndarray, device: torch.device) -> Tensor:
    """int64 indices from integer or integral float values; fractions (1.9), NaN and values
    beyond int64 are an error, never truncated."""
    v = torch.as_tensor(values, device=device)
    if v.dtype == torch.bool or v.is_complex():
        raise ValueError(f"{what} indices must be integers, got dtype {v.dtype}")
    if v.is_floating_point():
        if v.numel() and not bool((torch.isfinite(v) & (v == torch.round(v))).all()):
            bad = v[~(torch.isfinite(v) & (v == torch.round(v)))][0]
            raise ValueError(f"{what} indices must be integers, got {float(bad)}")
        if v.numel() and float(v.abs().max()) >= 2.0**62:
            raise ValueError(f"{what} index out of range: {float(v.abs().max())}")
    return v.to(torch.int64)


def _check_values(times: Tensor, units: Tensor, n_units: int, duration: float) -> None:
    if isinstance(n_units, bool) or int(n_units) != n_units or not 0 < n_units < 2**31:
        raise ValueError(f"n_units must be a positive integer below 2**31, got {n_units!r}")
    if not (duration > 0 and np.isfinite(duration)):
        raise ValueError(f"duration must be a positive number of ms, got {duration}")
    if times.numel() == 0:
        return
    if bool(torch.isnan(times).any()):
        raise ValueError(f"spike times contain NaN ({int(torch.isnan(times).sum())} entries)")
    if bool(torch.isinf(times).any()):
        raise ValueError("spike times contain infinity")
    tmin, tmax = float(times.min()), float(times.max())
    if tmin < 0:
        raise ValueError(f"spike times must be >= 0 ms, found {tmin} ms")
    if tmax >= duration:
        raise ValueError(
            f"spike times must be < duration = {duration} ms, found a spike at {tmax} ms"
        )
    umin, umax = int(units.min()), int(units.max())
    if umin < 0 or umax >= n_units:
        raise ValueError(f"unit index out of range [0, {n_units}): min {umin}, max {umax}")


def _check_fields(times: Tensor, units: Tensor, offsets: Tensor, n_units: int, duration: float):
    if times.dim() != 1 or units.dim() != 1 or offsets.dim() != 1:
        raise ValueError("times, units and offsets must be 1-D")
    if len(times) != len(units):
        raise ValueError(f"{len(times)} times but {len(units)} units")
    if offsets.numel() < 1 or int(offsets[0]) != 0 or int(offsets[-1]) != len(times):
        raise ValueError("offsets must start at 0 and end at the number of spikes")
    if bool((offsets[1:] < offsets[:-1]).any()):
        raise ValueError("offsets must be non-decreasing")
    _check_values(times.detach(), units, n_units, duration)


def _sort_order(times: Tensor, units: Tensor, samples: Tensor, n_units: int) -> Tensor:
    """Stable order by (sample, time, unit)."""
    if times.numel() == 0:
        return torch.zeros(0, dtype=torch.int64, device=times.device)
    by_unit = torch.argsort(units, stable=True)
    by_time = by_unit[torch.argsort(times[by_unit], stable=True)]
    return by_time[torch.argsort(samples[by_time], stable=True)]
