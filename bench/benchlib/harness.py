"""The run itself, inside the ``ours`` venv: Redis up, every implementation, the report."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from .impls import BY_NAME
from .redis_server import RedisServer
from .report import legend, machine_info, summarize, table, write_json
from .workloads import Bench, ImplResult, Options


def options_from(args: argparse.Namespace) -> Options:
    """The workload sizes of the command line."""
    return Options(
        runs=args.runs,
        jobs=args.jobs,
        slow_jobs=args.slow_jobs,
        batch_size=args.batch_size,
        threads=args.threads,
        latency_jobs=args.latency_jobs,
        timing_jobs=args.timing_jobs,
        timing_ahead=args.timing_ahead,
        timing_spacing=args.timing_spacing,
        roundtrips=args.roundtrips,
        pool_jobs=args.pool_jobs,
        phase_timeout=args.phase_timeout,
        workloads=args.workload_set,
    )


def run(args: argparse.Namespace, versions: dict[str, list[str]]) -> int:
    """Run the selected workloads for the selected implementations; 1 if any failed."""
    options = options_from(args)
    impls = [BY_NAME[name] for name in args.impls]
    stamp = time.strftime("%Y%m%d-%H%M%S")
    log_dir = args.results / "logs" / stamp
    started = time.monotonic()
    command_started = started - (time.time() - _command_start())
    results = {impl.name: ImplResult() for impl in impls}
    with RedisServer() as server:
        machine = machine_info(server.version())
        bench = Bench(options, server, log_dir)
        budget = args.max_minutes * 60
        options.runs = _run_all(bench, impls, results, budget, started, command_started)
    summary = summarize(results)
    print(table(impls, summary, results))
    print()
    print(legend(impls, results, options))
    path = args.results / f"bench-{stamp}{'-quick' if args.quick else ''}.json"
    write_json(path, options, machine, versions, impls, results, time.monotonic() - started)
    print(f"\nRaw results: {path}\nWorker logs: {log_dir}", file=sys.stderr)
    return 1 if any(result.errors for result in results.values()) else 0


def show(path: Path) -> int:
    """Print the table of an earlier run from its JSON."""
    data = json.loads(path.read_text())
    names = [name for name in data["implementations"] if name in BY_NAME]
    impls = [BY_NAME[name] for name in names]
    results = {}
    for name in names:
        saved = data["implementations"][name]
        results[name] = ImplResult(saved["metrics"], saved["notes"], saved["errors"])
        results[name].samples = saved.get("samples", {})
        results[name].cluster_nodes = saved.get("cluster_nodes", [])
    options = Options(**{**data["options"], "workloads": frozenset(data["options"]["workloads"])})
    print(f"{data['date']}, {data['machine']['cores']} cores, {data['machine']['cpu_model']}")
    print(table(impls, summarize(results), results))
    print()
    print(legend(impls, results, options))
    return 0


def _run_all(
    bench: Bench,
    impls: list,
    results: dict[str, ImplResult],
    budget: float,
    started: float,
    command_started: float,
) -> int:
    """Run after run, every implementation in each; the number of runs done.

    Runs stop early, with a warning, when the next one would end past ``budget`` seconds
    (0: no limit) from the command's start (venv installs included), at the pace of the
    runs so far.
    """
    runs = bench.options.runs
    for rep in range(1, runs + 1):
        for impl in impls:
            bench.run_once(impl, results[impl.name], rep)
        now = time.monotonic()
        per_run, total = (now - started) / rep, now - command_started
        projected = total + per_run * (runs - rep)
        _log(f"run {rep}/{runs} done at {total / 60:.1f} min; all ~{projected / 60:.1f} min")
        if rep < runs and budget and total + per_run > budget:
            _log(f"WARNING: stopping after {rep} run(s): another would end past the time budget")
            return rep
    return runs


def _command_start() -> float:
    """When ``bench/run.py`` started (Unix time), venv installs included; now if unknown."""
    return float(os.environ.get("BENCH_STARTED_AT") or time.time())


def _log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)
