"""Timing-based multi-spike backpropagation (Yamamoto, Sakemi & Aihara 2022).

An exact-engine backward, implemented in ``delayprop.exact.timing``; this module keeps the
import path ``delayprop.methods.timing`` that lists it among the training methods.
"""

from ..exact.timing import li_peak_backward, li_trace_backward, lif_backward

__all__ = ["lif_backward", "li_trace_backward", "li_peak_backward"]
