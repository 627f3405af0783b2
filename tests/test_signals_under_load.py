"""Stop signals are never lost, even on a machine whose CPUs are all busy.

Each scenario starts real worker processes (``spinach worker``, ``spinach worker
--processes 2``, ``spinach-compat -A app worker``) of tiny apps, several at a time, while
busy processes load every CPU, and signals them at the moments races hide in: a double
SIGINT while a job runs (exit 130 at once, not after the job, which holds its thread for
longer than ``EXIT_BOUND``), a SIGTERM just after the start or while the app is still being
loaded (a graceful exit 0). Every run must exit as documented within ``EXIT_BOUND``
seconds. The last scenarios send the signal to another thread than the main one, as the
kernel may: the old handlers failed those at every run.

``SPINACH_SIGNAL_RUNS`` sets the runs of each scenario under load (default
``DEFAULT_RUNS``; the supervisor's, which starts three processes a run, a quarter of it):
``SPINACH_SIGNAL_RUNS=50`` for a thorough check.
"""

from __future__ import annotations

import ctypes
import os
import random
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.processes import LogReader

ROOT = Path(__file__).resolve().parent.parent
APPS = Path(__file__).resolve().parent / "cli_apps"

#: Runs of each scenario under load by default; more finds rarer races, each run costs a
#: process start.
DEFAULT_RUNS = 12
RUNS = int(os.environ.get("SPINACH_SIGNAL_RUNS", DEFAULT_RUNS))
#: Runs of each scenario signalling a thread: it fails at every run without the fix.
THREAD_RUNS = 2
#: Processes run at once: more loads the machine harder and finishes sooner.
PARALLEL = 4
#: Busy processes loading the CPUs while the scenarios run.
BURNERS = 3
#: Seconds a signalled worker gets to exit; generous, as a passing run takes well under one.
EXIT_BOUND = 30.0
#: Longest random delay, in seconds, before the signal of a startup-window run: it spreads
#: the signals over the loading of the app and the start of the workers.
STARTUP_JITTER = 0.05

pytestmark = pytest.mark.timeout(120 + RUNS * 6)


#: A busy loop that ends when the test process does, even if it never tore the fixture down.
BURN = "import os, sys\nwhile os.getppid() == int(sys.argv[1]): pass"


@pytest.fixture(scope="module")
def cpu_load() -> Iterator[None]:
    """Busy processes keeping the CPUs loaded for the scenarios of this module."""
    burners = [
        subprocess.Popen([sys.executable, "-c", BURN, str(os.getpid())]) for _ in range(BURNERS)
    ]
    yield
    for burner in burners:
        burner.kill()
        burner.wait()


@dataclass
class Outcome:
    """How one run ended: its exit status (None if it outlived ``EXIT_BOUND``) and output."""

    status: int | None
    output: str


def run_process(command: list[str], env: dict[str, str], act: Callable[[subprocess.Popen,
                LogReader], None]) -> Outcome:  # fmt: skip
    """Start ``command``, let ``act`` signal it, and wait for its exit (killed after
    ``EXIT_BOUND`` seconds)."""
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **env}
    process = subprocess.Popen(
        command, cwd=APPS, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True,
    )  # fmt: skip
    assert process.stdout is not None
    reader = LogReader(process.stdout, name=f"log-{process.pid}")
    status: int | None
    try:
        act(process, reader)
        status = process.wait(EXIT_BOUND)
    except subprocess.TimeoutExpired:
        status = None
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()
        process.stdout.close()
        reader.join()
    return Outcome(status, reader.text)


def run_many(runs: int, one_run: Callable[[], Outcome], expected: int) -> None:
    """``runs`` runs, ``PARALLEL`` at a time; fail listing those not exiting ``expected``."""
    with ThreadPoolExecutor(PARALLEL, thread_name_prefix="signal-run") as pool:
        outcomes = list(pool.map(lambda _: one_run(), range(runs)))
    wrong = [o for o in outcomes if o.status != expected]
    described = "\n\n".join(f"status {o.status}:\n{o.output[-2500:]}" for o in wrong[:3])
    assert not wrong, f"{len(wrong)} of {runs} runs did not exit {expected}:\n{described}"


def when(reader: LogReader, line: str, count: int = 1) -> None:
    """Wait for ``count`` lines containing ``line`` in the output; fail if they never come."""
    reader.wait_for(re.escape(line), count, timeout=EXIT_BOUND)


Send = Callable[[subprocess.Popen, signal.Signals], None]
Act = Callable[[subprocess.Popen, LogReader], None]


def to_process(process: subprocess.Popen, sig: signal.Signals) -> None:
    process.send_signal(sig)


_tgkill = getattr(ctypes.CDLL(None, use_errno=True), "tgkill", None)
needs_tgkill = pytest.mark.skipif(
    not sys.platform.startswith("linux") or _tgkill is None,
    reason="sending a signal to one thread of another process needs Linux's tgkill",
)


