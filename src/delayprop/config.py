"""Run configuration: typed dataclasses read from YAML, overridable from the command line.

A configuration has four sections::

    data:  which data set and how it is encoded / augmented
    model: network shape and the layers' options (delayprop.LayerOptions: neuron constants,
           engine, delays; dt = null selects the exact engine)
    loss:  readout and loss
    train: optimiser, schedule, regularisation, protocol

Unknown keys and values of the wrong type are errors that name the key.  Overrides use dotted
keys with YAML values: ``--set train.epochs=5 model.hidden=[64,64] model.dt=null``.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ._util import field_defaults
from .methods.registry import METHODS, UnsupportedOption, get_method
from .options import LayerOptions
from .validation import check_choice, check_nonnegative_finite

__all__ = [
    "DataConfig",
    "ModelConfig",
    "LossConfig",
    "TrainConfig",
    "RunConfig",
    "ConfigError",
    "load_config",
    "apply_overrides",
    "config_to_dict",
    "config_from_dict",
    "builtin_config_path",
    "BUILTIN_CONFIGS",
]

CONFIG_DIR = Path(__file__).parent / "cli" / "configs"


class ConfigError(ValueError):
    """A configuration file or override is invalid."""


@dataclass
class DataConfig:
    """Data set: ``name`` for ``delayprop.data.load_dataset`` plus its options.

    ``augment`` is a list of augmentation specs (``{"kind": "shift", ...}``) applied to training
    batches; ``blend`` specs add same-class blends to the training set every epoch.
    """

    name: str = "yinyang"
    options: dict[str, Any] = field(default_factory=dict)
    augment: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class ModelConfig(LayerOptions):
    """Network: input -> hidden LIF layers -> readout (LI voltage or LIF first spikes).

    The options of the layers are the fields of ``delayprop.LayerOptions`` (neuron constants,
    engine, delays and recurrence), under their names, with their defaults, units and checks;
    they apply to every hidden layer and to the readout, which has its own delays
    (``readout_max_delay``) and no recurrence.  ``dt: null`` selects the exact engine.  The
    fields below describe the network.  Times in ms.

    ``method``: eventprop (this library's engine), bptt and dcls (surrogate-gradient
    baselines), delgrad (single-spike closed forms; ``hardware`` holds the ``HardwareModel``
    fields for chip-aware training).  An option that the method does not support
    (``delayprop.methods.registry``) is an error unless left at its default.
    ``weight_init`` lists one ``[mean, std]`` per feed-forward projection (input -> first
    hidden, ..., last hidden -> readout); empty means the default N(0, 1/n_in).
    ``delay_init`` is a constant, a ``[low, high]`` uniform range or an explicit matrix (also
    ``rec_delay_init``, ``readout_delay_init``).
    ``hardware_profile`` (eventprop): train for a target (``float``, ``loihi``, ``spinnaker``;
    ``delayprop.hardware``): quantised weights and integer delays in the forward pass, on the
    time-stepped engine at the model's dt (1 ms when ``dt`` is null).
    """

    method: str = "eventprop"
    hidden: list[int] = field(default_factory=lambda: [30])
    readout: str = "li"
    learn_weights: bool = True
    delay_init: Any = 0.0
    rec_delay_init: Any = 0.0
    readout_max_delay: float = 0.0
    readout_delay_init: Any = 0.0
    weight_init: list[list[float]] = field(default_factory=list)
    rec_weight_init: list[float] | None = None
    hardware: dict[str, Any] = field(default_factory=dict)
    hardware_profile: str | None = None

    def __post_init__(self) -> None:
        """The method and the options it does not support first (such an option is named as
        unsupported, not as failing its own check), then the layer options, then the
        network."""
        check_choice("method", self.method, METHODS)
        get_method(self.method).check(dataclasses.asdict(self), field_defaults(ModelConfig))
        super().__post_init__()
        check_choice("readout", self.readout, ("li", "lif"))
        if any(h <= 0 for h in self.hidden):
            raise ValueError(f"hidden sizes must be positive, got {self.hidden}")
        check_nonnegative_finite(readout_max_delay=self.readout_max_delay)
        if self.weight_init and len(self.weight_init) != len(self.hidden) + 1:
            raise ValueError(
                f"weight_init needs one [mean, std] per projection ({len(self.hidden) + 1}), "
                f"got {len(self.weight_init)}"
            )
        if any(len(p) != 2 for p in self.weight_init):
            raise ValueError("weight_init entries must be [mean, std]")


@dataclass
class LossConfig:
    """``kind``: cross_entropy (LI readout, on ``readout`` in max / mean / sum / exp_mean),
    time_invariant_mse (LIF readout, margin ``delta`` ms), ttfs_cross_entropy (LIF readout,
    temperature ``xi`` tau_syn)."""

    kind: str = "cross_entropy"
    readout: str = "max"
    delta: float = 2.0
    xi: float = 1.0


@dataclass
class TrainConfig:
    """Optimisation and protocol.

    Adam with separate learning rates for weights (``lr``), delays (``delay_lr``, ms per unit
    gradient) and learned time constants (``tau_lr``, ms per unit gradient, with
    ``model.learn_tau``); all multiplied by ``lr_decay`` after every epoch.  ``ease_in_start``:
    the weight rate starts there and grows by ``ease_in_factor`` per batch up to ``lr``.
    Spike-count regularisation when ``reg_target`` is set.  ``weight_bump`` is added after each
    step to the incoming weights of LIF neurons that did not fire in the whole batch; both act
    on ``LIF`` layers only and are errors for the methods without them (bptt, dcls, delgrad; see
    ``validate`` for one exception).  ``average_decay``: keep an exponential moving average
    of the parameters (after every optimiser step avg <- d avg + (1 - d) parameter); validation,
    model selection and the final evaluation then use the averaged parameters, training goes
    on with the raw ones.  Model selection and early stopping use the validation split; the
    test split is evaluated once at the end, on the selected model.
    """

    epochs: int = 30
    batch_size: int = 150
    eval_batch_size: int = 500
    lr: float = 0.005
    delay_lr: float = 1.0
    tau_lr: float = 0.1
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    lr_decay: float = 1.0
    ease_in_start: float | None = None
    ease_in_factor: float = 1.05
    reg_target: float | None = None
    reg_strength_upper: float = 0.0
    reg_strength_lower: float = 0.0
    weight_bump: float = 0.0
    early_stopping: int | None = None
    max_batches: int | None = None
    average_decay: float | None = None
    seed: int = 0


@dataclass
class RunConfig:
    task: str = "yinyang"
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


# ---------------------------------------------------------------------------- (de)serialisation
def _type_ok(value: Any, tp: Any) -> bool:
    """Whether ``value`` (from YAML) fits the annotation ``tp``."""
    if tp is Any:
        return True
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return any(_type_ok(value, t) for t in typing.get_args(tp))
    if tp is type(None):
        return value is None
    if origin is list:
        (item,) = typing.get_args(tp)
        return isinstance(value, list) and all(_type_ok(v, item) for v in value)
    if origin is dict:
        return isinstance(value, dict)
    if tp is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, tp)


def _build(cls: type, values: dict[str, Any], where: str) -> Any:
    if not isinstance(values, dict):
        raise ConfigError(f"{where or 'config'}: expected a mapping, got {type(values).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ConfigError(
            f"unknown key {where + '.' if where else ''}{unknown[0]}; "
            f"known keys: {', '.join(sorted(fields))}"
        )
    kwargs = {}
    for name, value in values.items():
        tp = hints[name]
        key = f"{where}.{name}" if where else name
        if dataclasses.is_dataclass(tp):
            kwargs[name] = _build(tp, value, key)
        elif not _type_ok(value, tp):
            raise ConfigError(f"{key}: expected {_type_name(tp)}, got {value!r}")
        elif isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{key}: expected a finite number, got {value!r}")
        else:
            kwargs[name] = float(value) if tp is float else value
    try:
        return cls(**kwargs)
    except ValueError as err:  # a dataclass's own checks, which name the field
        raise ConfigError(f"{where}.{err}" if where else str(err)) from None


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def config_from_dict(values: dict[str, Any]) -> RunConfig:
    """Build and check a ``RunConfig`` from nested dicts (as read from YAML)."""
    cfg = _build(RunConfig, values, "")
    validate(cfg)
    return cfg


def config_to_dict(cfg: RunConfig) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


def validate(cfg: RunConfig) -> None:
    """Value checks across sections and of the training section (the model section checks
    itself: ``ModelConfig``)."""
    m, t, loss = cfg.model, cfg.train, cfg.loss
    try:
        get_method(m.method).check(dataclasses.asdict(t), field_defaults(TrainConfig), "train.",
                                   training=True)  # fmt: skip
    except UnsupportedOption as err:
        raise ConfigError(str(err)) from None
    valid_losses = {"li": ("cross_entropy",), "lif": ("time_invariant_mse", "ttfs_cross_entropy")}
    if loss.kind not in valid_losses[m.readout]:
        raise ConfigError(
            f"loss.kind {loss.kind!r} does not fit readout {m.readout!r}; "
            f"choose one of {valid_losses[m.readout]}"
        )
    if loss.readout not in ("max", "mean", "sum", "exp_mean"):
        raise ConfigError(f"loss.readout must be max, mean, sum or exp_mean, got {loss.readout!r}")
    if t.epochs < 0 or t.batch_size <= 0 or t.eval_batch_size <= 0:
        raise ConfigError("train.epochs must be >= 0 and batch sizes > 0")
    if t.lr < 0 or t.delay_lr < 0 or t.tau_lr < 0 or not 0 < t.lr_decay <= 1:
        raise ConfigError("learning rates must be >= 0 and 0 < train.lr_decay <= 1")
    if len(t.betas) != 2:
        raise ConfigError("train.betas must be [beta1, beta2]")
    for name in ("early_stopping", "max_batches"):
        if getattr(t, name) is not None and getattr(t, name) < 1:
            raise ConfigError(f"train.{name} must be >= 1 or null, got {getattr(t, name)}")
    if t.seed < 0:
        raise ConfigError(f"train.seed must be >= 0, got {t.seed}")
    if t.average_decay is not None and not 0 <= t.average_decay < 1:
        raise ConfigError(f"train.average_decay must be in [0, 1) or null, got {t.average_decay}")


# ---------------------------------------------------------------------------- files and overrides
class _Loader(yaml.SafeLoader):
    """YAML 1.1 reads ``5e-11`` (no dot) as a string; learning rates and regularisation
    strengths are written that way, so accept it as a float."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def _yaml_load(text: str) -> Any:
    return yaml.load(text, Loader=_Loader)


