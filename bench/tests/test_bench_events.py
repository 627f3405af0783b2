"""The events columns: ``ours-facade-events`` runs its worker with a receiver listening (as
Flower in production), which hears every message; ``ours-facade-events-unheard`` without.

On real servers, with the test's own interpreter as the columns' venv (see
``test_bench_columns.py``); a few seconds each.
"""

from __future__ import annotations

import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(BENCH / "tests"))

from benchlib.workloads import ImplResult  # noqa: E402
from test_bench_columns import bench, here, server  # noqa: E402, F401

sys.path.insert(0, str(BENCH / "impls"))
from events_listener import HEARD_KEY  # noqa: E402


def test_the_events_column_runs_with_a_listener_that_hears_the_events(server, tmp_path):  # noqa: F811
    """Workload 3 with events: the listener subscribed before the worker's first event and
    read its worker events and task event batches (more than a heartbeat's few)."""
    result = ImplResult()
    bench(server, tmp_path, {3}, jobs=2000).run_once(here("ours-facade-events"), result, 1)
    assert result.errors == []
    assert all(value > 0 for value in result.metrics["exec"])
    heard = int(server.client.get(HEARD_KEY) or 0)
    assert heard >= 2  # worker-online and a task.multi batch at least


def test_the_unheard_column_runs_without_a_listener(server, tmp_path):  # noqa: F811
    result = ImplResult()
    bench(server, tmp_path, {3}, jobs=300).run_once(here("ours-facade-events-unheard"), result, 1)
    assert result.errors == []
    assert server.client.get(HEARD_KEY) is None


def test_events_cost_reads_the_kernel_figures_of_named_threads_and_of_a_process():
    """``events_cost.py``'s job-thread figures: system CPU seconds and context switches of
    the threads it names (a thread that blocked switched voluntarily), and the CPU seconds
    of another process (the listener's)."""
    import os
    import threading
    import time

    import events_cost

    done = threading.Event()
    thread = threading.Thread(target=done.wait, args=(30,), name="probe-worker-1")
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while True:  # until it blocked in ``done.wait`` (a futex wait: a voluntary switch)
            system, (voluntary, involuntary) = events_cost._thread_kernel(
                lambda name: "-worker-" in name
            )
            if voluntary >= 1 or time.monotonic() > deadline:
                break
            threading.Event().wait(0.01)
        assert system >= 0 and voluntary >= 1 and involuntary >= 0
        assert events_cost._thread_kernel(lambda name: False) == (0.0, (0, 0))
    finally:
        done.set()
        thread.join()
    assert events_cost._process_cpu(os.getpid()) > 0.0
    assert events_cost._process_cpu(2**22 + 1) == 0.0  # above pid_max: no such process
