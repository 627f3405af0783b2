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
