"""``delayprop bench``: workload, calibration, planning, skip rule and report content."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import delayprop as dp
from delayprop.bench import Case, estimate, plan, synthetic_shd, write_report
from delayprop.bench.runner import Caps, _skip_reason
from delayprop.bench.workload import calibrate_rates, hidden_rates
from delayprop.cli import main
from delayprop.methods import build_model

SRC = Path(__file__).resolve().parents[1] / "src"


def test_synthetic_input_is_shd_shaped():
    x, labels = synthetic_shd(3, seed=1)
    assert (x.batch_size, x.n_units, x.duration) == (3, 700, 1000.0)
    assert x.counts().tolist() == [5000, 5000, 5000]
    assert float(x.times.min()) >= 0 and float(x.times.max()) < 1000.0
    assert int(x.units.min()) >= 0 and int(x.units.max()) < 700
    assert labels.shape == (3,) and 0 <= int(labels.min()) and int(labels.max()) < 20
    with pytest.raises(ValueError):
        synthetic_shd(0)


def test_calibration_reaches_the_target_rate():
    torch.manual_seed(0)
    x, _ = synthetic_shd(4, n_in=40, duration=100.0, spikes_per_sample=200, seed=2)
    model = build_model("eventprop", n_in=40, hidden=[16, 16], n_out=3, max_delay=8.0,
                        delay_init=(0.0, 8.0), weight_init=[dp.Normal(0.03, 0.01)] * 3)  # fmt: skip
    scales = calibrate_rates(model, x, target=6.0)
    assert len(scales) == 2 and all(s > 0 for s in scales)
    with dp.SpikeRecorder(model[:2]) as recorder:
        model[1](model[0](x))
    rates = hidden_rates(recorder.counts, 4)
    assert rates == pytest.approx(recorder.rates())
    assert rates == pytest.approx([6.0, 6.0], rel=0.05)


def test_full_plan_covers_the_grid_with_eventprop_first():
    cases = plan()
    ff = [c for c in cases if c.suite == "ff"]
    assert len(ff) == 2 * 5 * 4
    assert {c.method for c in ff} == {"eventprop", "precise", "bptt", "dcls"}
    assert {c.hidden for c in ff} == {(256, 256), (512, 512)}
    assert sorted({c.max_delay_steps for c in ff}) == [64, 128, 256, 512, 1024]
    assert all((c.batch, c.n_in, c.n_out, c.dt, c.duration) == (32, 700, 20, 1.0, 1000.0)
               for c in ff)  # fmt: skip
    dcls_run = {(c.hidden, c.max_delay_steps) for c in ff if c.method == "dcls" and not c.skip}
    assert dcls_run == {((256, 256), 64), ((256, 256), 512), ((512, 512), 64)}
    assert all(not c.skip for c in plan(dcls_everywhere=True))
    paper = [c for c in cases if c.suite == "dcls-paper"]
    assert [(c.dt, c.max_delay_steps, c.max_delay) for c in paper] == [(10.0, 25, 250.0)] * 4
    rec = [c for c in cases if c.suite == "recurrent"]
    assert [(c.hidden, c.recurrent, c.max_delay_steps, c.method) for c in rec] == [
        ((512,), True, d, "eventprop") for d in (64, 256, 1024)
    ]
    fixed = [c for c in cases if c.suite == "fixed-delays"]
    assert [(c.hidden, c.max_delay_steps, c.delay_init) for c in fixed] == [
        ((256, 256), d, 64.0) for d in (64, 256, 1024)
    ]
    seen: set = set()
    for c in cases:  # the eventprop case of a point comes before the other methods
        if c.method == "eventprop":
            seen.add(c.point)
        assert c.point in seen
    with pytest.raises(ValueError, match="unknown suite"):
        plan(("gpu",))
    with pytest.raises(ValueError, match=">= 1"):
        plan(max_delays=(0,))
    with pytest.raises(ValueError, match="unknown method 'slayer'"):
        plan(methods=("eventprop", "slayer"))


def test_precise_case_is_the_eventprop_network_in_precise_mode():
    from delayprop.bench.worker import build_case_model

    ep, pr = (Case("ff", m, (16, 16), 1.0, 4, n_in=40) for m in ("eventprop", "precise"))
    torch.manual_seed(0)
    grid = build_case_model(ep)
    torch.manual_seed(0)
    precise = build_case_model(pr)
    assert [layer.precise for layer in precise] == [True, True, True]
    assert [layer.precise for layer in grid] == [False, False, False]
    for a, b in zip(grid.parameters(), precise.parameters()):
        torch.testing.assert_close(a, b)


def test_fixed_delays_cases_build_the_same_delays_at_every_max_delay():
    from delayprop.bench.worker import build_case_model

    nets = []
    for case in plan(("fixed-delays",), quick=True):
        torch.manual_seed(0)
        nets.append(build_case_model(case))
        assert nets[-1][0].max_delay == case.max_delay
    delays = [[p.delay().detach() for p in net] for net in nets]
    assert float(delays[0][0].max()) <= 4.0 and float(delays[0][0].max()) > 2.0
    for a, b in zip(delays[0], delays[1]):
        torch.testing.assert_close(a, b)


def _ok(case: Case, seconds: float, base: float, peak: float, **extra) -> dict:
    return {"case": case.to_dict(), "status": "ok", "time_median_s": seconds,
            "rss_base_mb": base, "rss_peak_mb": peak, "spikes_per_neuron": [15.0, 14.0],
            **extra}  # fmt: skip


def test_slow_configurations_are_skipped_by_extrapolation():
    small = Case("ff", "dcls", (256, 256), 1.0, 64)
    big = Case("ff", "dcls", (256, 256), 1.0, 1024)
    prev = _ok(small, 10.0, 400.0, 700.0)
    step_s, mem_mb = estimate(prev, big)
    assert step_s == pytest.approx(10.0 * 1025 / 65)
    assert mem_mb == pytest.approx(400.0 + 300.0 * 1025 / 65)
    assert "per step" in _skip_reason(prev, big, Caps(step_s=100.0))
    assert "GB" in _skip_reason(prev, big, Caps(step_s=1e9, memory_mb=4000.0))
    assert _skip_reason(prev, big, Caps(step_s=1e9, memory_mb=1e9)) is None
    ep = Case("ff", "eventprop", (256, 256), 1.0, 1024)
    assert _skip_reason(_ok(ep, 1e3, 400.0, 1e6), ep, Caps()) is None  # never skipped


def test_report_tables_ratios_and_plot(tmp_path):
    cases = {m: Case("ff", m, (256, 256), 1.0, 512)
             for m in ("eventprop", "precise", "bptt", "dcls")}  # fmt: skip
    results = [
        _ok(cases["eventprop"], 0.2, 400.0, 500.0),
        _ok(cases["precise"], 0.3, 400.0, 520.0),
        _ok(cases["bptt"], 1.0, 400.0, 900.0),
        _ok(cases["dcls"], 80.0, 400.0, 4400.0),
        {"case": Case("ff", "dcls", (256, 256), 1.0, 1024).to_dict(), "status": "skipped",
         "reason": "estimated 160 s per step > cap 100 s"},
        _ok(Case("recurrent", "eventprop", (512,), 1.0, 64, recurrent=True), 0.3, 400.0, 450.0),
    ]  # fmt: skip
    machine = {"cpu": "test cpu", "cores": 2, "memory_gb": 24, "threads": 2, "torch": "t",
               "numba": "n", "python": "p", "date": "today"}  # fmt: skip
    paths = write_report(results, machine, "delayprop bench --test", tmp_path)
    doc = json.loads(paths["json"].read_text())
    ratios = doc["results"][0]["ratios"]
    assert ratios["eventprop/dcls"]["time"] == pytest.approx(0.2 / 80.0)
    assert ratios["eventprop/dcls"]["rss_peak"] == pytest.approx(500.0 / 4400.0)
    assert ratios["eventprop/dcls"]["rss_increase"] == pytest.approx(100.0 / 4000.0)
    assert ratios["eventprop/bptt"]["time"] == pytest.approx(0.2)
    assert ratios["eventprop/precise"]["time"] == pytest.approx(0.2 / 0.3)
    md = paths["markdown"].read_text()
    assert "test cpu, 2 cores" in md and "`delayprop bench --test`" in md
    assert ("| 256 x 256 | 1 | 512 | 200 | 300 | 1000 | 80000 | 0.0025 (400x) | 0.2 (5x) | 1.5 |"
            in md)
    assert "| 256 x 256 | 1 | 512 | 500 / 100 | 520 / 120 | 900 / 500 | 4400 / 4000 |" in md
    assert "skipped: estimated 160 s per step > cap 100 s" in md
    assert "| rec 512 | 64 | 300 | 450 | 50 |" in md
    assert paths["plot"].stat().st_size > 10_000
    # the report of a finished run can be written again from its JSON
    assert main(["bench", "--report-from", str(paths["json"]), "--out", str(tmp_path / "b")]) == 0
    assert (tmp_path / "b" / "bench.md").read_text() == md
    (tmp_path / "bad.json").write_text("{}")
    assert main(["bench", "--report-from", str(tmp_path / "bad.json"), "--out", str(tmp_path)]) == 2


def test_bench_quick_run_end_to_end(tmp_path):
    """One process per configuration, calibrated activity, JSON/markdown/PNG written."""
    out = tmp_path / "bench"
    cmd = [sys.executable, "-m", "delayprop", "bench", "--quick", "--suite", "ff",
           "--max-delays", "4", "--methods", "eventprop", "precise", "dcls",
           "--out", str(out)]  # fmt: skip
    env = {"PYTHONPATH": str(SRC), "PATH": "/usr/bin:/bin"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    doc = json.loads((out / "bench.json").read_text())
    results = doc["results"]
    assert [(r["case"]["suite"], r["case"]["method"]) for r in results] == [
        ("ff", "eventprop"), ("ff", "precise"), ("ff", "dcls"),
    ]  # fmt: skip
    assert all(r["status"] == "ok" for r in results), results
    for r in results:
        assert r["time_median_s"] > 0 and len(r["times_s"]) >= 1
        assert r["rss_peak_mb"] >= r["rss_base_mb"] > 50
    ep, precise = results[0], results[1]
    assert ep["spikes_per_neuron"] == pytest.approx([5.0, 5.0], rel=0.2)  # quick target rate
    # the same calibrated network: the precise mode moves spikes by less than a step
    assert precise["spikes_per_neuron"] == pytest.approx(ep["spikes_per_neuron"], rel=0.2)
    assert ep["ratios"]["eventprop/dcls"]["time"] == pytest.approx(
        ep["time_median_s"] / results[2]["time_median_s"]
    )
    md = (out / "bench.md").read_text()
    assert "| 16 x 16 | 1 | 4 |" in md and "Memory, MB" in md
    assert doc["machine"]["cores"] >= 1 and "Command: `delayprop bench --quick" in md
    assert (out / "bench.png").stat().st_size > 10_000


@pytest.mark.parametrize(
    "args",
    [["--threads", "0"], ["--suite", "gpu"], ["--methods", "slayer"], ["--max-delays", "-3"]],
)
def test_bench_cli_rejects_bad_arguments(args, tmp_path, capsys):
    assert main(["bench", "--quick", "--out", str(tmp_path), *args]) == 2
    assert "error" in capsys.readouterr().err
