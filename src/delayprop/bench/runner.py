"""Run benchmark cases one process each, in the same run, and collect their results.

Each case runs in a fresh ``python -m delayprop.bench.worker`` process (same interpreter, same
sources); the parent waits for it with ``os.wait4``, whose resource usage gives the peak RSS of
that process alone.  Methods whose step time or memory would exceed the caps at a larger max
delay (extrapolated linearly in the kernel length from the last measured one of the same method
and network) are skipped and reported as such, so that a full run stays within ~30 minutes.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .cases import Case

__all__ = ["Caps", "estimate", "run_cases"]

_SRC = str(Path(__file__).resolve().parents[2])


@dataclass(frozen=True)
class Caps:
    """Limits for one case: extrapolated seconds per step, peak memory (MB), wall time (s)."""

    step_s: float = 900.0
    memory_mb: float = 8000.0
    wall_s: float = 1800.0


def estimate(previous: dict, case: Case) -> tuple[float, float]:
    """(seconds per step, peak RSS MB) of ``case`` extrapolated from ``previous``, an ok result
    of the same method and network at a smaller max delay: the part above the base RSS and the
    step time scale with the kernel length max_delay + 1 (exact for DCLS, pessimistic for the
    others, whose cost is flat in the max delay)."""
    ratio = max(1.0, (case.max_delay_steps + 1) / (previous["case"]["max_delay_steps"] + 1))
    increase = previous["rss_peak_mb"] - previous["rss_base_mb"]
    return previous["time_median_s"] * ratio, previous["rss_base_mb"] + increase * ratio


def _skip_reason(previous: dict | None, case: Case, caps: Caps) -> str | None:
    if previous is None or case.method == "eventprop":
        return None
    step_s, mem_mb = estimate(previous, case)
    if step_s > caps.step_s:
        return f"estimated {step_s:.0f} s per step > cap {caps.step_s:.0f} s"
    if mem_mb > caps.memory_mb:
        return f"estimated {mem_mb / 1024:.1f} GB > cap {caps.memory_mb / 1024:.1f} GB"
    return None


def _run_process(case: Case, work: Path, index: int, wall_s: float) -> dict:
    case_file = work / f"case{index:03d}.json"
    result_file = work / f"result{index:03d}.json"
    case_file.write_text(json.dumps(case.to_dict()))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (_SRC, env.get("PYTHONPATH")) if p)
    with open(work / f"case{index:03d}.log", "w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "delayprop.bench.worker", str(case_file), str(result_file)],
            stdout=log, stderr=subprocess.STDOUT, env=env,
        )  # fmt: skip
        deadline = time.monotonic() + wall_s
        timed_out = False
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline and not timed_out:
                os.kill(proc.pid, signal.SIGKILL)
                timed_out = True
            time.sleep(0.05)
        proc.returncode = os.waitstatus_to_exitcode(status)
    record = {"rss_peak_mb": usage.ru_maxrss / 1024}  # Linux reports KiB
    if timed_out:
        record.update(status="error", reason=f"killed after {wall_s:.0f} s wall time",
                      wall_limit_s=wall_s)  # a lower bound on its step time  # fmt: skip
    elif result_file.exists():
        record.update(json.loads(result_file.read_text()))
    else:
        record.update(status="error", reason=f"process exited with code {proc.returncode}")
    return record


def run_cases(
    cases: list[Case], work: Path, *, caps: Caps = Caps(),
    progress: Callable[[Case, dict], None] | None = None,
) -> list[dict]:  # fmt: skip
    """Run ``cases`` in order (eventprop first at every point, see ``cases.plan``); returns one
    record per case: ``case`` (its fields), ``status`` ("ok", "skipped", "error"), ``reason``,
    and for ok cases the timings (s), spikes per neuron, ``rss_base_mb`` and ``rss_peak_mb``."""
    work.mkdir(parents=True, exist_ok=True)
    results: list[dict] = []
    last_ok: dict[tuple, dict] = {}
    weights: dict[tuple, Path] = {}
    for index, case in enumerate(cases):
        family = (case.suite, case.hidden, case.recurrent, case.dt, case.method)
        if case.method == "eventprop":
            weights[case.point] = work / f"weights{index:03d}.pt"
        reason = case.skip or _skip_reason(last_ok.get(family), case, caps)
        if reason is None and case.point not in weights:
            reason = "no eventprop case at this point to calibrate the weights"
        if reason is None and not weights[case.point].exists() and case.method != "eventprop":
            reason = "the eventprop case at this point failed (no calibrated weights)"
        if reason is not None:
            record = {"status": "skipped", "reason": reason}
        else:
            case = _with_weights(case, weights[case.point])
            record = _run_process(case, work, index, caps.wall_s)
        record["case"] = case.to_dict()
        if record["status"] == "ok":
            last_ok[family] = record
        results.append(record)
        if progress is not None:
            progress(case, record)
    return results


def _with_weights(case: Case, path: Path) -> Case:
    return Case.from_dict({**case.to_dict(), "weights": str(path)})
