"""The exact engine: event-driven, continuous time, float64, delays never rounded
(docs/architecture.md).

Selected by ``dt=None`` on ``delayprop.LIF`` and ``delayprop.LIReadout``; the functions here are
the same layers without modules.  It is the gradient oracle of the project (finite differences
agree with it, the time-stepped engine converges to it as dt -> 0) and a precise-timing engine in
its own right (refractory periods, first-spike-only neurons).  ``delayprop.verify.engine_gap``
measures how far the time-stepped engine is from it; docs/convergence.md has the details.
"""

from .functional import ExactSettings, li_peak, li_readout, lif

__all__ = ["ExactSettings", "lif", "li_readout", "li_peak"]
