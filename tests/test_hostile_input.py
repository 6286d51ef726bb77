"""Hostile or careless input: clear errors, never a crash, a hang or code from a file."""

from __future__ import annotations

import pytest
import torch

import delayprop as dp
from delayprop.training.io import load_checkpoint, save_checkpoint


def _plain_spikes(units: list[int], n_units: int = 2) -> dp.Spikes:
    """A batch from the plain constructor, which trusts its arguments."""
    n = len(units)
    times = torch.arange(1, n + 1, dtype=torch.float32)
    return dp.Spikes(times, torch.tensor(units, dtype=torch.int32), torch.tensor([0, n]), n_units,
                     30.0)  # fmt: skip


@pytest.mark.parametrize("dt", [1.0, None])
@pytest.mark.parametrize("units", [[0, 10**8], [0, 2], [-1, 0]])
def test_unit_index_out_of_range_is_an_error_not_a_segfault(dt, units):
    layer = dp.LIF(2, 3, dt=dt)
    with pytest.raises(ValueError, match="unit index out of range"):
        layer(_plain_spikes(units))


@pytest.mark.parametrize("dt", [1.0, None])
def test_readout_checks_unit_indices_too(dt):
    readout = dp.LIReadout(2, 1, dt=dt, sample_dt=None if dt else 1.0)
    with pytest.raises(ValueError, match="unit index out of range"):
        readout(_plain_spikes([0, 5]))


@pytest.mark.parametrize("bad", [float("nan"), -1.0, float("inf")])
def test_plain_spikes_with_bad_times_are_rejected_by_both_engines(bad):
    spikes = dp.Spikes(torch.tensor([1.0, bad]), torch.tensor([0, 1], dtype=torch.int32),
                       torch.tensor([0, 2]), 2, 30.0)  # fmt: skip
    for dt in (1.0, None):
        with pytest.raises(ValueError, match="spike times"):
            dp.LIF(2, 3, dt=dt)(spikes)


def test_inconsistent_offsets_are_rejected():
    spikes = dp.Spikes(torch.tensor([1.0, 2.0]), torch.tensor([0, 1], dtype=torch.int32),
                       torch.tensor([0, 5]), 2, 30.0)  # fmt: skip
    with pytest.raises(ValueError, match="offsets"):
        dp.LIF(2, 3, dt=1.0)(spikes)


class _Payload:
    """Pickles to a call of ``exec``: loading it would run code."""

    def __reduce__(self):
        return (exec, ("import pathlib; pathlib.Path('PWNED').write_text('x')",))


def test_checkpoint_with_pickled_code_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "best.pt"
    torch.save({"model": {}, "payload": _Payload()}, path)
    with pytest.raises(ValueError, match="not loaded"):
        load_checkpoint(path)
    assert not (tmp_path / "PWNED").exists()


def test_checkpoints_written_by_delayprop_load_safely(tmp_path):
    state = {"model": {"w": torch.ones(2)}, "rng": {"state": {"state": 2**100, "inc": 3}},
             "history": [{"loss": 0.5, "acc": [0.1, 0.2]}], "best": None}  # fmt: skip
    save_checkpoint(tmp_path / "c.pt", state)
    back = load_checkpoint(tmp_path / "c.pt")
    assert back["rng"] == state["rng"] and back["history"] == state["history"]
    assert torch.equal(back["model"]["w"], state["model"]["w"])
    assert back["best"] is None


# ---------------------------------------------------------------- Braille pickle (code execution)
class _SystemPayload:
    """Pickles to ``os.system('touch PWNED_SYSTEM')``."""

    def __reduce__(self):
        import os

        return (os.system, ("touch PWNED_SYSTEM",))


class _ReadPicklePayload:
    """Pickles to ``pandas.read_pickle(path)``: a pandas name that must not be allowed."""

    def __reduce__(self):
        import pandas as pd

        return (pd.read_pickle, ("other.pkl",))


def _braille_records(payload) -> list:
    events = [[[0.1], []] for _ in range(12)]
    return [{"letter": "A", "events": events}, {"letter": "B", "events": payload}]


