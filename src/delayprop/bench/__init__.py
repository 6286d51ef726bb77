"""``delayprop bench``: training-step time and peak memory of eventprop, DCLS and BPTT on the
same SHD-shaped data, network and machine, one process per configuration.

``plan`` lists the cases, ``run_cases`` runs them (each in its own process), ``write_report``
writes JSON, markdown and a plot.  See docs/benchmarks.md for the protocol and the latest table.
"""

from .cases import SUITES, Case, plan
from .report import machine_info, markdown, write_report
from .runner import Caps, estimate, run_cases
from .workload import calibrate_rates, synthetic_shd, time_training_steps

__all__ = [
    "SUITES",
    "Case",
    "plan",
    "Caps",
    "estimate",
    "run_cases",
    "machine_info",
    "markdown",
    "write_report",
    "calibrate_rates",
    "synthetic_shd",
    "time_training_steps",
]
