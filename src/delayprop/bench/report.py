"""Benchmark report: JSON (everything), markdown tables with ratios, plot against max delay."""

from __future__ import annotations

import json
import os
import platform
from datetime import datetime, timezone
from pathlib import Path

import numba
import numpy as np
import torch

from .._util import optional_import

__all__ = ["machine_info", "ratio", "markdown", "write_report", "plot"]

METHOD_ORDER = ("eventprop", "precise", "bptt", "dcls")
_DCLS = METHOD_ORDER.index("dcls")
EVENTPROP_ONLY = {
    "recurrent": "Recurrent layer with learnable input and recurrent delays",
    "fixed-delays": "2 x 256 with the delays drawn from [0, 64] steps at every max delay",
}


def machine_info(threads: int) -> dict:
    """CPU model, cores, memory, software versions and thread count of this machine."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    try:
        memory_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError, AttributeError):
        memory_gb = float("nan")
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gb": round(memory_gb, 1),
        "threads": threads,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numba": numba.__version__,
        "numpy": np.__version__,
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }


def ratio(a: float | None, b: float | None) -> float | None:
    """a / b, or None when either is missing."""
    return None if a is None or b is None or b == 0 else a / b


def _points(results: list[dict]) -> dict[tuple, dict[str, dict]]:
    """{(suite, hidden, recurrent, dt, max delay): {method: record}} in run order."""
    points: dict[tuple, dict[str, dict]] = {}
    for r in results:
        c = r["case"]
        key = (c["suite"], tuple(c["hidden"]), c["recurrent"], c["dt"], c["max_delay_steps"])
        points.setdefault(key, {})[c["method"]] = r
    return points


def _value(record: dict | None, key: str) -> float | None:
    return record.get(key) if record and record.get("status") == "ok" else None


def _increase(record: dict | None) -> float | None:
    peak, base = _value(record, "rss_peak_mb"), _value(record, "rss_base_mb")
    return None if peak is None or base is None else peak - base


def _time_bound_s(record: dict | None) -> float | None:
    """Lower bound on the step time of a process killed at its wall-time limit, s."""
    return record.get("wall_limit_s") if record else None


def _cell(record: dict | None, value: float | None, fmt: str) -> str:
    if record is None:
        return "–"
    if value is None and _time_bound_s(record):
        return f"killed after {_time_bound_s(record):.0f} s"
    if value is None:
        return record.get("status", "?")
    return format(value, fmt)


def _reasons(results: list[dict]) -> list[str]:
    """One line per distinct reason why a configuration was skipped or failed."""
    seen = dict.fromkeys(f"{r['status']}: {r.get('reason', '')}" for r in results
                         if r.get("status") != "ok")  # fmt: skip
    return [f"* {reason}" for reason in seen]


def _flag(record: dict | None) -> str:
    """Marks explained under the table: (a) gradients overflowed, (b) single cold step."""
    marks = [m for m, key in (("a", "nonfinite_gradient_steps"), ("b", "cold_single_step"))
             if _value(record, key)]  # fmt: skip
    return f" ({', '.join(marks)})" if marks else ""


def _ratio_cell(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value:.3g} ({1 / value:.0f}x)" if value < 1 else f"{value:.3g}"


def _network(key: tuple) -> str:
    suite, hidden, recurrent, dt, d = key
    return ("rec " if recurrent else "") + " x ".join(map(str, hidden))


def markdown(results: list[dict], machine: dict, command: str) -> str:
    """The report as markdown: machine, command, time table, memory table, and one table for
    each eventprop-only suite (recurrent, fixed delays)."""
    points = _points(results)
    lines = [
        f"Machine: {machine['cpu']}, {machine['cores']} cores, {machine['memory_gb']} GB; "
        f"{machine['threads']} threads; torch {machine['torch']}, numba {machine['numba']}, "
        f"Python {machine['python']}; {machine['date']}.",
        "",
        f"Command: `{command}`",
        "",
    ]
    ff = {k: v for k, v in points.items() if k[0] in ("ff", "dcls-paper")}
    if ff:
        lines += [
            "Time per training step (forward, backward, Adam), median, ms; ratio = eventprop / "
            "baseline (in brackets: how many times faster eventprop is); precise/eventprop = "
            "what the precise mode costs over the grid mode.",
            "",
            "| network | dt (ms) | max delay (steps) | eventprop | precise | bptt | dcls | "
            "eventprop/dcls | eventprop/bptt | precise/eventprop | spikes/neuron (eventprop) |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for key, by in ff.items():
            t = {m: _value(by.get(m), "time_median_s") for m in METHOD_ORDER}
            cells = [_cell(by.get(m), None if t[m] is None else 1e3 * t[m], ".0f")
                     + _flag(by.get(m)) for m in METHOD_ORDER]  # fmt: skip
            if t["dcls"] is None and _time_bound_s(by.get("dcls")):
                cells[_DCLS] = f"> {1e3 * _time_bound_s(by['dcls']):.0f} (killed)"
                bound = ratio(t["eventprop"], _time_bound_s(by["dcls"]))
                dcls_ratio = "–" if bound is None else f"< {bound:.2g} (> {1 / bound:.0f}x)"
            else:
                dcls_ratio = _ratio_cell(ratio(t["eventprop"], t["dcls"]))
            rates = _value(by.get("eventprop"), "spikes_per_neuron")
            lines.append(
                f"| {_network(key)} | {key[3]:g} | {key[4]} | " + " | ".join(cells)
                + f" | {dcls_ratio}"
                + f" | {_ratio_cell(ratio(t['eventprop'], t['bptt']))}"
                + f" | {_ratio_cell(ratio(t['precise'], t['eventprop']))}"
                + f" | {', '.join(f'{r:.1f}' for r in rates) if rates else '–'} |"
            )  # fmt: skip
        flags = "".join(_flag(r) for by in ff.values() for r in by.values())
        if "a" in flags:
            lines += ["", "(a) some steps had non-finite gradients (zeroed before Adam)."]
        if "b" in flags:
            lines += ["", "(b) one step only, without warm-up (the first step took > 30 s)."]
        lines += [
            "",
            "Memory, MB: peak RSS of the process / increase over the RSS after imports and "
            "model/data creation; ratios eventprop / dcls.",
            "",
            "| network | dt (ms) | max delay (steps) | eventprop | precise | bptt | dcls | "
            "peak eventprop/dcls | increase eventprop/dcls |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for key, by in ff.items():
            cells = []
            for m in METHOD_ORDER:
                r = by.get(m)
                peak = _value(r, "rss_peak_mb")
                cells.append(_cell(r, peak, ".0f") if peak is None
                             else f"{peak:.0f} / {_increase(r):.0f}")  # fmt: skip
            ep, dc = by.get("eventprop"), by.get("dcls")
            peak_ratio = _ratio_cell(ratio(_value(ep, "rss_peak_mb"), _value(dc, "rss_peak_mb")))
            if _time_bound_s(dc) and dc.get("rss_peak_mb"):  # killed: its peak so far
                cells[_DCLS] = f">= {dc['rss_peak_mb']:.0f} (killed)"
                bound = ratio(_value(ep, "rss_peak_mb"), dc["rss_peak_mb"])
                peak_ratio = "–" if bound is None else f"<= {bound:.2g}"
            lines.append(
                f"| {_network(key)} | {key[3]:g} | {key[4]} | " + " | ".join(cells)
                + f" | {peak_ratio} | {_ratio_cell(ratio(_increase(ep), _increase(dc)))} |"
            )  # fmt: skip
    for suite, title in EVENTPROP_ONLY.items():
        rows = {k: v for k, v in points.items() if k[0] == suite}
        if not rows:
            continue
        lines += [
            "",
            f"{title} (eventprop):",
            "",
            "| network | max delay (steps) | ms per step | peak RSS (MB) | increase (MB) | "
            "spikes/neuron |",
            "|---|---|---|---|---|---|",
        ]
        for key, by in rows.items():
            r = by.get("eventprop")
            t = _value(r, "time_median_s")
            rates = _value(r, "spikes_per_neuron")
            lines.append(
                f"| {_network(key)} | {key[4]} | {_cell(r, None if t is None else 1e3 * t, '.0f')}"
                f" | {_cell(r, _value(r, 'rss_peak_mb'), '.0f')}"
                f" | {_cell(r, _increase(r), '.0f')}"
                f" | {', '.join(f'{x:.1f}' for x in rates) if rates else '–'} |"
            )  # fmt: skip
    reasons = _reasons(results)
    if reasons:
        lines += ["", "Not measured:", "", *reasons]
    return "\n".join(lines) + "\n"


def plot(results: list[dict], path: Path) -> None:
    """Time per step and peak RSS against max delay (1 ms grid), log-log, one line per method
    and network."""
    optional_import("matplotlib", "plot", "the benchmark figure").use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_t, ax_m) = plt.subplots(1, 2, figsize=(11, 4.2))
    lines: dict[tuple, list[tuple[int, float, float]]] = {}
    for r in results:
        c = r["case"]
        if r.get("status") != "ok" or c["suite"] == "dcls-paper":
            continue
        net = ("rec " if c["recurrent"] else "") + "x".join(map(str, c["hidden"]))
        if c.get("delay_init_steps") is not None:
            net += f" delays <= {c['delay_init_steps']}"
        lines.setdefault((c["method"], net, c["suite"]), []).append(
            (c["max_delay_steps"], 1e3 * r["time_median_s"], r["rss_peak_mb"])
        )
    styles = {"eventprop": "o-", "precise": "o:", "bptt": "s--", "dcls": "^-"}
    suite_styles = {"recurrent": "D:", "fixed-delays": "v-."}
    for (method, net, suite), pts in sorted(lines.items()):
        pts.sort()
        d, t, m = zip(*pts)
        style = suite_styles.get(suite, styles.get(method, "x-"))
        ax_t.plot(d, t, style, label=f"{method} {net}")
        ax_m.plot(d, m, style, label=f"{method} {net}")
    for ax, title in ((ax_t, "ms per training step"), (ax_m, "peak RSS (MB)")):
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("max delay (steps of 1 ms)")
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
    if lines:
        ax_t.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_report(results: list[dict], machine: dict, command: str, out: Path) -> dict[str, Path]:
    """Write bench.json, bench.md and bench.png to ``out``; returns their paths."""
    out.mkdir(parents=True, exist_ok=True)
    for r in results:  # ratios at each point, for readers of the JSON
        r.pop("ratios", None)
    for by in _points(results).values():
        ep = by.get("eventprop")
        for m in ("dcls", "bptt", "precise"):
            if m in by and ep is not None:
                ep.setdefault("ratios", {})[f"eventprop/{m}"] = {
                    "time": ratio(_value(ep, "time_median_s"), _value(by[m], "time_median_s")),
                    "rss_peak": ratio(_value(ep, "rss_peak_mb"), _value(by[m], "rss_peak_mb")),
                    "rss_increase": ratio(_increase(ep), _increase(by[m])),
                }
    paths = {"json": out / "bench.json", "markdown": out / "bench.md", "plot": out / "bench.png"}
    doc = {"machine": machine, "command": command, "results": results}
    paths["json"].write_text(json.dumps(doc, indent=1))
    paths["markdown"].write_text(markdown(results, machine, command))
    plot(results, paths["plot"])
    return paths