@pytest.mark.parametrize(
    ("payload", "refused"),
    [(_Payload(), "builtins.exec"), (_SystemPayload(), "system"), (None, "read_pickle")],
)
def test_braille_pickle_naming_code_is_refused_and_not_run(tmp_path, monkeypatch, payload,
                                                           refused):  # fmt: skip
    import pickle

    from delayprop.data.braille import read_braille_pickle

    if payload is None:
        pytest.importorskip("pandas")
        payload = _ReadPicklePayload()
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "data_braille_letters_th_1.pkl"
    path.write_bytes(pickle.dumps(_braille_records(payload)))
    with pytest.raises(ValueError, match=rf"refused to load global .*{refused}"):
        read_braille_pickle(path)
    assert not (tmp_path / "PWNED").exists() and not (tmp_path / "PWNED_SYSTEM").exists()


def test_braille_pickle_in_zip_with_code_is_refused_by_load_dataset(tmp_path, monkeypatch):
    import pickle

    from delayprop.data import load_dataset
    from delayprop.data.fixtures import write_zip

    monkeypatch.chdir(tmp_path)
    pkl = tmp_path / "evil.pkl"
    pkl.write_bytes(pickle.dumps(_braille_records(_SystemPayload())))
    write_zip(tmp_path / "reading_braille_data.zip",
              {"../../data_braille_letters_th_1.pkl": pkl})  # fmt: skip
    pkl.unlink()
    with pytest.raises(ValueError, match="refused to load global posix.system|refused .*system"):
        load_dataset("braille", "train", data_dir=tmp_path)
    assert not (tmp_path / "PWNED_SYSTEM").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["reading_braille_data.zip"]


@pytest.mark.parametrize("layout", ["records", "columns", "dataframe"])
@pytest.mark.parametrize("protocol", [0, 2, 4, 5])
def test_every_braille_layout_still_loads_through_the_restricted_unpickler(tmp_path, layout,
                                                                           protocol):  # fmt: skip
    import pickle

    import numpy as np

    from delayprop.data.braille import read_braille_pickle
    from delayprop.data.fixtures import braille_records, random_braille

    if layout == "dataframe":
        pytest.importorskip("pandas")
    letters, events = random_braille(2, seed=1)
    # the published file holds numpy arrays of times; lists are accepted too
    events = [[[np.asarray(ts) for ts in taxel] for taxel in ev] for ev in events]
    path = tmp_path / "b.pkl"
    path.write_bytes(pickle.dumps(braille_records(letters, events, layout), protocol=protocol))
    ds = read_braille_pickle(path)
    assert len(ds) == len(letters) == 54
    assert ds.n_events == sum(len(ts) for ev in events for taxel in ev for ts in taxel)


# ---------------------------------------------------------------- exact engine: bounded work
def _burst(batch: int = 2, n_in: int = 8, duration: float = 10.0) -> dp.Spikes:
    return dp.Spikes.from_lists([([1.0, 2.0], [0, n_in - 1])] * batch, n_units=n_in,
                                duration=duration)  # fmt: skip


@pytest.mark.parametrize(
    "kwargs",
    [dict(weight_init=10.0, recurrent=True, rec_weight_init=5.0), dict(weight_init=1e6)],
)
def test_runaway_exact_layer_stops_with_an_error_naming_layer_sample_and_limit(kwargs):
    layer = dp.LIF(8, 64, dt=None, **kwargs)
    with pytest.raises(ValueError, match=r"lif layer \(8 inputs -> 64 neurons.*sample 0 .*"
                       r"more than 6400 spikes.*100 spikes per neuron"):  # fmt: skip
        layer(_burst())


def test_spike_limit_is_exact_at_the_boundary():
    """Input weight w such that the neuron fires a known number of spikes; the limit equal to
    that number passes and one below it raises."""
    layer = dp.LIF(1, 1, dt=None, weight_init=50.0, refractory=1.0)
    x = dp.Spikes.from_lists([([0.0], [0])], n_units=1, duration=10.0)
    n = int(layer(x).counts()[0])
    assert n > 2
    assert int(dp.LIF(1, 1, dt=None, weight_init=50.0, refractory=1.0,
                      spike_limit=n)(x).counts()[0]) == n  # fmt: skip
    with pytest.raises(ValueError, match=f"more than {n - 1} spikes"):
        dp.LIF(1, 1, dt=None, weight_init=50.0, refractory=1.0, spike_limit=n - 1)(x)


@pytest.mark.parametrize("bad", [0, -3, 2.5, True])
def test_spike_limit_must_be_a_positive_integer(bad):
    with pytest.raises(ValueError, match="spike_limit must be a positive integer"):
        dp.LIF(2, 2, dt=None, spike_limit=bad)(_burst(1, 2))


