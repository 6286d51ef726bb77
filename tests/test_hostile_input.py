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
    with pytest.raises(ValueError, match="spike_limit need the exact engine"):
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
