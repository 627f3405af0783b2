"""The table printed at the end of a run, and the raw results written as JSON."""

from __future__ import annotations

import json
import os
import platform
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from .impls import Impl
from .stats import median
from .workloads import ImplResult, Options

#: Rows of the table: label, metric, unit, whether higher is better.
ROWS: list[tuple[str, str, str, bool]] = [
    ("1 enqueue one at a time", "enqueue_single", "jobs/s", True),
    ("1 Redis CPU per job", "redis_us_enqueue_single", "us", False),
    ("2 enqueue in batches", "enqueue_batch", "jobs/s", True),
    ("2 Redis CPU per job", "redis_us_enqueue_batch", "us", False),
    ("3 execute, 1 process", "exec", "jobs/s", True),
    ("3 Redis CPU per job", "redis_us_exec", "us", False),
    ("3 jobs/s per Redis core", "jobs_per_redis_core", "jobs/s", True),
    ("4 latency p50", "latency_p50", "ms", False),
    ("4 latency p99", "latency_p99", "ms", False),
    ("5 lateness p50", "timing_p50", "ms", False),
    ("5 lateness max", "timing_max", "ms", False),
    ("5 started early", "timing_early", "jobs", False),
    ("6 delay().get() p50", "roundtrip_p50", "ms", False),
    ("6 delay().get() p99", "roundtrip_p99", "ms", False),
    ("7 peak RSS, workload 3", "rss_peak", "MiB", False),
    ("8 execute, 1 process", "exec_p1", "jobs/s", True),
    ("8 Redis CPU per job, 1 proc", "redis_us_exec_p1", "us", False),
    ("8 execute, 2 processes", "exec_p2", "jobs/s", True),
    ("8 Redis CPU per job, 2 procs", "redis_us_exec_p2", "us", False),
    ("9 CPU jobs, -P prefork -c 2", "pool_cpu_prefork", "jobs/s", True),
    ("9 10 ms I/O jobs, prefork -c 2", "pool_io_prefork", "jobs/s", True),
    ("9 10 ms I/O jobs, gevent -c 100", "pool_io_gevent", "jobs/s", True),
    ("10 cluster: execute", "cluster_exec", "jobs/s", True),
    *(
        row
        for n in (1, 2, 3)
        for row in (
            (f"10 node {n} CPU per job", f"cluster_node{n}_us", "us", False),
            (f"10 node {n} commands per job", f"cluster_node{n}_calls", "calls", False),
        )
    ),
]

#: Metrics that count jobs: no ratio, no decimals.
COUNT_METRICS = frozenset({"timing_early"})

LABEL_WIDTH = 34
CELL_WIDTH = 15


def machine_info(redis_version: str) -> dict[str, Any]:
    """Cores, CPU model, Python, Redis and kernel of this machine."""
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cores": os.cpu_count(),
        "cpu_model": model,
        "python": platform.python_version(),
        "redis": redis_version,
        "kernel": platform.release(),
        "load_average_at_start": os.getloadavg(),
    }


def summarize(results: dict[str, ImplResult]) -> dict[str, dict[str, float]]:
    """The median over the repetitions of each metric of each implementation, and the
    figures derived from the medians."""
    summary = {
        name: {metric: median(values) for metric, values in result.metrics.items() if values}
        for name, result in results.items()
    }
    for medians in summary.values():
        if medians.get("redis_us_exec", 0) > 0:
            medians["jobs_per_redis_core"] = 1e6 / medians["redis_us_exec"]
    return summary


def _number(value: float) -> str:
    """A compact figure: 12.3k, 845, 12.3, 0.42."""
    if abs(value) >= 10_000:
        return f"{value / 1000:.1f}k"
    if abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def _ratio(ours: float, theirs: float) -> str:
    """Ours / theirs, to two significant digits: 19x, 1.5x, 1.0x, 0.89x, 0.0013x."""
    ratio = ours / theirs
    if ratio >= 10:
        return f"{ratio:.0f}x"
    return f"{ratio:.1f}x" if ratio >= 1 else f"{ratio:.2g}x"


def _cell(value: float | None, reference: float | None, metric: str, note: str | None) -> str:
    """A peer's figure with ours / theirs beside it (not for counts, nor negative times)."""
    if value is None:
        return "n/a" if note else "-"
    text = f"{value:.0f}" if metric in COUNT_METRICS else _number(value)
    if reference is not None and value > 0 and reference > 0 and metric not in COUNT_METRICS:
        text += " " + _ratio(reference, value)
    return text