def test_spike_limit_is_refused_by_the_grid_engine():
    with pytest.raises(ValueError, match="spike_limit=10 needs the exact engine"):
        dp.LIF(2, 2, dt=1.0, spike_limit=10)


def test_exact_engine_bounds_the_room_of_one_call(monkeypatch):
    from delayprop.exact import _host

    monkeypatch.setattr(_host, "MAX_SPIKES_PER_CALL", 5000)
    with pytest.raises(ValueError, match=r"4 samples of the batch .* more than 1250 spikes each"):
        dp.LIF(8, 64, dt=None, weight_init=1e6)(_burst(4))
    quiet = dp.LIF(8, 64, dt=None, weight_init=0.5)(_burst(4))  # fits: no error
    assert quiet.batch_size == 4


# ---------------------------------------------------------------- parameters, sizes, dtypes
INF, NAN = float("inf"), float("nan")


def test_huge_number_of_steps_is_refused_up_front_naming_the_sizes():
    x = dp.Spikes.from_lists([([1.0], [0])], n_units=2, duration=1e9)
    with pytest.raises(ValueError, match=r"1000000000000 time steps .* exceed the limit"):
        dp.LIF(2, 3, dt=1e-3)(x)
    with pytest.raises(ValueError, match=r"batch 1 x 1000000000 steps x 5 neurons"):
        dp.LIReadout(2, 5, dt=1.0)(x)
    with pytest.raises(ValueError, match=r"li_readout: 1000000000000 time steps"):
        dp.LIReadout(2, 5, dt=None, sample_dt=1e-3)(x)


@pytest.mark.parametrize("dt", [1.0, None])
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.int32])
def test_unsupported_parameter_dtype_is_named_at_construction(dt, dtype):
    with pytest.raises(ValueError, match=r"LIF: dtype torch\.\w+ is not supported"):
        dp.LIF(2, 3, dt=dt, dtype=dtype)


def test_float16_weights_given_to_the_functional_engines_are_refused():
    from delayprop.functional import GridSettings, lif

    x = dp.Spikes.from_lists([([1.0], [0])], n_units=2, duration=10.0)
    s = GridSettings(tau_mem=20.0, tau_syn=5.0, threshold=1.0, dt=1.0, n_steps=10,
                     max_delay_steps=0)  # fmt: skip
    with pytest.raises(ValueError, match="weight: dtype torch.float16 is not supported"):
        lif(x, torch.ones(3, 2, dtype=torch.float16), None, s)
    with pytest.raises(ValueError, match="weight: dtype torch.float16 is not supported"):
        dp.exact.lif(x, torch.ones(3, 2, dtype=torch.float16), None,
                     dp.exact.ExactSettings(20.0, 5.0))  # fmt: skip


@pytest.mark.parametrize("dt", [1.0, None])
@pytest.mark.parametrize("bad", [NAN, INF, -INF])
@pytest.mark.parametrize("which", ["weight", "rec_weight"])
def test_non_finite_weights_are_refused_by_both_engines(dt, bad, which):
    layer = dp.LIF(2, 3, dt=dt, recurrent=True)
    with torch.no_grad():
        getattr(layer, which)[0, 1] = bad
    with pytest.raises(ValueError, match=f"{which} contains NaN or infinity"):
        layer(_burst(1, 2))


@pytest.mark.parametrize("dt", [1.0, None])
def test_non_finite_readout_weights_are_refused_by_both_engines(dt):
    readout = dp.LIReadout(2, 3, dt=dt, sample_dt=None if dt else 1.0)
    with torch.no_grad():
        readout.weight[1, 0] = NAN
    with pytest.raises(ValueError, match="weight contains NaN or infinity"):
        readout(_burst(1, 2))


@pytest.mark.parametrize(
    "kwargs",
    [dict(dt=INF), dict(tau_syn=INF), dict(tau_mem=INF), dict(threshold=INF),
     dict(tau_mem=NAN), dict(dt=NAN), dict(threshold=-1.0), dict(tau_syn="5")],
)  # fmt: skip
def test_constants_must_be_positive_and_finite(kwargs):
    name = next(iter(kwargs))
    with pytest.raises(ValueError, match=f"{name} must be"):
        dp.LIF(2, 3, **kwargs)
    if name != "threshold":
        with pytest.raises(ValueError, match=f"{name} must be"):
            dp.LIReadout(2, 3, **kwargs)


