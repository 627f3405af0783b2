#!/usr/bin/env python3
"""Benchmark ours against upstream Spinach, Celery, Dramatiq, Huey and RQ (bench/README.md).

    python3 bench/run.py            # the full run (about 25 minutes on 2 cores)
    python3 bench/run.py --quick    # tiny sizes, one run: a smoke test
    python3 bench/run.py --quick --only ours,celery --workloads 1,3,latency

It first installs each implementation into its own venv under ``bench/.peers/`` (once),
then runs itself again with the ``ours`` venv's Python (which has redis-py) to start a
throwaway redis-server and run the workloads, each in subprocesses of the implementation's
own venv. Prints one table and writes the raw results to ``bench/results/*.json``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

from benchlib import DEFAULT_WORKLOADS, venvs  # noqa: E402
from benchlib import WORKLOADS as WORKLOAD_NAMES  # noqa: E402
from benchlib.impls import BY_NAME, IMPLS  # noqa: E402

#: Sizes of ``--quick``: enough to exercise every code path in a minute or two.
QUICK = {
    "runs": 1, "jobs": 500, "slow_jobs": 200, "batch_size": 100, "latency_jobs": 20,
    "timing_jobs": 10, "timing_ahead": 1.0, "roundtrips": 20, "pool_jobs": 200,
}  # fmt: skip

#: Set in the re-executed process, so that it does not re-execute itself again.
REEXEC_VARIABLE = "BENCH_IN_OURS_VENV"

#: When the command started (Unix time), handed to the re-executed process: the time
#: budget counts the venv installs too.
STARTED_VARIABLE = "BENCH_STARTED_AT"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line; sizes default to the full run."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, one run (smoke test)")
    _add_sizes(parser)
    parser.add_argument(
        "--only", action="append", metavar="NAMES",
        help=f"implementations, comma-separated or repeated: {', '.join(BY_NAME)} (all)",
    )  # fmt: skip
    parser.add_argument(
        "--workloads", metavar="LIST",
        help="workloads by number or name, comma-separated: "
        + ", ".join(f"{n}={name}" for n, name in WORKLOAD_NAMES.items()) + " (all but 10)",
    )  # fmt: skip
    parser.add_argument("--python", default=sys.executable, help="Python building the venvs")
    parser.add_argument("--reinstall", action="store_true", help="rebuild the venvs")
    parser.add_argument("--results", type=Path, default=BENCH / "results", help="output dir")
    parser.add_argument("--show", type=Path, metavar="JSON", help="print the table of a saved run")
    args = parser.parse_args(argv)
    if args.quick:
        for name, value in QUICK.items():
            if getattr(args, name) == parser.get_default(name):
                setattr(args, name, value)
    args.impls = _selected_impls(parser, args.only)
    args.workload_set = _selected_workloads(parser, args.workloads)
    return args


def _add_sizes(parser: argparse.ArgumentParser) -> None:
    """The size and time options, with the full run's defaults."""
    size = parser.add_argument
    size("--runs", type=int, default=3, help="repetitions; the table shows medians (3)")
    size("--jobs", type=int, default=20_000, help="jobs of workloads 1-3, 7, 8 (20000)")
    size(
        "--slow-jobs", type=int, default=1_000,
        help="jobs of workloads 3, 7, 8 for workers running one job at a time per process "
        "(RQ, Celery prefork) (1000)",
    )  # fmt: skip
    size("--batch-size", type=int, default=1_000, help="jobs per batch, workload 2 (1000)")
    size("--threads", type=int, default=8, help="threads per worker process (8)")
    size("--latency-jobs", type=int, default=200, help="jobs of workload 4 (200)")
    size("--timing-jobs", type=int, default=100, help="jobs of workload 5 (100)")
    size("--timing-ahead", type=float, default=2.0, help="seconds ahead, workload 5 (2)")
    size("--timing-spacing", type=float, default=0.01, help="seconds between due times (0.01)")
    size("--roundtrips", type=int, default=200, help="delay().get() calls, workload 6 (200)")
    size("--pool-jobs", type=int, default=1_000, help="jobs per figure of workload 9 (1000)")
    size("--phase-timeout", type=float, default=600.0, help="seconds per phase before failing")
    size(
        "--max-minutes", type=float, default=30.0,
        help="stop after the run (repetition) that would end past this budget; 0: no limit (30)",
    )  # fmt: skip


def _selected_impls(parser: argparse.ArgumentParser, only: list[str] | None) -> list[str]:
    if not only:
        return [impl.name for impl in IMPLS if impl.by_default]
    names = [name.strip() for item in only for name in item.split(",") if name.strip()]
    unknown = [name for name in names if name not in BY_NAME]
    if unknown:
        parser.error(f"unknown implementation(s) {unknown}; known: {', '.join(BY_NAME)}")
    return [impl.name for impl in IMPLS if impl.name in names]  # in table order


def _selected_workloads(parser: argparse.ArgumentParser, text: str | None) -> frozenset[int]:
    if not text:
        return DEFAULT_WORKLOADS
    by_name = {name: number for number, name in WORKLOAD_NAMES.items()}
    chosen = set()
    for item in (part.strip() for part in text.split(",") if part.strip()):
        number = int(item) if item.isdigit() else by_name.get(item)
        if number not in WORKLOAD_NAMES:
            parser.error(f"unknown workload {item!r}")
        chosen.add(number)
    return frozenset(chosen)


def install(args: argparse.Namespace) -> dict[str, list[str]]:
    """Make sure ``ours`` and the venvs of the selected implementations exist; pip freezes."""
    needed = {"ours"} | {BY_NAME[name].venv.name for name in args.impls}
    return {
        name: venvs.ensure(venvs.VENVS[name], args.python, args.reinstall)["freeze"]
        for name in sorted(needed)
    }


def main() -> int:
    """Install, re-execute in the ``ours`` venv, run, report."""
    args = parse_args()
    os.environ.setdefault(STARTED_VARIABLE, repr(time.time()))
    if os.environ.get(REEXEC_VARIABLE) != "1":
        if not args.show:
            install(args)
        python = str(venvs.VENVS["ours"].python)
        os.environ[REEXEC_VARIABLE] = "1"
        argv = [python, __file__, *sys.argv[1:], "--python", args.python]
        os.execv(python, argv)
    from benchlib.harness import run, show

    if args.show:
        return show(args.show)

    started = time.monotonic()
    status = run(args, install(args))
    print(f"[bench] total {(time.monotonic() - started) / 60:.1f} min", file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
