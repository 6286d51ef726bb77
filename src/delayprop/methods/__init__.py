"""Training methods other than the core engine, side by side with it.

* ``bptt``: surrogate-gradient LIF network without delays (BPTT baseline).
* ``dcls``: delays learned as Gaussian-interpolated convolution taps (Hammouamri et al. 2024).

``build_model(method, ...)`` builds an ``"eventprop"``, ``"bptt"`` or ``"dcls"`` network with one
signature; every network maps a ``Spikes`` batch to the readout voltage [batch, n_steps, n_out].
"""

from .bptt import BPTTNetwork
from .dcls import DCLSNetwork, DCLSProjection, sigma_schedule
from .factory import METHODS, build_model, copy_parameters, projections

__all__ = [
    "METHODS",
    "build_model",
    "copy_parameters",
    "projections",
    "BPTTNetwork",
    "DCLSNetwork",
    "DCLSProjection",
    "sigma_schedule",
]