def test_infinite_constants_are_refused_by_the_engines_themselves():
    from delayprop.functional import GridSettings, li_readout

    x = dp.Spikes.from_lists([([1.0], [0])], n_units=2, duration=10.0)
    with pytest.raises(ValueError, match="tau_syn must be > 0 and finite"):
        dp.exact.ExactSettings(20.0, INF)
    with pytest.raises(ValueError, match="sample_dt must be"):
        dp.LIReadout(2, 3, dt=None, sample_dt=INF)
    s = GridSettings(tau_mem=20.0, tau_syn=5.0, threshold=INF, dt=INF, n_steps=1,
                     max_delay_steps=0)  # fmt: skip
    with pytest.raises(ValueError, match="dt must be > 0 and finite"):
        li_readout(x, torch.ones(3, 2), None, s)


@pytest.mark.parametrize("dt", [1.0, None])
@pytest.mark.parametrize("value", [-0.75, 5.75, NAN])
def test_delays_outside_their_bound_are_an_error_in_both_engines(dt, value):
    layer = dp.LIF(2, 3, dt=dt, max_delay=5.0)
    with torch.no_grad():
        layer.delay.raw[0, 0] = value
    match = "delay contains NaN" if value != value else r"delay must be >= 0 ms and <= max_delay"
    with pytest.raises(ValueError, match=match):
        layer(_burst(1, 2))
    dp.constrain_(layer)
    if value == value:  # constrain_ brings it back into range: the same layer runs
        assert layer(_burst(1, 2)).batch_size == 1


@pytest.mark.parametrize("bound", ["clamp", "sigmoid"])
@pytest.mark.parametrize("dt", [0.3, None])
def test_delays_at_their_bounds_after_training_steps_pass_the_check(bound, dt):
    """The extreme values the parametrisations produce (clamped to exactly max_delay in float32,
    a saturated sigmoid) are in range."""
    layer = dp.LIF(2, 3, dt=dt, max_delay=0.1, delay_bound=bound, delay_init=0.05,
                   dtype=torch.float32)  # fmt: skip
    with torch.no_grad():
        layer.delay.raw.copy_(torch.tensor([[1e9, -1e9], [0.1, 0.0], [1e9, 1e9]]))
    dp.constrain_(layer)
    assert layer(_burst(1, 2)).batch_size == 1


def test_grid_functional_refuses_delays_that_round_past_its_steps():
    from delayprop.functional import GridSettings, lif

    x = dp.Spikes.from_lists([([1.0], [0])], n_units=2, duration=10.0)
    s = GridSettings(tau_mem=20.0, tau_syn=5.0, threshold=1.0, dt=1.0, n_steps=10,
                     max_delay_steps=3)  # fmt: skip
    w = torch.ones(3, 2)
    assert lif(x, w, torch.full((3, 2), 3.4), s).batch_size == 1  # rounds to 3 steps
    with pytest.raises(ValueError, match=r"delay must be >= 0 ms and <= max_delay=3.0 ms"):
        lif(x, w, torch.full((3, 2), 3.6), s)
    with pytest.raises(ValueError, match=r"delay must be \[3, 2\]"):
        lif(x, w, torch.zeros(2, 3), s)


# ---------------------------------------------------------------- CLI: clear errors, no traceback
def _cli(capsys, *argv: str) -> tuple[int, str]:
    from delayprop.cli import main

    code = main(list(argv))
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return code, err


def _train_sequence(out, *extra: str) -> list[str]:
    return ["train", "sequence", "--out", str(out), "--quiet", "--set", "train.epochs=2", *extra]


def test_cli_out_that_is_a_file_is_an_error(tmp_path, capsys):
    target = tmp_path / "file.txt"
    target.write_text("keep me")
    code, err = _cli(capsys, *_train_sequence(target))
    assert code == 2 and "exists and is not a directory" in err
    assert target.read_text() == "keep me"
    code, err = _cli(capsys, *_train_sequence(target / "run"))
    assert code == 2 and "error:" in err


@pytest.mark.parametrize("command", ["train", "eval"])
def test_cli_unknown_device_is_an_error(tmp_path, capsys, command):
    argv = _train_sequence(tmp_path / "r") if command == "train" else ["eval", str(tmp_path)]
    code, err = _cli(capsys, *argv, "--device", "bogus")
    assert code == 2 and "--device 'bogus' is not a torch device" in err


