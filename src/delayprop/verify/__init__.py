"""Verification of gradients and engines, for the tests and for users' own models.

``check_gradients`` compares autograd's gradients (for a spiking network: the adjoint) with
finite differences; ``engine_gap`` and ``with_engine`` run one network on the time grid and in
continuous time and report how far apart they are.  This package sits above ``delayprop.nn``
(it builds and copies modules); docs/convergence.md describes the verification ladder.
"""

from .convergence import EngineGap, engine_gap, with_engine
from .gradcheck import GradcheckReport, TensorCheck, check_gradients

__all__ = [
    "check_gradients",
    "GradcheckReport",
    "TensorCheck",
    "EngineGap",
    "engine_gap",
    "with_engine",
]
