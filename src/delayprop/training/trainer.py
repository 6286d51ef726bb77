"""The training loop: epochs of mini-batches, validation-based model selection, atomic
checkpoints and metrics, exact resume, optional data parallelism.

Protocol: the validation split selects the model (best validation accuracy; ties keep the
earlier epoch) and drives early stopping; the test split is evaluated once, at the end, on the
selected model.  Everything that influences the result (model, optimiser, both random number
generators, epoch, step) is in the checkpoint, so a killed run resumed with ``--resume`` ends
with the same metrics as an uninterrupted one.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from ..config import ConfigError, LossConfig, RunConfig, config_to_dict
from ..data import Blend, Compose, EventBatch, EventDataset, load_dataset, make_augmentation
from ..losses import (
    cross_entropy,
    first_spike_times,
    readout,
    time_invariant_mse,
    ttfs_cross_entropy,
)
from ..nn import LIF, SpikeRecorder, constrain_, split_parameters, time_constant_parameters
from ..regularization import SpikeCountRegularizer
from ..spikes import Spikes
from .distributed import DistContext
from .io import RUN_FILES, load_checkpoint, require_keys, save_checkpoint, write_csv, write_json
from .model import build_network, count_parameters, hidden_layers
from .progress import BatchStats, Progress, SilentProgress, make_progress
from .tensorboard import TensorBoardLogger

__all__ = ["Trainer", "evaluate_loss", "evaluate_dataset", "Splits", "load_splits"]


@dataclass
class Splits:
    train: EventDataset
    validation: EventDataset
    test: EventDataset


def load_splits(cfg: RunConfig, data_dir: str | Path | None = None) -> Splits:
    """The three splits of the configured data set (``data_dir``: where downloaded data sets
    live; default ``$DELAYPROP_DATA``)."""
    opts = cfg.data.options
    names = ("train", "validation", "test")
    return Splits(*(load_dataset(cfg.data.name, s, data_dir=data_dir, **opts) for s in names))


@dataclass(frozen=True)
class Augmentation:
    """Training-set augmentation of a config: per-batch transforms, and ``n`` same-class blends
    added to the training set at the start of every epoch (0 = none)."""

    batch: Compose | None
    blend: Blend | None
    n_blend: int

    @classmethod
    def from_specs(cls, specs: list[dict[str, Any]]) -> Augmentation:
        batch, blend, n_blend = [], None, 0
        for spec in specs:
            spec = dict(spec)
            if spec.get("kind") == "blend":
                if "n" not in spec:
                    raise ConfigError("data.augment: a blend entry needs n (blends per epoch)")
                n_blend = int(spec.pop("n"))
                blend = make_augmentation(spec)
            else:
                batch.append(make_augmentation(spec))
        return cls(Compose(tuple(batch)) if batch else None, blend, n_blend)


def local_part(batch: EventBatch, dist: DistContext) -> EventBatch:
    """This rank's samples of a global batch (samples rank, rank + world, ...), renumbered."""
    if not dist.enabled:
        return batch
    keep = batch.samples % dist.world_size == dist.rank
    return EventBatch(
        batch.times[keep], batch.units[keep], batch.samples[keep] // dist.world_size,
        dist.shard(batch.labels), batch.n_channels, batch.duration,
    )  # fmt: skip


def evaluate_loss(
    output: Tensor | Spikes, labels: Tensor, cfg: LossConfig
) -> tuple[Tensor, Tensor]:
    """(mean loss, per-sample correctness bool [batch]) for a network output.

    LI readout: scores = reduction of the voltage trace, prediction = largest score.  LIF readout:
    first-spike times (no spike = trial duration), prediction = earliest output; a sample in
    which no output fires counts as wrong.
    """
    if isinstance(output, Spikes):
        t_first = first_spike_times(output)
        if cfg.kind == "time_invariant_mse":
            loss = time_invariant_mse(t_first, labels, cfg.delta)
        else:
            loss = ttfs_cross_entropy(t_first, labels, cfg.xi)
        t = t_first.detach()
        fired = t.min(dim=1).values < output.duration
        correct = (t.argmin(dim=1) == labels) & fired
    else:
        scores = readout(output, cfg.readout)
        loss = cross_entropy(scores, labels)
        correct = scores.detach().argmax(dim=1) == labels
    return loss, correct