def test_cli_overflowing_optimiser_step_is_an_error(tmp_path, capsys):
    code, err = _cli(capsys, "train", "yinyang", "--out", str(tmp_path / "yy"), "--quiet",
                     "--set", "train.lr=1e38", "train.max_batches=2", "model.dt=0.5")  # fmt: skip
    assert code == 2 and "optimiser step overflowed at epoch 1, step 1" in err


@pytest.mark.parametrize("value", [".nan", ".inf", "-.inf"])
@pytest.mark.parametrize("key", ["train.lr", "model.tau_mem", "model.dt"])
def test_cli_non_finite_config_numbers_are_refused(tmp_path, capsys, key, value):
    code, err = _cli(capsys, *_train_sequence(tmp_path / "r", f"{key}={value}"))
    assert code == 2 and f"{key}: expected a finite number" in err
    assert not (tmp_path / "r").exists()


def test_parameters_that_become_non_finite_stop_training():
    from delayprop.config import load_config
    from delayprop.training import Trainer

    trainer = Trainer(load_config("sequence", ["train.epochs=2"]), quiet=True)
    original = trainer.optimizer.step

    def step():  # a real step, then what a diverged optimiser leaves behind
        original()
        with torch.no_grad():
            trainer.model[0].delay.raw[0, 0] = float("nan")

    trainer.optimizer.step = step
    with pytest.raises(ValueError, match=r"diverged at epoch 1, step 1: parameter 0.delay.raw"):
        trainer.fit()


def test_cli_eval_batch_size_must_be_positive(tmp_path, capsys):
    out = tmp_path / "seq"
    assert _cli(capsys, *_train_sequence(out))[0] == 0
    for size in ("0", "-5"):
        code, err = _cli(capsys, "eval", str(out), "--batch-size", size)
        assert code == 2 and f"--batch-size must be a positive integer, got {size}" in err
    assert _cli(capsys, "eval", str(out), "--batch-size", "1")[0] == 0


def test_cli_damaged_checkpoints_and_configs_are_errors(tmp_path, capsys):
    out = tmp_path / "seq"
    assert _cli(capsys, *_train_sequence(out))[0] == 0
    state = torch.load(out / "checkpoint.pt", weights_only=True)
    for key in ("config", "optimizer"):
        torch.save({k: v for k, v in state.items() if k != key}, out / "checkpoint.pt")
        code, err = _cli(capsys, *_train_sequence(out), "--resume")
        assert code == 2 and f"lacks {key}" in err
    best = torch.load(out / "best.pt", weights_only=True)
    torch.save({k: v for k, v in best.items() if k != "config"}, out / "best.pt")
    code, err = _cli(capsys, "eval", str(out))
    assert code == 2 and "lacks config" in err
    # the checkpoint's own config must be the one of config.yaml
    changed = dict(state, config={**state["config"], "train": {**state["config"]["train"],
                                                                "lr": 0.5}})  # fmt: skip
    torch.save(changed, out / "checkpoint.pt")
    code, err = _cli(capsys, *_train_sequence(out), "--resume")
    assert code == 2 and "config stored in" in err and "differs" in err
    (out / "config.yaml").write_text("task: [unclosed\n  - :")
    code, err = _cli(capsys, *_train_sequence(out), "--resume")
    assert code == 2 and "config.yaml is corrupt" in err


# ---------------------------------------------------------------- input validation gaps
def test_spike_past_the_duration_is_refused():
    with pytest.raises(ValueError, match=r"must be < duration = 10.0 ms, found a spike at 50.0"):
        dp.Spikes.from_lists([([1.0, 50.0], [0, 1])], n_units=2, duration=10.0)
    with pytest.raises(ValueError, match="must be < duration"):
        dp.Spikes.from_lists([([10.0], [0])], n_units=2, duration=10.0)


@pytest.mark.parametrize("units", [[0.0, 1.9], [0.0, float("nan")], [0.0, 2.0**70]])
def test_from_arrays_refuses_fractional_units_instead_of_truncating(units):
    with pytest.raises(ValueError, match="unit ind"):
        dp.Spikes.from_arrays(torch.tensor([1.0, 2.0]), torch.tensor(units, dtype=torch.float64),
                              torch.tensor([0, 0]),
                              1, 3, 10.0)  # fmt: skip


