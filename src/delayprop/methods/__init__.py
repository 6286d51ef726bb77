"""Training methods other than the core EventProp engine, side by side with it.

* ``bptt``: surrogate-gradient LIF network without delays (BPTT baseline).
* ``dcls``: delays learned as Gaussian-interpolated convolution taps (Hammouamri et al. 2024).
* ``delgrad``: single-spike networks with closed-form spike times and their exact gradients
  (Goltz et al. 2025), synaptic / axonal / dendritic delays, ``observed_ttfs`` for spike times
  measured on a chip or another simulator; ``hardware.HardwareModel`` adds a substrate's noise,
  clipping and quantisation.
* ``timing``: the timing-based multi-spike backward of the exact engine (Yamamoto et al. 2022),
  selected with ``LIF(dt=None, backward="timing")``; it lives in ``delayprop.exact.timing``.

``build_model(method, ...)`` builds an ``"eventprop"``, ``"bptt"``, ``"dcls"`` or ``"delgrad"``
network with one signature; every network maps a ``Spikes`` batch to ``Spikes`` (spiking readout)
or the readout voltage [batch, n_steps, n_out].
"""

from .bptt import BPTTNetwork
from .dcls import DCLSNetwork, DCLSProjection, sigma_schedule
from .delgrad import TTFSLayer, TTFSNetwork, observed_ttfs, ttfs_times
from .factory import METHODS, build_model, copy_parameters, projections
from .hardware import HardwareModel

__all__ = [
    "METHODS",
    "build_model",
    "copy_parameters",
    "projections",
    "BPTTNetwork",
    "DCLSNetwork",
    "DCLSProjection",
    "sigma_schedule",
    "HardwareModel",
    "TTFSLayer",
    "TTFSNetwork",
    "observed_ttfs",
    "ttfs_times",
]
