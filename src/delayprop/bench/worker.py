"""One benchmark process: ``python -m delayprop.bench.worker CASE.json RESULT.json``.

Builds the SHD-shaped batch and the network of one ``Case``, records the RSS right after imports
and model/data creation, then (eventprop) calibrates the hidden layers to the target activity
and saves the weights for the other methods, or (baselines) loads them; then times full
training steps and writes a result record.  Peak RSS of the whole process is measured by the
parent (``os.wait4``), so it includes everything this process did.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
import traceback
from pathlib import Path

import numba
import torch

from ..methods import build_model, copy_parameters
from ..nn import SpikeRecorder
from .cases import Case, training_method
from .workload import (
    calibrate_rates,
    current_rss_mb,
    hidden_rates,
    peak_rss_mb,
    shd_weight_init,
    synthetic_shd,
    time_training_steps,
)

__all__ = ["run_case", "build_case_model"]


def build_case_model(case: Case) -> torch.nn.Module:
    """The network of ``case`` (delays drawn uniformly up to ``case.delay_init``; BPTT without
    delays; ``precise``: eventprop's network in precise mode), with the published SHD weight
    initialisation before calibration."""
    ff_init, rec_init = shd_weight_init(len(case.hidden))
    delays = case.method != "bptt"
    d = case.max_delay if delays else 0.0
    d_init = case.delay_init if delays else 0.0
    readout_d = d if not case.recurrent else 0.0
    rec = dict(recurrent=True, rec_max_delay=d, rec_delay_init=(0.0, d_init),
               rec_weight_init=rec_init) if case.recurrent else {}  # fmt: skip
    return build_model(
        training_method(case.method), n_in=case.n_in, hidden=list(case.hidden),
        n_out=case.n_out, dt=case.dt,
        max_delay=d, delay_init=(0.0, d_init), readout_max_delay=readout_d,
        readout_delay_init=(0.0, min(readout_d, d_init)), weight_init=ff_init,
        precise=case.method == "precise", **rec,
    )  # fmt: skip


def _spike_rates(model: torch.nn.Module, recorder: SpikeRecorder | None, case: Case
                 ) -> list[float]:  # fmt: skip
    """Spikes per neuron per sample of each hidden layer in the last training step (eventprop
    and precise: from ``recorder``; the baselines keep their counts)."""
    if recorder is not None:
        return hidden_rates(recorder.counts, case.batch)
    return hidden_rates(model.spike_counts, case.batch)


def _save_weights(model: torch.nn.Module, path: Path) -> None:
    """The calibrated eventprop network's parameters, for the other methods at this point."""
    torch.save(model.state_dict(), path)


def _load_weights(model: torch.nn.Module, case: Case, path: Path) -> None:
    """Give ``model`` the weights and delays (in ms, whatever its delay bound) that the
    eventprop case at the same point saved (precise runs the same network); BPTT takes the
    weights only."""
    source = build_case_model(dataclasses.replace(case, method="eventprop"))
    source.load_state_dict(torch.load(path))
    copy_parameters(source, model, drop_delays=case.method == "bptt")


def run_case(case: Case) -> dict:
    """Measure one case in this process; returns the result record (see module docstring)."""
    torch.set_num_threads(case.threads)
    numba.set_num_threads(min(case.threads, numba.config.NUMBA_NUM_THREADS))
    torch.manual_seed(case.seed)
    spikes, labels = synthetic_shd(
        case.batch, n_in=case.n_in, n_classes=case.n_out, duration=case.duration,
        spikes_per_sample=case.spikes_per_sample, seed=case.seed,
    )  # fmt: skip
    model = build_case_model(case)
    weights = Path(case.weights)
    if case.method != "eventprop":
        _load_weights(model, case, weights)
    rss_base = current_rss_mb()
    record: dict = {"rss_base_mb": rss_base}
    if case.method == "eventprop":
        start = time.perf_counter()
        record["weight_scales"] = calibrate_rates(model, spikes, case.target_rate)
        record["calibration_s"] = time.perf_counter() - start
        _save_weights(model, weights)
    uses_lif = training_method(case.method) == "eventprop"
    recorder = SpikeRecorder(model[:-1]) if uses_lif else None
    timing = time_training_steps(
        model, spikes, labels, warmup=case.warmup, max_timed=case.max_timed,
        budget_s=case.budget_s,
    )  # fmt: skip
    record.update(
        time_median_s=timing.median,
        time_min_s=timing.minimum,
        times_s=timing.timed,
        warmup_s=timing.warmup,
        cold_single_step=timing.cold,
        nonfinite_gradient_steps=timing.nonfinite_steps,
        spikes_per_neuron=_spike_rates(model, recorder, case),
        rss_peak_self_mb=peak_rss_mb(),
        n_parameters=sum(p.numel() for p in model.parameters()),
    )
    return record


def main(argv: list[str]) -> int:
    case_path, result_path = Path(argv[0]), Path(argv[1])
    case = Case.from_dict(json.loads(case_path.read_text()))
    try:
        record = {"status": "ok", **run_case(case)}
    except Exception as err:  # reported in the table; the parent goes on with the next case
        traceback.print_exc()
        record = {"status": "error", "reason": f"{type(err).__name__}: {err}"}
    result_path.write_text(json.dumps(record))
    return 0 if record["status"] == "ok" else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
