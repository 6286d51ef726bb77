"""Benchmark configurations: one ``Case`` per (network, time step, max delay, method).

Suites:

* ``ff``: SHD-shaped input (700 channels, 1 s, ~5000 spikes per sample), 2 x 256 and 2 x 512
  feed-forward LIF layers, 20 LI outputs, dt = 1 ms, delays on every projection with max delay
  64 / 128 / 256 / 512 / 1024 steps; methods eventprop, precise (eventprop in the time-stepped
  engine's precise mode: exact arrival and spike times), dcls, bptt.
* ``dcls-paper``: the DCLS paper's time step: 2 x 256, dt = 10 ms, max delay 25 steps.
* ``recurrent``: one recurrent layer of 512 LIF neurons with learnable input and recurrent
  delays (max delay 64 / 256 / 1024 steps for both), eventprop only (the baselines are
  feed-forward).
* ``fixed-delays``: 2 x 256 as in ``ff``, eventprop only, max delay 64 / 256 / 1024 steps but the
  delays always drawn from [0, 64] steps: the same network and spikes at every max delay, so
  that the cost of the max delay itself is measured apart from that of the delays' spread
  (which changes the activity and where arrivals land).

``quick`` shrinks every suite to tiny sizes (for CI: checks the plumbing, not the timings).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

__all__ = ["Case", "SUITES", "BENCH_METHODS", "DCLS_GRID", "plan", "training_method"]

SUITES = ("ff", "dcls-paper", "recurrent", "fixed-delays")

#: what a case can measure: the training methods, and ``precise``, eventprop with its layers in
#: the precise mode of the time-stepped engine (feed-forward suites only)
BENCH_METHODS = ("eventprop", "precise", "bptt", "dcls")


def training_method(bench_method: str) -> str:
    """The training method (``methods.METHODS``) behind a benchmark method."""
    return "eventprop" if bench_method == "precise" else bench_method

#: max delays (steps) at which the 1 ms DCLS baseline runs by default, per hidden size.  DCLS
#: costs ~0.3 s per delay step per training step on a 2-core CPU up to ~257 taps, and torch's CPU
#: conv1d backward slows down much more beyond (a step at 512 does not finish in 30 minutes), so
#: the default run measures the smallest max delay and the target point (2 x 256, 512 steps);
#: ``plan(dcls_everywhere=True)`` runs all of them.
DCLS_GRID = {(256, 256): (64, 512), (512, 512): (64,)}


@dataclass(frozen=True)
class Case:
    """One benchmark process.  Times in ms; ``max_delay_steps`` in steps of ``dt``."""

    suite: str
    method: str
    hidden: tuple[int, ...]
    dt: float
    max_delay_steps: int
    recurrent: bool = False
    delay_init_steps: int | None = None  # delays drawn from [0, this]; None: [0, max delay]
    batch: int = 32
    n_in: int = 700
    n_out: int = 20
    duration: float = 1000.0
    spikes_per_sample: int = 5000
    target_rate: float = 15.0
    seed: int = 0
    threads: int = 2
    warmup: int = 2
    max_timed: int = 10
    budget_s: float = 20.0
    weights: str = field(default="", compare=False)
    skip: str = ""  # reason not to run this case (reported as skipped)

    @property
    def point(self) -> tuple:
        """The network and grid this case measures, shared by all methods."""
        return (self.suite, self.hidden, self.recurrent, self.dt, self.max_delay_steps)

    @property
    def max_delay(self) -> float:
        return self.max_delay_steps * self.dt

    def label(self) -> str:
        net = ("rec " if self.recurrent else "") + "x".join(map(str, self.hidden))
        return f"{self.suite} {net} dt={self.dt:g} D={self.max_delay_steps} {self.method}"

    @property
    def delay_init(self) -> float:
        """Upper end of the initial delays, ms."""
        steps = self.max_delay_steps if self.delay_init_steps is None else self.delay_init_steps
        return steps * self.dt

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["hidden"] = list(self.hidden)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> Case:
        return cls(**{**d, "hidden": tuple(d["hidden"])})


def plan(
    suites: tuple[str, ...] = SUITES,
    *,
    methods: tuple[str, ...] = BENCH_METHODS,
    max_delays: tuple[int, ...] | None = None,
    quick: bool = False,
    dcls_everywhere: bool = False,
    **overrides,
) -> list[Case]:
    """The cases of ``suites`` in run order: for each point eventprop first (it calibrates the
    weights that the other methods load), max delays ascending.  ``max_delays`` replaces the
    1 ms grids; ``overrides`` set ``Case`` fields (batch, threads, warmup, ...).  DCLS cases
    outside ``DCLS_GRID`` are listed as skipped unless ``quick`` or ``dcls_everywhere``."""
    unknown = set(suites) - set(SUITES)
    if unknown:
        raise ValueError(f"unknown suite {sorted(unknown)[0]!r}; choose from {SUITES}")
    unknown = set(methods) - set(BENCH_METHODS)
    if unknown:
        raise ValueError(f"unknown method {sorted(unknown)[0]!r}; choose from {BENCH_METHODS}")
    if max_delays is not None and any(d < 1 for d in max_delays):
        raise ValueError(f"max delays must be >= 1 step, got {list(max_delays)}")
    if quick:
        overrides = dict(n_in=40, duration=100.0, spikes_per_sample=200, batch=4, target_rate=5.0,
                         warmup=1, max_timed=2, **overrides)  # fmt: skip
    sizes = [(16, 16)] if quick else [(256, 256), (512, 512)]
    ff_delays = max_delays or ((4, 8) if quick else (64, 128, 256, 512, 1024))
    rec_delays = max_delays or ((4, 8) if quick else (64, 256, 1024))
    order = ["eventprop"] + [m for m in methods if m != "eventprop"]
    cases = []

    def add(suite, hidden, dt, delays, methods_here, recurrent=False, **fields):
        for hid in hidden:
            for d in delays:
                for m in methods_here:
                    skip = ""
                    if m == "dcls" and dt == 1.0 and not (quick or dcls_everywhere):
                        if d not in DCLS_GRID.get(tuple(hid), ()):
                            skip = ("outside the default DCLS grid (too slow here; "
                                    "run with --dcls-everywhere)")  # fmt: skip
                    cases.append(Case(suite, m, tuple(hid), dt, d, recurrent, skip=skip,
                                      **fields, **overrides))  # fmt: skip

    if "ff" in suites:
        add("ff", sizes, 1.0, ff_delays, order)
    if "dcls-paper" in suites:
        add("dcls-paper", sizes[:1], 10.0, (2,) if quick else (25,), order)
    if "recurrent" in suites:
        add("recurrent", [(16,)] if quick else [(512,)], 1.0, rec_delays, ["eventprop"], True)
    if "fixed-delays" in suites:
        add("fixed-delays", sizes[:1], 1.0, rec_delays, ["eventprop"],
            delay_init_steps=min(rec_delays))  # fmt: skip
    return cases