BUILTIN_CONFIGS = sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))


def builtin_config_path(name: str) -> Path:
    path = CONFIG_DIR / f"{name}.yaml"
    if not path.exists():
        raise ConfigError(f"no built-in config {name!r}; available: {', '.join(BUILTIN_CONFIGS)}")
    return path


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        values = _yaml_load(path.read_text())
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from None
    except UnicodeDecodeError as err:
        raise ConfigError(f"{path}: not a UTF-8 text file ({err})") from None
    if not isinstance(values, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return values


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in extra.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def apply_overrides(values: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``key.sub=value`` overrides (values parsed as YAML) to a copy of nested dicts."""
    values = copy.deepcopy(values)
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like section.key=value")
        key, raw = item.split("=", 1)
        try:
            value = _yaml_load(raw)
        except yaml.YAMLError as err:
            raise ConfigError(f"override {item!r}: value is not valid YAML: {err}") from None
        node = values
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {item!r}: {part} is not a section")
        node[parts[-1]] = value
    return values


def load_config(task_or_path: str, overrides: list[str] | None = None) -> RunConfig:
    """Load a built-in task config (by name) or a YAML file, then apply overrides.

    A file may start from a built-in config with ``base: NAME``.
    """
    path = Path(task_or_path)
    if path.suffix in (".yaml", ".yml"):
        if not path.exists():
            raise ConfigError(f"config file {path} does not exist")
        values = _read_yaml(path)
        base = values.pop("base", None)
        if base is not None:
            values = _merge(_read_yaml(builtin_config_path(base)), values)
    else:
        values = _read_yaml(builtin_config_path(task_or_path))
    return config_from_dict(apply_overrides(values, overrides or []))