@torch.no_grad()
def evaluate_dataset(
    model: nn.Module, ds: EventDataset, loss_cfg: LossConfig, batch_size: int,
    device: torch.device | str = "cpu", dist: DistContext | None = None,
) -> dict[str, float]:  # fmt: skip
    """Mean loss and accuracy of ``model`` (put in eval mode) over ``ds``; under data
    parallelism every rank evaluates its share of each batch."""
    dist = dist or DistContext()
    model.eval()
    total_loss, total_correct = 0.0, 0.0
    for idx in ds.batch_indices(batch_size, shuffle=False):
        b = ds.batch(dist.shard(idx))
        labels = torch.from_numpy(b.labels).to(device)
        loss, correct = evaluate_loss(model(b.to_spikes(device)), labels, loss_cfg)
        s = dist.sum([float(loss) * len(labels), float(correct.sum())])
        total_loss += s[0]
        total_correct += s[1]
    n = max(len(ds), 1)
    return {"loss": total_loss / n, "accuracy": total_correct / n}


#: what a training checkpoint (``Trainer._state``) holds
_STATE_KEYS = ("epoch", "step", "model", "optimizer", "rng", "torch_rng", "history", "best",
               "best_state", "stopped_early")  # fmt: skip


class Trainer:
    """Train ``cfg`` and write results to ``run_dir`` (None: keep everything in memory).

    Args:
        cfg: the run configuration.
        run_dir: an existing run directory (see ``io.prepare_run_dir``) or None.
        device: torch device for model and batches.
        quiet: one log line per epoch instead of progress bars (same as
            ``progress="quiet"``).
        progress: ``auto`` (live bars on a terminal, plain lines otherwise), ``bars``,
            ``lines``, ``quiet``, or a ``Progress`` instance; see
            ``delayprop.training.progress``.
        tensorboard: directory for TensorBoard event files (losses, accuracies, learning
            rates, spike counts, weight and delay histograms per epoch); None: no logging.
        dist: data-parallel context (rank, world size).
        splits: data to use instead of loading ``cfg.data`` (tests, notebooks).
        data_dir: where downloaded data sets live (default ``$DELAYPROP_DATA``).
    """

    def __init__(
        self,
        cfg: RunConfig,
        run_dir: Path | None = None,
        *,
        device: torch.device | str = "cpu",
        quiet: bool = False,
        dist: DistContext | None = None,
        splits: Splits | None = None,
        data_dir: str | Path | None = None,
        progress: str | Progress = "auto",
        tensorboard: str | Path | None = None,
    ) -> None:
        self.cfg = cfg
        self.run_dir = None if run_dir is None else Path(run_dir)
        self.device = torch.device(device)
        self.quiet = quiet
        self.dist = dist or DistContext()
        if not self.dist.is_main:
            self.progress: Progress = SilentProgress()
        elif isinstance(progress, Progress):
            self.progress = progress
        else:
            self.progress = make_progress("quiet" if quiet else progress)
        self.tensorboard = (
            TensorBoardLogger(tensorboard) if tensorboard is not None and self.dist.is_main
            else None
        )  # fmt: skip
        self.data = splits or load_splits(cfg, data_dir)
        self.augment = Augmentation.from_specs(cfg.data.augment)
        tr = self.data.train
        torch.manual_seed(cfg.train.seed)
        self.model = build_network(cfg.model, tr.n_channels, tr.n_classes).to(self.device)
        t = cfg.train
        if t.reg_target is not None:
            reg = SpikeCountRegularizer(t.reg_target, t.reg_strength_upper, t.reg_strength_lower)
            for layer in hidden_layers(self.model):
                layer.regularizer = reg
        #: spike counts of every LIF layer in the last forward pass (statistics, weight bump)
        self.spike_recorder = SpikeRecorder(m for m in self.model.modules() if isinstance(m, LIF))
        others, delays = split_parameters(self.model)
        taus = time_constant_parameters(self.model)
        weights = [p for p in others if all(p is not tau for tau in taus)]
        groups = [{"params": weights, "lr": t.lr, "name": "weights"},
                  {"params": delays, "lr": t.delay_lr, "name": "delays"},
                  {"params": taus, "lr": t.tau_lr, "name": "time constants"}]  # fmt: skip
        self.optimizer = torch.optim.Adam(
            [g for g in groups if g["params"]], betas=tuple(t.betas)
        )
        self.rng = np.random.default_rng(t.seed)
        self.epoch = 0  # epochs completed
        self.step = 0  # optimiser steps taken
        self.history: list[dict[str, Any]] = []
        #: moving average of the parameters (``train.average_decay``), in parameter order
        self.averaged = (None if t.average_decay is None
                         else [p.detach().clone() for p in self.model.parameters()])  # fmt: skip
        self.best = {"validation_accuracy": -math.inf, "epoch": 0}
        self.best_state = self._copy_state()
        self.stopped_early = False

    def _copy_state(self) -> dict[str, Tensor]:
        return {k: v.detach().clone() for k, v in self.model.state_dict().items()}

    # ------------------------------------------------------------------ schedules
    def _learning_rates(self) -> dict[str, float]:
        t = self.cfg.train
        decay = t.lr_decay**self.epoch
        lr = t.lr * decay
        if t.ease_in_start is not None:
            lr = min(lr, t.ease_in_start * t.ease_in_factor**self.step)
        return {"weights": lr, "delays": t.delay_lr * decay, "time constants": t.tau_lr * decay}

    def _set_learning_rates(self) -> dict[str, float]:
        rates = self._learning_rates()
        for g in self.optimizer.param_groups:
            g["lr"] = rates[g["name"]]
        return rates

    # ------------------------------------------------------------------ one epoch
    def _train_epoch(self) -> dict[str, Any]:
        t = self.cfg.train
        self.model.train()
        if hasattr(self.model, "set_epoch"):  # e.g. DCLS anneals its Gaussian width
            self.model.set_epoch(self.epoch, t.epochs)
        ds = self.data.train
        if self.augment.n_blend:
            blends = self.augment.blend(ds, self.augment.n_blend, self.rng)
            # blends have no per-sample metadata (two sources each); training needs none
            ds = EventDataset.concatenate([replace(ds, meta={}), blends], name=ds.name)
        batches = list(ds.batch_indices(t.batch_size, shuffle=True, rng=self.rng))
        if t.max_batches is not None:
            batches = batches[: t.max_batches]
        hidden = hidden_layers(self.model)
        epoch_counts = [torch.zeros(layer.n_out, dtype=torch.int64) for layer in hidden]
        total_loss, total_correct, total_n, t0 = 0.0, 0.0, 0, time.perf_counter()
        for i, idx in enumerate(batches, 1):
            rates = self._set_learning_rates()
            batch = ds.batch(idx)
            if self.augment.batch is not None:
                batch = self.augment.batch(batch, self.rng)
            batch = local_part(batch, self.dist)
            spikes = batch.to_spikes(self.device)
            labels = torch.from_numpy(batch.labels).to(self.device)
            output = self.model(spikes)
            loss, correct = evaluate_loss(output, labels, self.cfg.loss)
            self.optimizer.zero_grad(set_to_none=True)
            (loss * (len(labels) / len(idx))).backward()
            self.dist.all_reduce_grads(self.model)
            self._optimizer_step(rates)
            constrain_(self.model)
            self._check_finite(rates)
            self._bump_silent()
            self._update_average()
            self.step += 1
            for counts, layer in zip(epoch_counts, hidden):
                counts += self.spike_recorder.counts_of(layer).cpu()
            loss_sum, n_correct = self.dist.sum(
                [float(loss.detach()) * len(labels), float(correct.sum())]
            )
            total_loss += loss_sum
            total_correct += n_correct
            total_n += len(idx)
            self.progress.batch(BatchStats(
                batch=i, n_batches=len(batches),
                loss=total_loss / total_n, accuracy=total_correct / total_n,
                spikes_per_neuron=[float(c.sum()) / total_n / len(c) for c in epoch_counts],
                lr=rates["weights"],
            ))  # fmt: skip
        elapsed = time.perf_counter() - t0
        counts = [self._global_counts(c) for c in epoch_counts]
        return {
            "train_loss": total_loss / max(total_n, 1),
            "train_accuracy": total_correct / max(total_n, 1),
            "spikes_per_neuron": [float(c.sum()) / max(total_n, 1) / len(c) for c in counts],
            "silent_neurons": [int((c == 0).sum()) for c in counts],
            "lr": self._learning_rates()["weights"],
            "epoch_seconds": elapsed,
            "samples_per_second": total_n / max(elapsed, 1e-9),
        }

    def _global_counts(self, counts: Tensor) -> Tensor:
        if not self.dist.enabled:
            return counts
        return torch.tensor(self.dist.sum(counts.double().tolist())).long()

    def _optimizer_step(self, rates: dict[str, float]) -> None:
        try:
            self.optimizer.step()
        except RuntimeError as err:  # Adam's lr / (1 - beta1^t) beyond the parameter dtype
            if "overflow" not in str(err):
                raise
            raise ValueError(
                f"the optimiser step overflowed at epoch {self.epoch + 1}, step {self.step + 1} "
                f"(learning rates {rates}: {err}); lower train.lr / train.delay_lr"
            ) from None

    @torch.no_grad()
    def _check_finite(self, rates: dict[str, float]) -> None:
        """Stop with a clear error when an optimiser step left NaN or infinity in a parameter
        (a diverged learning rate): training on would only produce NaN."""
        for name, param in self.model.named_parameters():
            if not bool(torch.isfinite(param).all()):
                raise ValueError(
                    f"training diverged at epoch {self.epoch + 1}, step {self.step + 1}: "
                    f"parameter {name} holds NaN or infinity after the optimiser step "
                    f"(learning rates {rates}); lower train.lr / train.delay_lr, or check the "
                    "model's constants"
                )

    @torch.no_grad()
    def _bump_silent(self) -> None:
        """Weight bumping (Goltz et al.; Meszaros et al.): after each step, raise the incoming
        weights of every LIF neuron that did not fire in the whole (global) batch."""
        bump = self.cfg.train.weight_bump
        if bump <= 0:
            return
        for layer, counts in zip(self.spike_recorder.layers, self.spike_recorder.counts):
            if counts is not None:
                silent = self._global_counts(counts.cpu()) == 0
                layer.weight[silent.to(self.device)] += bump

    @torch.no_grad()
    def _update_average(self) -> None:
        if self.averaged is None:
            return
        weight = 1.0 - self.cfg.train.average_decay
        for avg, param in zip(self.averaged, self.model.parameters()):
            avg.lerp_(param, weight)

    @contextmanager
    def _averaged_parameters(self) -> Iterator[None]:
        """Within the block the model holds the averaged parameters (if averaging is on)."""
        if self.averaged is None:
            yield
            return
        params = list(self.model.parameters())
        raw = [p.detach().clone() for p in params]
        with torch.no_grad():
            for p, avg in zip(params, self.averaged):
                p.copy_(avg)
        try:
            yield
        finally:
            with torch.no_grad():
                for p, r in zip(params, raw):
                    p.copy_(r)

    def evaluate(self, ds: EventDataset) -> dict[str, float]:
        """Loss and accuracy of the current model on ``ds`` (no augmentation)."""
        return evaluate_dataset(self.model, ds, self.cfg.loss, self.cfg.train.eval_batch_size,
                                self.device, self.dist)  # fmt: skip

    # ------------------------------------------------------------------ persistence
    def _state(self) -> dict[str, Any]:
        return {
            "epoch": self.epoch,
            "step": self.step,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "rng": self.rng.bit_generator.state,
            "torch_rng": torch.get_rng_state(),
            "history": self.history,
            "best": self.best,
            "best_state": self.best_state,
            "stopped_early": self.stopped_early,
            "averaged": self.averaged,
            **self._identity(),
        }

    def _identity(self) -> dict[str, Any]:
        """What a saved state needs to rebuild its network: config and sizes."""
        tr = self.data.train
        return {"config": config_to_dict(self.cfg), "n_in": tr.n_channels, "n_out": tr.n_classes}

    def load_state(self, state: dict[str, Any]) -> None:
        require_keys(state, _STATE_KEYS, "training checkpoint")
        try:
            self.model.load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
        except (RuntimeError, ValueError, KeyError) as err:
            raise ValueError(f"the checkpoint does not fit this network: {err}") from None
        self.rng.bit_generator.state = state["rng"]
        torch.set_rng_state(state["torch_rng"])
        self.epoch, self.step = state["epoch"], state["step"]
        self.history, self.best = state["history"], state["best"]
        self.best_state, self.stopped_early = state["best_state"], state["stopped_early"]
        averaged = state.get("averaged")
        if (averaged is None) != (self.averaged is None):
            raise ValueError("the checkpoint and the config disagree on train.average_decay")
        self.averaged = averaged

    def resume(self) -> None:
        """Continue from the run directory's last checkpoint."""
        if self.run_dir is None:
            raise ValueError("resume needs a run directory")
        path = self.run_dir / RUN_FILES["checkpoint"]
        state = load_checkpoint(path)
        require_keys(state, ("config",), f"checkpoint {path}")
        if state["config"] != config_to_dict(self.cfg):
            raise ValueError(
                f"cannot resume: the config stored in {path} differs from "
                f"{self.run_dir / RUN_FILES['config']} (was config.yaml edited?)"
            )
        self.load_state(state)

    def _write(self, final: dict[str, Any] | None = None) -> None:
        if self.run_dir is None or not self.dist.is_main:
            return
        metrics = {"task": self.cfg.task, "epochs_completed": self.epoch, **self.best_summary()}
        if final:
            metrics.update(final)
        metrics["history"] = self.history
        save_checkpoint(self.run_dir / RUN_FILES["checkpoint"], self._state())
        save_checkpoint(self.run_dir / RUN_FILES["best"], {
            "model": self.best_state, "epoch": self.best["epoch"], **self._identity(),
        })  # fmt: skip
        write_json(self.run_dir / RUN_FILES["metrics"], metrics)
        write_csv(self.run_dir / RUN_FILES["csv"], self.history)

    def best_summary(self) -> dict[str, Any]:
        return {
            "best_epoch": self.best["epoch"],
            "best_validation_accuracy": self.best["validation_accuracy"],
        }

    # ------------------------------------------------------------------ main loop
    def _engine_name(self) -> str:
        m = self.cfg.model
        if m.method == "delgrad":
            return "DelGrad closed-form first spikes"
        engine = "exact engine" if m.dt is None else f"dt={m.dt} ms"
        return f"{m.method}, {engine}"

    def fit(self) -> dict[str, Any]:
        """Train for the configured epochs (from the current state); return the final metrics."""
        t = self.cfg.train
        n_batches = math.ceil((len(self.data.train) + self.augment.n_blend) / t.batch_size)
        if t.max_batches is not None:
            n_batches = min(n_batches, t.max_batches)
        if self.epoch == 0 and self.dist.is_main:
            self._log(
                f"{self.cfg.task}: {len(self.data.train)} train / {len(self.data.validation)} "
                f"validation / {len(self.data.test)} test samples, "
                f"{count_parameters(self.model)} parameters, {self._engine_name()}"
            )
        if self.epoch == 0 and self.run_dir is not None and self.dist.is_main:
            save_checkpoint(self.run_dir / RUN_FILES["initial"],
                            {"model": self._copy_state(), **self._identity()})  # fmt: skip
        self.progress.begin(t.epochs, self.epoch, n_batches)
        while self.epoch < t.epochs and not self.stopped_early:
            self.progress.start_epoch(self.epoch + 1)
            row = {"epoch": self.epoch + 1, **self._train_epoch()}
            with self._averaged_parameters():
                val = self.evaluate(self.data.validation)
                if val["accuracy"] > self.best["validation_accuracy"]:
                    self.best = {"validation_accuracy": val["accuracy"], "epoch": self.epoch + 1}
                    self.best_state = self._copy_state()
            row.update(validation_loss=val["loss"], validation_accuracy=val["accuracy"])
            self.epoch += 1
            self.history.append(row)
            if t.early_stopping is not None and self.epoch - self.best["epoch"] >= t.early_stopping:
                self.stopped_early = True
            self._write()
            if self.tensorboard is not None:
                self.tensorboard.log_epoch(self.epoch, row, self.model, self._group_rates())
            self.progress.end_epoch(row)
        self.progress.end()
        return self.finish()

    def _group_rates(self) -> dict[str, float]:
        return {g["name"]: g["lr"] for g in self.optimizer.param_groups}

    def finish(self) -> dict[str, Any]:
        """Evaluate the selected model on every split, write and return the final metrics."""
        self.model.load_state_dict(self.best_state)
        final = {}
        for split in ("train", "validation", "test"):
            result = self.evaluate(getattr(self.data, split))
            final[f"{split}_accuracy"] = result["accuracy"]
            final[f"{split}_loss"] = result["loss"]
        final["stopped_early"] = self.stopped_early
        self._write(final)
        if self.tensorboard is not None:
            self.tensorboard.log_final(self.epoch, final)
        if self.dist.is_main:
            self._log(
                f"selected epoch {self.best['epoch']}: train {final['train_accuracy']:.4f}, "
                f"validation {final['validation_accuracy']:.4f}, "
                f"test {final['test_accuracy']:.4f}"
            )
        return {"task": self.cfg.task, **self.best_summary(), **final, "history": self.history}

    def _log(self, text: str) -> None:
        self.progress.write(text)
