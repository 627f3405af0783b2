"""Global rate limits: parsing, the GCRA arithmetic on an injected clock, refusals of bad
input, and the limit held by two worker processes on a real Redis (the broker behaviour
itself is in tests/conformance/test_rate_limits.py)."""

from __future__ import annotations

import bisect
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import redis

from spinach import Batch, Engine, MemoryBroker, Tasks, const
from spinach.rate_limit import RateLimit, gcra, parse_rate
from spinach.testing import FakeClock
from tests.helpers import wait_until
from tests.support.processes import LogReader

ROOT = Path(__file__).resolve().parent.parent
#: The limit of task ``limited`` in tests/cli_apps/rate_app.py, and its list of start times.
RATE, BURST, STARTS = 20, 5, "rate-test/starts"


def _noop() -> None:
    """A task function."""


# -- parsing and bad input ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("rate", "interval"),
    [("100/s", 0.01), ("30/m", 2.0), ("2/h", 1800.0), (" 0.5 / s ", 2.0)],
)
def test_a_rate_is_a_count_per_second_minute_or_hour(rate: str, interval: float) -> None:
    assert parse_rate("t", rate) == RateLimit(pytest.approx(interval))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("options", "cause"),
    [
        ({"rate_limit": "10/parsec"}, "'<count>/<s|m|h>' such as '100/s', not '10/parsec'"),
        ({"rate_limit": "ten/s"}, "not 'ten/s'"),
        ({"rate_limit": 10}, "not 10"),
        ({"rate_limit": "0/s"}, "above zero, not '0/s'"),
        ({"rate_limit": "-5/m"}, "above zero, not '-5/m'"),
        ({"rate_limit": "5/s", "rate_burst": 0}, "rate_burst of task 'send' must be an int"),
        ({"rate_limit": "5/s", "rate_burst": 2.5}, "rate_burst of task 'send' must be an int"),
    ],
)
def test_a_bad_rate_is_refused_at_declaration_naming_the_task(options, cause) -> None:
    tasks = Tasks()
    with pytest.raises(ValueError, match="of task 'send'") as raised:
        tasks.add(_noop, "send", **options)
    assert cause in str(raised.value)
    assert "send" not in tasks


# -- GCRA on an injected clock ------------------------------------------------------------


def starts(limit: RateLimit, arrivals: list[float]) -> list[float]:
    """When each job arriving at these times starts, each waiting for the time GCRA gives."""
    tat, started = None, []
    for at in arrivals:
        allowed, value = gcra(tat, at, limit)
        if not allowed:
            at = value
            allowed, value = gcra(tat, at, limit)
            assert allowed, "the time GCRA gives lets the job start"
        tat = value
        started.append(at)
    return started


def test_gcra_spaces_jobs_by_the_interval_after_the_burst() -> None:
    assert starts(RateLimit(0.5, burst=3), [0.0] * 6) == [0.0, 0.0, 0.0, 0.5, 1.0, 1.5]


def test_gcra_earns_the_burst_back_while_idle_and_no_more() -> None:
    limit = RateLimit(1.0, burst=2)
    assert starts(limit, [0.0, 0.0, 100.0, 100.0, 100.0]) == [0.0, 0.0, 100.0, 100.0, 101.0]


def test_a_job_deferred_by_the_broker_runs_at_its_slot_without_a_retry() -> None:
    clock = FakeClock(start=1_000.0)
    engine = Engine(MemoryBroker(clock=clock), namespace="rates")
    engine.task(_noop, name="limited", rate_limit="2/s")
    engine.broker.set_concurrency_keys(engine.tasks.values())
    first, second = engine.schedule("limited"), engine.schedule("limited")

    broker = engine.broker
    assert [job.id for job in broker.get_jobs_from_queue(const.DEFAULT_QUEUE, 8)] == [first.id]
    assert [job.id for job in broker.scheduled_jobs()] == [second.id]
    clock.advance(0.5)
    broker.move_future_jobs()
    [fetched] = broker.get_jobs_from_queue(const.DEFAULT_QUEUE, 8)
    assert (fetched.id, fetched.retries) == (second.id, 0)


# -- two worker processes on a real Redis -------------------------------------------------


def most_in_a_window(times: list[float], width: float) -> int:
    """The most of ``times`` within any half-open window ``[t, t + width)``."""
    times = sorted(times)
    return max(bisect.bisect_left(times, t + width) - i for i, t in enumerate(times))


def test_most_in_a_window_slides_over_the_times() -> None:
    assert most_in_a_window([0.0, 0.5, 0.99, 1.0, 1.2, 3.0], 1.0) == 4  # [0.5, 1.5)


@pytest.mark.timeout(180)
def test_two_worker_processes_keep_the_global_rate(redis_url: str, redis_broker_factory) -> None:
    jobs = 400
    command = [sys.executable, "-m", "spinach", "worker", "tests.cli_apps.rate_app:spin",
               "--processes", "2", "--threads", "4"]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT), "CLI_REDIS_URL": redis_url}
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)  # fmt: skip
    assert process.stdout is not None
    reader = LogReader(process.stdout, name="rate-worker")
    store = redis.Redis.from_url(redis_url)
    try:
        reader.wait_for(" started: ", count=2)  # both processes run: no start-up in the runs
        client = Engine(redis_broker_factory(namespace="rate"), namespace="rate")
        client.task(_noop, name="limited")  # the client needs the name only
        batch = Batch()
        for _ in range(jobs):
            batch.schedule("limited")
        client.schedule_batch(batch)
        assert wait_until(lambda: store.llen(STARTS) >= jobs, timeout=120), reader.text
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(60)
        reader.join()

    times = [float(raw) for raw in store.lrange(STARTS, 0, -1)]
    store.close()
    assert len(times) == jobs  # none lost, none run twice
    # GCRA starts at most RATE * 1 + BURST - 1 jobs in any second; the recorded starts are
    # a little after the hand-outs, so allow one more, the documented bound.
    most = most_in_a_window(times, 1.0)
    assert most <= RATE + BURST
    elapsed = max(times) - min(times)
    ideal = (jobs - BURST) / RATE
    print(f"{jobs} jobs at {RATE}/s, burst {BURST}: {elapsed:.2f} s from first to last start "
          f"({ideal} ideal), at most {most} starts in one second")  # fmt: skip
    assert elapsed < 2 * ideal  # a loose sanity bound, not a timing assertion
