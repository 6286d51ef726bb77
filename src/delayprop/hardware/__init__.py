"""Hardware targets: profiles of what a target can represent, and constraint-aware training.

``apply_profile(model, "loihi")`` makes every layer's forward pass see the target's quantised
weights and integer delays (straight-through gradients); ``constrain_`` then keeps the delays in
the target's range.  See docs/deploy.md.
"""

from .constraint import ProjectionConstraint, apply_profile, quantise_delay, quantise_weight
from .profiles import PROFILES, HardwareProfile, get_profile

__all__ = [
    "HardwareProfile",
    "PROFILES",
    "get_profile",
    "ProjectionConstraint",
    "apply_profile",
    "quantise_weight",
    "quantise_delay",
]
