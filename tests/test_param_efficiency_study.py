"""benchmarks/yinyang_param_efficiency.py: the configs it trains and the table it reports."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from delayprop.training.model import build_network, count_parameters

SCRIPT = Path(__file__).parents[1] / "benchmarks" / "yinyang_param_efficiency.py"


@pytest.fixture(scope="module")
def study():
    spec = importlib.util.spec_from_file_location("yinyang_param_efficiency", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("method", ["eventprop", "delgrad"])
def test_output_weights_keep_the_same_total_drive_at_every_hidden_size(study, method):
    ref = study.study_config(method, True, 30, 0, None).model.weight_init
    small = study.study_config(method, True, 5, 1, 7)
    (m_in, s_in), (m_out, s_out) = small.model.weight_init
    assert [m_in, s_in] == ref[0]  # the input fan-in (4 inputs + bias) does not change
    assert m_out * 5 == pytest.approx(ref[1][0] * 30)  # same mean input to an output neuron
    assert s_out**2 * 5 == pytest.approx(ref[1][1] ** 2 * 30)  # and the same variance
    assert small.model.hidden == [5] and small.train.seed == 1 and small.train.epochs == 7


@pytest.mark.parametrize(
    ("method", "delays", "hidden", "expected"),
    [
        # weights (4 inputs + bias) x H + H x 3, plus 5 x H synaptic delays into the hidden layer
        ("eventprop", True, 5, 25 + 15 + 25),
        ("eventprop", False, 5, 25 + 15),
        ("delgrad", True, 30, 150 + 90 + 150),
        ("delgrad", False, 10, 50 + 30),
    ],
)
def test_learnable_parameters_of_the_grid(study, method, delays, hidden, expected):
    cfg = study.study_config(method, delays, hidden, 0, None)
    assert count_parameters(build_network(cfg.model, 5, 3)) == expected


def test_summary_is_mean_and_sample_std_over_seeds(study):
    rows = [
        {"method": "eventprop", "delays": True, "hidden": 5, "seed": s, "parameters": 65,
         "epochs": 3, "validation_accuracy": v, "test_accuracy": t}
        for s, v, t in ((0, 0.90, 0.80), (1, 0.92, 0.90), (2, 0.94, 1.00))
    ]  # fmt: skip
    rows.append({**rows[0], "delays": False, "parameters": 40, "test_accuracy": 0.5})
    summary = study.summarise(rows)
    assert len(summary) == 2
    with_delays = next(s for s in summary if s["delays"])
    assert with_delays["seeds"] == [0, 1, 2]
    assert with_delays["test_mean"] == pytest.approx(90.0)
    assert with_delays["test_std"] == pytest.approx(10.0)
    assert with_delays["validation_mean"] == pytest.approx(92.0)
    without = next(s for s in summary if not s["delays"])
    assert without["test_mean"] == pytest.approx(50.0) and without["test_std"] == 0.0
    table = study.markdown_table(summary)
    assert "| eventprop | synaptic | 4-5-3 | 65 | 92.00 +- 2.00 | 90.00 +- 10.00 |" in table
