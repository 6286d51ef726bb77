"""Configuration files, overrides and their errors."""

from __future__ import annotations

import pytest

from delayprop.config import (
    BUILTIN_CONFIGS,
    ConfigError,
    apply_overrides,
    config_to_dict,
    load_config,
)


@pytest.mark.parametrize("name", BUILTIN_CONFIGS)
def test_builtin_configs_load(name):
    cfg = load_config(name)
    assert cfg.task == name or name.startswith(cfg.task)


def test_overrides_parse_yaml_values():
    cfg = load_config("yinyang", ["train.epochs=3", "model.dt=null", "model.hidden=[8, 4]",
                                  "model.weight_init=[[1,1],[1,1],[1,1]]"])  # fmt: skip
    assert cfg.train.epochs == 3 and cfg.model.dt is None and cfg.model.hidden == [8, 4]
    assert isinstance(cfg.train.lr, float)


@pytest.mark.parametrize(
    "override,match",
    [
        ("train.epochz=3", "unknown key train.epochz"),
        ("train.epochs=three", "train.epochs: expected int"),
        ("model.readout=spiky", "model.readout"),
        ("model.dt=-1", "model.dt"),
        ("loss.kind=cross_entropy", "does not fit readout 'lif'"),
        ("model.weight_init=[[1,1]]", "one \\[mean, std\\] per projection"),
        ("epochs", "section.key=value"),
        ("bogus.key=1", "unknown key bogus"),
        ("train.average_decay=1", "train.average_decay must be in"),
        ("train.average_decay=-0.5", "train.average_decay must be in"),
    ],
)
def test_bad_configs_name_the_problem(override, match):
    with pytest.raises(ConfigError, match=match):
        load_config("yinyang", [override])


def test_unknown_task_and_file(tmp_path):
    with pytest.raises(ConfigError, match="no built-in config"):
        load_config("mnist")
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(str(tmp_path / "missing.yaml"))
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(str(bad))


def test_config_file_with_base(tmp_path):
    f = tmp_path / "mine.yaml"
    f.write_text("base: yinyang\ntrain:\n  epochs: 2\n")
    cfg = load_config(str(f))
    assert cfg.train.epochs == 2 and cfg.model.hidden == [30]
    assert config_to_dict(cfg)["train"]["epochs"] == 2


def test_apply_overrides_does_not_mutate_input():
    base = {"train": {"epochs": 1}}
    out = apply_overrides(base, ["train.epochs=5"])
    assert base == {"train": {"epochs": 1}} and out["train"]["epochs"] == 5