def test_from_arrays_accepts_integral_float_units_and_refuses_fractional_samples():
    s = dp.Spikes.from_arrays(torch.tensor([1.0, 2.0]), torch.tensor([0.0, 2.0]),
                              torch.tensor([0, 0]), 1, 3, 10.0)  # fmt: skip
    assert s.units.tolist() == [0, 2]
    with pytest.raises(ValueError, match="sample indices must be integers, got 0.5"):
        dp.Spikes.from_arrays(torch.tensor([1.0]), torch.tensor([0]), torch.tensor([0.5]), 1, 3,
                              10.0)  # fmt: skip


@pytest.mark.parametrize("n_units", [0, 2.5, 2**31, True])
def test_n_units_must_be_a_positive_int32_size(n_units):
    with pytest.raises(ValueError, match="n_units must be a positive integer"):
        dp.Spikes.from_lists([([1.0], [0])], n_units=n_units, duration=10.0)


def _event_dataset(units, labels):
    import numpy as np

    from delayprop.data import EventDataset

    return EventDataset(np.array([1.0, 2.0]), np.asarray(units), np.array([0, 1, 2]),
                        np.asarray(labels), 4, 3, 10.0, "probe")  # fmt: skip


@pytest.mark.parametrize(
    ("units", "labels", "message"),
    [([0, 2**32 + 1], [0, 1], "channel indices out of range of int32"),
     ([0, 1], [0, 1.7], "labels must be integers, got 1.7"),
     ([0, 1.5], [0, 1], "channel indices must be integers, got 1.5"),
     ([0, 1], ["a", "b"], "labels must be integers")],
)  # fmt: skip
def test_event_dataset_refuses_values_it_would_wrap_or_truncate(units, labels, message):
    with pytest.raises(ValueError, match=message):
        _event_dataset(units, labels)
    assert _event_dataset([0.0, 3.0], [0.0, 2.0]).labels.tolist() == [0, 2]


def test_event_dataset_refuses_events_past_its_duration():
    import numpy as np

    from delayprop.data import EventDataset

    with pytest.raises(ValueError, match="an event at 12.0 ms lies beyond the duration 10.0"):
        EventDataset(np.array([12.0]), np.array([0]), np.array([0, 1]), np.array([0]), 4, 3,
                     10.0)  # fmt: skip


@pytest.mark.parametrize(
    "loss", ["cross_entropy", "time_invariant_mse", "ttfs_cross_entropy", "accuracy"]
)
def test_losses_refuse_float_labels(loss):
    fn = getattr(dp.losses, loss)
    with pytest.raises(ValueError, match="labels must be an integer tensor"):
        fn(torch.zeros(2, 3), torch.tensor([0.0, 1.7]))


@pytest.mark.parametrize("xi", [0.0, -1.0, float("inf")])
def test_ttfs_cross_entropy_refuses_a_bad_xi_instead_of_nan(xi):
    with pytest.raises(ValueError, match="xi must be > 0 and finite"):
        dp.losses.ttfs_cross_entropy(torch.zeros(2, 3), torch.tensor([0, 1]), xi=xi)


# ---------------------------------------------------------------- run directories
def _live_process():
    import subprocess
    import sys

    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])


def test_force_refuses_a_directory_a_live_run_writes_to(tmp_path, capsys):
    import socket

    out = tmp_path / "seq"
    assert _cli(capsys, *_train_sequence(out))[0] == 0
    before = (out / "metrics.json").read_bytes()
    proc = _live_process()
    try:
        (out / ".lock").write_text(f"{socket.gethostname()} {proc.pid}\n")
        for flag in ("--force", "--resume"):
            code, err = _cli(capsys, *_train_sequence(out), flag)
            assert code == 2 and f"in use by a live run (process {proc.pid})" in err
        assert (out / "metrics.json").read_bytes() == before
    finally:
        proc.kill()
        proc.wait()
    # the holder is gone: its lock is stale and taken over
    code, err = _cli(capsys, *_train_sequence(out), "--force")
    assert code == 0
    assert not (out / ".lock").exists()


def test_a_run_holds_its_lock_while_training(tmp_path, capsys):
    import os

    from delayprop.training.lock import run_lock

    out = tmp_path / "seq"
    with run_lock(out) as lock:
        assert lock.read_text().split()[1] == str(os.getpid())
        code, err = _cli(capsys, *_train_sequence(out), "--force")
        assert code == 2 and "in use by a live run" in err
    assert not lock.exists()


def test_lock_from_another_host_is_reported_with_its_path(tmp_path, capsys):
    out = tmp_path / "seq"
    out.mkdir()
    (out / ".lock").write_text("elsewhere.example 123\n")
    code, err = _cli(capsys, *_train_sequence(out), "--force")
    assert code == 2 and "locked by process 123 on host elsewhere.example" in err


