"""The Spikes event list: constructors, validation, conversions."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from delayprop import Spikes


def test_from_lists_sorts_and_offsets():
    s = Spikes.from_lists([([3.0, 1.0, 1.0], [0, 2, 1]), ([], []), ([0.5], [2])], 3, 10.0)
    assert s.batch_size == 3 and s.n_spikes == 4
    assert s.offsets.tolist() == [0, 3, 3, 4]
    assert s.times.tolist() == [1.0, 1.0, 3.0, 0.5]
    assert s.units.tolist() == [1, 2, 0, 2]  # ties in time ordered by unit
    assert s.samples.tolist() == [0, 0, 0, 2]
    assert s.counts().tolist() == [3, 0, 1]
    s.validate()


@pytest.mark.parametrize(
    "trains,match",
    [
        ([([float("nan")], [0])], "NaN"),
        ([([-1.0], [0])], ">= 0"),
        ([([1.0], [3])], "out of range"),
        ([([1.0], [-1])], "out of range"),
        ([([1.0, 2.0], [0])], "2 times but 1 units"),
        ([([float("inf")], [0])], "infinity"),
        ([([1.0], [0.5])], "integers"),
    ],
)
def test_bad_input_is_rejected_with_a_clear_error(trains, match):
    with pytest.raises(ValueError, match=match):
        Spikes.from_lists(trains, 3, 10.0)


def test_bad_sizes():
    with pytest.raises(ValueError, match="n_units"):
        Spikes.from_lists([([1.0], [0])], 0, 10.0)
    with pytest.raises(ValueError, match="duration"):
        Spikes.from_lists([([1.0], [0])], 2, 0.0)
    with pytest.raises(TypeError):
        Spikes.from_lists("not a list", 2, 1.0)


def test_validate_detects_unsorted_times():
    t = torch.tensor([2.0, 1.0])
    s = Spikes(t, torch.tensor([0, 0], dtype=torch.int32), torch.tensor([0, 2]), 1, 5.0)
    with pytest.raises(ValueError, match="not sorted"):
        s.validate()


def test_raster_round_trip():
    rng = np.random.default_rng(0)
    raster = (rng.random((2, 20, 5)) < 0.2).astype(np.float32)
    s = Spikes.from_raster(raster, dt=0.5)
    assert s.duration == 10.0 and s.n_units == 5
    back = s.to_raster(0.5)
    assert torch.equal(back, torch.from_numpy(raster))
    with pytest.raises(ValueError, match="0 or 1"):
        Spikes.from_raster(raster * 2, dt=1.0)
    with pytest.raises(ValueError, match=r"\[batch, steps, n_units\]"):
        Spikes.from_raster(raster[0], dt=1.0)


def test_from_structured_tonic_style():
    dtype = np.dtype([("t", np.int64), ("x", np.int16), ("p", np.int8)])
    ev = [np.array([(2000, 1, 1), (1000, 0, 0)], dtype=dtype), np.zeros(0, dtype=dtype)]
    s = Spikes.from_structured(ev, n_units=2, duration=5.0)
    assert s.times.tolist() == [1.0, 2.0] and s.units.tolist() == [0, 1]
    assert s.offsets.tolist() == [0, 2, 2]
    with pytest.raises(ValueError, match="fields"):
        Spikes.from_structured([np.zeros(2)], n_units=2, duration=5.0)


def test_sorting_keeps_times_differentiable():
    t = torch.tensor([3.0, 1.0], requires_grad=True)
    s = Spikes.from_arrays(t, [0, 1], [0, 0], 1, 2, 5.0)
    (s.times * torch.tensor([10.0, 1.0])).sum().backward()
    assert t.grad.tolist() == [1.0, 10.0]


def test_concat_and_counts_per_unit():
    a = Spikes.from_lists([([1.0], [0])], 2, 5.0)
    b = Spikes.from_lists([([1.0, 2.0], [1, 1])], 2, 5.0)
    c = Spikes.concat([a, b])
    assert c.offsets.tolist() == [0, 1, 3]
    assert c.counts_per_unit().tolist() == [[1, 0], [0, 2]]
    with pytest.raises(ValueError, match="differ"):
        Spikes.concat([a, Spikes.from_lists([([1.0], [0])], 3, 5.0)])
