"""Training application: configs -> model, data, loop, checkpoints, metrics."""

from .model import build_network, hidden_layers
from .trainer import Splits, Trainer, evaluate_loss, load_splits

__all__ = ["Trainer", "Splits", "load_splits", "evaluate_loss", "build_network", "hidden_layers"]