def test_failed_start_is_recovered_by_a_plain_rerun(tmp_path, capsys):
    out = tmp_path / "run"
    empty = tmp_path / "no-data"
    empty.mkdir()
    code, err = _cli(capsys, "train", "braille", "--out", str(out), "--quiet",
                     "--data-dir", str(empty))  # fmt: skip
    assert code == 2 and "braille" in err
    assert (out / "config.yaml").exists()  # a failed start leaves its config behind
    (out / ".checkpoint.pt.abc123.tmp").write_bytes(b"half a checkpoint")  # a killed write
    assert _cli(capsys, *_train_sequence(out))[0] == 0  # plain rerun, another task
    assert not list(out.glob(".*.tmp"))
    assert "task: sequence" in (out / "config.yaml").read_text()


def test_resume_of_a_run_killed_before_its_first_epoch_starts_over(tmp_path, capsys):
    out = tmp_path / "run"
    assert _cli(capsys, *_train_sequence(out))[0] == 0
    for name in ("checkpoint.pt", "best.pt", "metrics.json", "metrics.csv"):
        (out / name).unlink()  # what is left when a run dies in epoch 1
    (out / ".metrics.json.x1y2.tmp").write_text("{")
    code, err = _cli(capsys, *_train_sequence(out), "--resume")
    assert code == 0 and "no epoch completed yet" in err
    assert (out / "checkpoint.pt").exists() and not list(out.glob(".*.tmp"))


def test_a_finished_run_is_still_protected_from_a_plain_rerun(tmp_path, capsys):
    out = tmp_path / "run"
    assert _cli(capsys, *_train_sequence(out))[0] == 0
    code, err = _cli(capsys, *_train_sequence(out))
    assert code == 2 and "exists and is not empty" in err


# ---------------------------------------------------------------- second round of probes
def test_yaml_python_tags_are_refused_and_not_run(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    evil = tmp_path / "evil.yaml"
    tag = '!!python/object/apply:os.system ["touch PWNED"]'
    evil.write_text(f"base: sequence\ntrain: {tag}\n")
    code, err = _cli(capsys, "train", str(evil), "--out", str(tmp_path / "a"), "--quiet")
    assert code == 2 and "not valid YAML" in err and "python/object/apply" in err
    code, err = _cli(capsys, *_train_sequence(tmp_path / "b", f"train.lr={tag}"))
    assert code == 2 and "not valid YAML" in err
    assert not (tmp_path / "PWNED").exists()


@pytest.mark.parametrize(
    ("override", "message"),
    [("train.max_batches=-1", "train.max_batches must be >= 1"),
     ("train.early_stopping=0", "train.early_stopping must be >= 1"),
     ("train.seed=-1", "train.seed must be >= 0"),
     ("train.epochs=abc", "train.epochs: expected int"),
     ("model.readout_max_delay=1e300", "max_delay must be a finite number of ms >= 0 that"),
     ("model.dt=1e-300", "time steps (duration / dt) exceed the limit"),
     ("train.reg_target=-1", "regulariser target and strengths must be finite")],
)  # fmt: skip
def test_absurd_config_values_are_clear_errors(tmp_path, capsys, override, message):
    code, err = _cli(capsys, *_train_sequence(tmp_path / "r", override))
    assert code == 2 and message in err


def test_non_utf8_and_directory_configs_are_clear_errors(tmp_path, capsys):
    binary = tmp_path / "bin.yaml"
    binary.write_bytes(b"\xff\xfe\x00bad")
    code, err = _cli(capsys, "train", str(binary), "--out", str(tmp_path / "r"))
    assert code == 2 and "not a UTF-8 text file" in err
    (tmp_path / "dir.yaml").mkdir()
    code, err = _cli(capsys, "train", str(tmp_path / "dir.yaml"), "--out", str(tmp_path / "r"))
    assert code == 2 and "Is a directory" in err


def test_force_never_empties_a_directory_that_is_not_a_run(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "precious.txt").write_text("keep")
    for out in ("", str(tmp_path)):
        code, err = _cli(capsys, *_train_sequence(out), "--force")
        assert code == 2 and "not a run directory" in err
    assert (tmp_path / "precious.txt").read_text() == "keep"


def test_symlinked_run_directories(tmp_path, capsys):
    real = tmp_path / "real"
    real.mkdir()
    link = tmp_path / "link"
    link.symlink_to(real)
    assert _cli(capsys, *_train_sequence(link))[0] == 0
    assert (real / "checkpoint.pt").exists() and link.is_symlink()
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "data.txt").write_text("keep")
    (real / "escape").symlink_to(outside)  # a link inside a run directory
    assert _cli(capsys, *_train_sequence(link), "--force")[0] == 0
    assert (outside / "data.txt").read_text() == "keep" and not (real / "escape").exists()
    dangling = tmp_path / "dangling"
    dangling.symlink_to(tmp_path / "missing")
    code, err = _cli(capsys, *_train_sequence(dangling))
    assert code == 2 and "symbolic link to a missing directory" in err


