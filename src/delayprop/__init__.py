"""delayprop: spiking neural networks whose synaptic delays are learned together with their
weights, with exact event-based (EventProp) gradients."""

import os

# Idle OpenMP threads of torch and of Numba's kernels spin by default; when the machine is busy
# (or both runtimes hold threads) the spinning threads take the cores from the working ones:
# measured 2x slower training steps under load, 30x for small torch-only steps.  Passive waiting
# avoids that; it must be set before the OpenMP runtime starts, and a user's own setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from . import exact, losses  # noqa: E402
from .delays import AxonalDelay, Delay, DendriticDelay, SynapticDelay
from .init import Normal, Uniform
from .nn import (
    LIF,
    LIReadout,
    SpikeRecorder,
    constrain_,
    delay_modules,
    split_parameters,
    time_constant_parameters,
)
from .options import EngineOptions, LayerOptions, NeuronOptions
from .regularization import SpikeCountRegularizer
from .spikes import Spikes
from .verify import GradcheckReport, check_gradients

__version__ = "0.1.0"

__all__ = [
    "losses",
    "Spikes",
    "LIF",
    "LIReadout",
    "LayerOptions",
    "NeuronOptions",
    "EngineOptions",
    "SpikeRecorder",
    "Delay",
    "SynapticDelay",
    "AxonalDelay",
    "DendriticDelay",
    "Normal",
    "Uniform",
    "SpikeCountRegularizer",
    "constrain_",
    "delay_modules",
    "split_parameters",
    "time_constant_parameters",
    "exact",
    "check_gradients",
    "GradcheckReport",
    "__version__",
]