def table(impls: Sequence[Impl], summary: dict[str, dict[str, float]],
          results: dict[str, ImplResult]) -> str:  # fmt: skip
    """Rows = workloads, columns = implementations; peers show ours / theirs."""
    header = "workload (unit)".ljust(LABEL_WIDTH) + "".join(
        impl.title.rjust(CELL_WIDTH) for impl in impls
    )
    lines = [header, "-" * len(header)]
    for label, metric, unit, _ in ROWS:
        if not any(metric in summary.get(i.name, {}) or metric in results[i.name].notes
                   for i in impls):  # fmt: skip
            continue
        reference = _reference(summary, metric)
        cells = []
        for impl in impls:
            value = summary.get(impl.name, {}).get(metric)
            note = results[impl.name].notes.get(metric)
            ref = None if impl.ours else reference
            cells.append(_cell(value, ref, metric, note).rjust(CELL_WIDTH))
        lines.append(f"{label} ({unit})".ljust(LABEL_WIDTH) + "".join(cells))
    return "\n".join(lines)


def _reference(summary: dict[str, dict[str, float]], metric: str) -> float | None:
    """Our figure for ``metric``: the native API's, else the facade's."""
    for name in ("ours", "ours-facade"):
        if metric in summary.get(name, {}):
            return summary[name][metric]
    return None


def legend(impls: Sequence[Impl], results: dict[str, ImplResult], options: Options) -> str:
    """What the figures mean, the notes of the implementations and the errors."""
    lines = [
        f"Medians of {options.runs} run(s); {options.jobs} jobs for workloads 1-3, 7, 8 "
        f"({options.slow_jobs} for 3, 7, 8 of workers running one job at a time per process: "
        f"celery-pf, rq, rq-simple); {options.threads} threads per worker process; "
        f"{options.pool_jobs} jobs per figure of workload 9.",
        "Peers show their figure then ours / theirs (ours = native API, else the facade): "
        "above 1 is better for us on jobs/s, below 1 is better for us on ms and MiB.",
    ]
    lines += [note for impl in impls for note in impl.notes]
    lines += _grouped_notes(impls, results)
    lines += _cluster_lines(impls, results, options.jobs)
    for impl in impls:
        for error in results[impl.name].errors:
            lines.append(f"ERROR {impl.name} {error}")
    return "\n".join(lines)


def _grouped_notes(impls: Sequence[Impl], results: dict[str, ImplResult]) -> list[str]:
    """One line per reason a figure is n/a: the workloads and implementations it hits."""
    numbers = {metric: label.split()[0] for label, metric, _, _ in ROWS}
    grouped: dict[str, tuple[set[str], list[str]]] = {}
    for impl in impls:
        for metric, note in results[impl.name].notes.items():
            workloads, names = grouped.setdefault(note, (set(), []))
            workloads.add(numbers.get(metric, metric))
            if impl.name not in names:
                names.append(impl.name)
    return [
        f"n/a in workload {', '.join(sorted(workloads))} for {', '.join(names)}: {note}"
        for note, (workloads, names) in grouped.items()
    ]


#: Commands per node shown under the table for workload 10 (the most called first).
CLUSTER_TOP_COMMANDS = 8


def _cluster_lines(impls: Sequence[Impl], results: dict[str, ImplResult], jobs: int) -> list[str]:
    """Workload 10: the commands each node served per job, in the last run."""
    lines = []
    for impl in impls:
        runs = results[impl.name].cluster_nodes
        if not runs:
            continue
        where = (
            f"the namespace's {impl.cluster_partitions} partitions spread by their hash tags"
            if impl.cluster_partitions > 1
            else "node 1 holds the namespace's slot"
        )
        lines.append(
            f"10 {impl.name}: nodes by CPU ({where}); "
            f"commands per job of the last run (INFO commandstats: the scripts' own calls "
            f"count too):"
        )
        for rank, node in enumerate(runs[-1], 1):
            top = sorted(node["calls"].items(), key=lambda item: -item[1])[:CLUSTER_TOP_COMMANDS]
            calls = ", ".join(f"{name} {count / jobs:.2f}" for name, count in top) or "none"
            lines.append(f"   node {rank} (port {node['port']}): {calls}")
    return lines


def write_json(
    path: Path, options: Options, machine: dict[str, Any], versions: dict[str, list[str]],
    impls: Sequence[Impl], results: dict[str, ImplResult], seconds: float,
) -> None:  # fmt: skip
    """Write the raw results: every repetition of every metric, with the context."""
    data = {
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": {**machine, "load_average_at_end": os.getloadavg()},
        "options": {**asdict(options), "workloads": sorted(options.workloads)},
        "duration_seconds": round(seconds, 1),
        "versions": versions,
        "implementations": {
            impl.name: {
                "title": impl.title,
                "venv": impl.venv.name,
                "about": list(impl.notes),
                **asdict(results[impl.name]),
            }
            for impl in impls
        },
        "medians": summarize(results),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n")