def to_a_thread(process: subprocess.Popen, sig: signal.Signals) -> None:
    """``sig`` to a thread of ``process`` other than its main one, as the kernel may deliver
    a process's signal to any thread (to another one when the main one has one pending)."""
    tids = [int(tid) for tid in os.listdir(f"/proc/{process.pid}/task")]
    others = [tid for tid in tids if tid != process.pid]
    assert others, f"process {process.pid} runs no thread besides its main one"
    if _tgkill(process.pid, max(others), int(sig)) != 0:
        raise OSError(ctypes.get_errno(), f"tgkill {process.pid}/{max(others)} failed")


def twice(
    sig: signal.Signals, after: str, noted: str, send: Send = to_process, count: int = 1
) -> Act:
    """Send ``sig`` once ``after`` was printed ``count`` times, and again (by ``send``) once
    ``noted`` was: a signal sent before a process took delivery of the first would merge
    with it in the kernel."""

    def act(process: subprocess.Popen, reader: LogReader) -> None:
        when(reader, after, count)
        process.send_signal(sig)
        when(reader, noted, count)
        send(process, sig)

    return act


def once(sig: signal.Signals, after: str, jitter: float = 0.0, send: Send = to_process) -> Act:
    """Send ``sig`` once ``after`` was printed, after a random delay up to ``jitter``."""

    def act(process: subprocess.Popen, reader: LogReader) -> None:
        when(reader, after)
        if jitter:
            time.sleep(random.uniform(0, jitter))  # spreads the signals, waits for nothing
        send(process, sig)

    return act


SPINACH = [sys.executable, "-m", "spinach", "worker", "quick", "--threads", "2"]
FACADE = [sys.executable, "-m", "spinach_compat", "-A", "tests.compat.signals_proj", "worker",
          "-P", "threads", "--loglevel", "info", "--quiet"]  # fmt: skip
GRACEFUL = "stopping gracefully"


# -- the native worker ------------------------------------------------------------------------


def test_a_double_sigint_exits_130_without_waiting_for_the_running_job(cpu_load):
    run_many(
        RUNS,
        lambda: run_process(
            SPINACH, {"QUICK_HOLD": "1"}, twice(signal.SIGINT, "holding a worker", GRACEFUL)
        ),
        expected=130,
    )


def test_a_sigterm_just_after_the_start_stops_gracefully(cpu_load):
    run_many(RUNS, lambda: run_process(SPINACH, {}, once(signal.SIGTERM, " started: ")), 0)


def test_a_sigterm_while_the_worker_starts_stops_gracefully(cpu_load):
    """The signals are caught from before the app loads: no run dies of the signal."""
    act = once(signal.SIGTERM, "loading the quick app", jitter=STARTUP_JITTER)
    run_many(RUNS, lambda: run_process(SPINACH, {}, act), expected=0)


# -- the supervisor ---------------------------------------------------------------------------


def test_a_double_sigint_to_the_supervisor_exits_130(cpu_load):
    command = [*SPINACH, "--processes", "2"]
    act = twice(signal.SIGINT, "holding a worker", GRACEFUL, count=2)  # both children's lines
    run_many(max(1, RUNS // 4), lambda: run_process(command, {"QUICK_HOLD": "1"}, act), 130)


# -- the facade's worker ----------------------------------------------------------------------


def test_a_double_sigint_to_the_facade_worker_exits_130(cpu_load):
    act = twice(signal.SIGINT, "holding a worker", "warm shutdown")
    run_many(RUNS, lambda: run_process(FACADE, {"SIGNALS_PROJ_HOLD": "1"}, act), expected=130)


def test_a_sigterm_just_after_the_facade_worker_is_ready_stops_it_warmly(cpu_load):
    run_many(RUNS, lambda: run_process(FACADE, {}, once(signal.SIGTERM, " ready.")), expected=0)


# -- signals the kernel delivers to another thread than the main one ---------------------------
# A main thread in an untimed wait on a lock is not interrupted by a signal another thread
# takes: it must wait on something that signal wakes (the wakeup fd).


@needs_tgkill
def test_a_sigterm_taken_by_a_worker_thread_stops_gracefully():
    act = once(signal.SIGTERM, " started: ", send=to_a_thread)
    run_many(THREAD_RUNS, lambda: run_process(SPINACH, {}, act), expected=0)


@needs_tgkill
def test_a_second_sigint_taken_by_a_worker_thread_exits_130():
    act = twice(signal.SIGINT, "holding a worker", GRACEFUL, send=to_a_thread)
    run_many(THREAD_RUNS, lambda: run_process(SPINACH, {"QUICK_HOLD": "1"}, act), expected=130)


@needs_tgkill
def test_a_sigterm_taken_by_a_facade_worker_thread_stops_it_warmly():
    act = once(signal.SIGTERM, " ready.", send=to_a_thread)
    run_many(THREAD_RUNS, lambda: run_process(FACADE, {}, act), expected=0)


@needs_tgkill
def test_a_second_sigint_taken_by_a_facade_worker_thread_exits_130():
    act = twice(signal.SIGINT, "holding a worker", "warm shutdown", send=to_a_thread)
    run_many(THREAD_RUNS, lambda: run_process(FACADE, {"SIGNALS_PROJ_HOLD": "1"}, act), 130)