def test_out_of_memory_is_a_cli_error(tmp_path, capsys):
    code, err = _cli(capsys, "train", "yinyang", "--out", str(tmp_path / "r"), "--quiet", "--set",
                     "model.hidden=[1000000000000]", "model.weight_init=[]")  # fmt: skip
    assert code == 2 and "out of memory" in err


@pytest.mark.parametrize("duration", [float("nan"), float("inf"), -5.0, 0.0])
@pytest.mark.parametrize("dt", [1.0, None])
def test_plain_spikes_with_a_bad_duration_are_refused(duration, dt):
    x = dp.Spikes(torch.tensor([1.0]), torch.tensor([0], dtype=torch.int32), torch.tensor([0, 1]),
                  2, duration)  # fmt: skip
    with pytest.raises(ValueError, match="duration must be a finite number of ms > 0"):
        dp.LIF(2, 3, dt=dt)(x)


@pytest.mark.parametrize("sizes", [(2.5, 3), (2, 0), (True, 3), ("2", 3)])
def test_layer_sizes_must_be_positive_integers(sizes):
    with pytest.raises(ValueError, match="n_in and n_out must be positive integers"):
        dp.LIF(*sizes)


@pytest.mark.parametrize("dt", [1.0, None])
def test_empty_batches_and_duplicate_spikes(dt):
    """A batch of no samples runs; three spikes of one unit at one time act as one spike of
    three times the weight in both engines."""
    empty = dp.Spikes.from_lists([], n_units=2, duration=10.0)
    assert dp.LIF(2, 3, dt=dt)(empty).batch_size == 0
    readout = dp.LIReadout(2, 1, dt=dt, sample_dt=None if dt else 1.0, weight_init=1.0)
    triple = dp.Spikes.from_lists([([1.0] * 3, [0] * 3)], n_units=2, duration=10.0)
    single = dp.Spikes.from_lists([([1.0], [0])], n_units=2, duration=10.0)
    torch.testing.assert_close(readout(triple), 3 * readout(single))


def test_plot_of_a_missing_run_creates_nothing(tmp_path, capsys):
    missing = tmp_path / "missing"
    code, err = _cli(capsys, "plot", str(missing))
    assert code == 2 and "holds no metrics.json" in err
    assert not missing.exists()


def test_plot_names_a_damaged_metrics_file(tmp_path, capsys):
    out = tmp_path / "seq"
    assert _cli(capsys, *_train_sequence(out))[0] == 0
    (out / "metrics.json").write_text("{bad")
    code, err = _cli(capsys, "plot", str(out))
    assert code == 2 and "metrics.json is damaged" in err
    assert not (out / "plots").exists()


def test_corrupt_hdf5_is_named(tmp_path, capsys):
    (tmp_path / "shd_train.h5").write_bytes(bytes(range(256)) * 8)
    (tmp_path / "shd_test.h5").write_bytes(bytes(range(256)) * 8)
    code, err = _cli(capsys, "train", "shd_ff", "--out", str(tmp_path / "r"), "--quiet",
                     "--data-dir", str(tmp_path))  # fmt: skip
    assert code == 2 and "shd_train.h5: not a readable HDF5 file" in err


def test_cli_diverging_exact_engine_run_ends_with_the_spike_limit(tmp_path, capsys):
    """``train yinyang --set train.lr=1e4`` used to hang in the exact engine."""
    code, err = _cli(capsys, "train", "yinyang", "--out", str(tmp_path / "yy"), "--quiet",
                     "--set", "train.lr=1e4", "train.max_batches=3")  # fmt: skip
    assert code == 2
    assert "lif layer (5 inputs -> 30 neurons, exact engine)" in err
    assert "300 spikes per neuron per trial" in err
