"""Hardware profiles: declarative descriptions of a target that runs a trained network.

A profile states what the target can represent; ``delayprop.hardware.constraint`` turns it into
the quantisation that the forward pass sees during constraint-aware training.  Times in ms;
delays are given in time steps of the target.

Built-in profiles (sources and what could not be sourced: docs/deploy.md):

* ``float``: an unconstrained target (float weights, continuous delays, any engine).
* ``loihi``: Intel Loihi 2 as used for EventProp with delays (Meszaros, Knight, Timcheck,
  Nowotny 2025): integer delays of 0..62 steps, 8-bit signed weights with one scale
  (exponent) per projection.
* ``spinnaker``: SpiNNaker with sPyNNaker: integer delays of 1..144 steps (16 steps in the
  synapse core's ring buffer, longer ones through a delay-extension population), 16-bit signed
  weights with one scale per projection.

Delay counting: delayprop's delay of d steps means that a spike of step n makes the current
jump at the end of step n + d, so that the voltage sees it from step n + d + 1 on.  A target
that counts the one-step transmission latency into its delay (sPyNNaker's minimum delay of one
time step is that latency) has ``delay_offset_steps = 1``: its delay = delayprop's + 1, and the
profile's range is given in delayprop's count.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

__all__ = ["HardwareProfile", "PROFILES", "get_profile"]

_SCALES = ("layer", "neuron")


@dataclass(frozen=True)
class HardwareProfile:
    """What a target can represent.

    Args:
        name: the profile's name.
        dt: the target's time step, ms, or None to use the model's own dt (one hardware step
            per model step; a model on the exact engine then gets ``default_dt``).
        default_dt: time step for models without one (exact engine), ms.
        integer_delays: delays are whole numbers of steps (False: continuous, no time grid
            imposed).
        delay_min_steps, delay_max_steps: allowed delay range in steps, counted as delayprop
            counts (see the module docstring; None: no upper bound beyond the layer's own
            max_delay).
        delay_offset_steps: the target's own delay count minus delayprop's.
        delay_slots: steps a delay may span before the target needs extra resources (SpiNNaker:
            a delay-extension population); None if there is no such limit.
        weight_bits: signed integer weight width (two's complement: -2^(b-1) .. 2^(b-1) - 1);
            None for float weights.
        weight_scale: ``"layer"`` (one scale per weight matrix) or ``"neuron"`` (one per
            postsynaptic neuron, i.e. per row of [n_out, n_in]); the scale is chosen so that the
            largest magnitude maps to 2^(b-1) - 1.
        weight_noise_sd: standard deviation of Gaussian noise added to every weight in each
            forward pass, as a fraction of the largest weight magnitude of its matrix (0: none).
    """

    name: str
    dt: float | None = None
    default_dt: float = 1.0
    integer_delays: bool = True
    delay_min_steps: int = 0
    delay_max_steps: int | None = None
    delay_offset_steps: int = 0
    delay_slots: int | None = None
    weight_bits: int | None = None
    weight_scale: str = "layer"
    weight_noise_sd: float = 0.0

    def __post_init__(self) -> None:
        if self.dt is not None and not (self.dt > 0 and math.isfinite(self.dt)):
            raise ValueError(f"profile {self.name!r}: dt must be > 0 ms or None, got {self.dt}")
        if not self.default_dt > 0:
            raise ValueError(f"profile {self.name!r}: default_dt must be > 0 ms")
        if self.delay_min_steps < 0 or self.delay_offset_steps < 0:
            raise ValueError(
                f"profile {self.name!r}: delay_min_steps and delay_offset_steps must be >= 0"
            )
        if self.delay_max_steps is not None and self.delay_max_steps < self.delay_min_steps:
            raise ValueError(
                f"profile {self.name!r}: delay_max_steps ({self.delay_max_steps}) is below "
                f"delay_min_steps ({self.delay_min_steps})"
            )
        if self.weight_bits is not None and self.weight_bits < 2:
            raise ValueError(f"profile {self.name!r}: weight_bits must be >= 2 or None")
        if self.weight_scale not in _SCALES:
            raise ValueError(
                f"profile {self.name!r}: weight_scale must be one of {_SCALES}, "
                f"got {self.weight_scale!r}"
            )
        if self.weight_noise_sd < 0:
            raise ValueError(f"profile {self.name!r}: weight_noise_sd must be >= 0")

    @property
    def weight_levels(self) -> int | None:
        """Largest weight magnitude in integer units, 2^(b-1) - 1 (None for float weights)."""
        return None if self.weight_bits is None else 2 ** (self.weight_bits - 1) - 1

    def time_step(self, model_dt: float | None) -> float | None:
        """The time step the constrained model runs at, ms (None: the exact engine for a
        target without a time grid)."""
        if self.dt is not None:
            return self.dt
        if not self.integer_delays:
            return model_dt
        return model_dt if model_dt is not None else self.default_dt


PROFILES: dict[str, HardwareProfile] = {
    "float": HardwareProfile("float", integer_delays=False),
    "loihi": HardwareProfile(
        "loihi", delay_min_steps=0, delay_max_steps=62, weight_bits=8, weight_scale="layer"
    ),
    "spinnaker": HardwareProfile(
        "spinnaker", delay_min_steps=0, delay_max_steps=143, delay_offset_steps=1,
        delay_slots=16, weight_bits=16, weight_scale="layer",
    ),  # fmt: skip
}


def get_profile(name: str | HardwareProfile, **changes) -> HardwareProfile:
    """A built-in profile by name (``float``, ``loihi``, ``spinnaker``) or a profile passed
    through, with field ``changes`` applied (e.g. ``dt=0.5``, ``weight_scale="neuron"``)."""
    if isinstance(name, HardwareProfile):
        profile = name
    elif name in PROFILES:
        profile = PROFILES[name]
    else:
        raise ValueError(f"unknown hardware profile {name!r}; choose one of {sorted(PROFILES)}")
    return replace(profile, **changes) if changes else profile
