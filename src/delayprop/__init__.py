"""delayprop: spiking neural networks whose synaptic delays are learned together with their
weights, with exact event-based (EventProp) gradients."""

from . import exact, losses
from .delays import AxonalDelay, Delay, DendriticDelay, SynapticDelay
from .gradcheck import GradcheckReport, check_gradients
from .init import Normal, Uniform
from .nn import LIF, LIReadout, constrain_, delay_modules, split_parameters
from .regularization import SpikeCountRegularizer
from .spikes import Spikes

__version__ = "0.1.0"

__all__ = [
    "losses",
    "Spikes",
    "LIF",
    "LIReadout",
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
    "exact",
    "check_gradients",
    "GradcheckReport",
    "__version__",
]
