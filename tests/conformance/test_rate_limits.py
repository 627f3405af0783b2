"""Global rate limits (``rate_limit``, GCRA): counted across every worker process; a job
over the limit is deferred to the time one may start, without counting a retry."""

from __future__ import annotations

import pytest

from spinach.brokers.base import Broker
from spinach.task import Task
from spinach.testing import FakeClock

from .support import ids


def _noop() -> None:
    """The function of the rate-limited tasks: brokers never call it."""


def limited(broker: Broker, rate: str | None = "10/s", burst: int = 1) -> None:
    broker.set_concurrency_keys([Task(_noop, "limited", rate_limit=rate, rate_burst=burst)])


def test_the_rate_holds_across_worker_processes(
    broker: Broker, peer: Broker, clock: FakeClock, make_job
) -> None:
    limited(broker)
    jobs = [make_job("limited") for _ in range(4)]
    broker.enqueue_jobs(jobs)

    assert ids(broker.get_jobs_from_queue("q", 10)) == [jobs[0].id]
    assert peer.get_jobs_from_queue("q", 10) == []
    clock.advance(0.1)  # jobs[1] was deferred to this slot; jobs[2] comes first in line
    assert ids(peer.get_jobs_from_queue("q", 10)) == [jobs[2].id]
    assert broker.get_jobs_from_queue("q", 10) == []


def test_a_job_over_the_limit_is_deferred_to_its_slot(
    broker: Broker, clock: FakeClock, start: float, make_job
) -> None:
    limited(broker)
    first, second, third = (make_job("limited") for _ in range(3))
    broker.enqueue_jobs([first, second, third])

    assert ids(broker.get_jobs_from_queue("q", 10)) == [first.id]
    # The first job over the limit waits in the future jobs for its slot, untouched (no
    # retry counted); the next one keeps its place in the queue.
    [deferred] = broker.scheduled_jobs()
    assert (deferred.id, deferred.retries) == (second.id, 0)
    assert broker.queue_lengths() == {"q": 1}
    assert broker.next_future_job_delta() == pytest.approx(0.1)

    clock.advance(0.1)
    assert broker.move_future_jobs() == 1
    assert ids(broker.get_jobs_from_queue("q", 10)) == [third.id]
    clock.advance(0.1)
    broker.move_future_jobs()  # the queue was empty of the task's jobs: nothing deferred
    assert ids(broker.get_jobs_from_queue("q", 10)) == [second.id]


def test_inspection_shows_a_deferred_job_due_at_its_slot(
    broker: Broker, clock: FakeClock, start: float, make_job
) -> None:
    limited(broker, "1/m")
    broker.enqueue_jobs([make_job("limited"), make_job("limited"), make_job("later", delay=30)])
    broker.get_jobs_from_queue("q", 10)

    # Its payload keeps the time it was sent at; what inspection shows is when it is due.
    expected = [("later", start + 30), ("limited", start + 60)]
    scheduled = broker.scheduled_jobs()
    assert [(job.task_name, job.at_timestamp) for job in scheduled] == expected
    page, total = broker.scheduled_page(0, 10)
    assert [(job.task_name, job.at_timestamp) for job in page] == expected and total == 2


def test_the_burst_starts_back_to_back_then_the_rate_applies(
    broker: Broker, clock: FakeClock, make_job
) -> None:
    limited(broker, "60/m", burst=3)
    broker.enqueue_jobs([make_job("limited") for _ in range(6)])

    assert len(broker.get_jobs_from_queue("q", 10)) == 3
    assert broker.get_jobs_from_queue("q", 10) == []
    clock.advance(1.0)
    broker.move_future_jobs()
    assert len(broker.get_jobs_from_queue("q", 10)) == 1
    clock.advance(10.0)  # an idle spell earns the burst back, no more
    broker.move_future_jobs()
    assert len(broker.get_jobs_from_queue("q", 10)) == 2  # the last two jobs


@pytest.mark.one_partition
def test_other_tasks_pass_a_limited_one(broker: Broker, make_job) -> None:
    limited(broker, "1/h")
    jobs = [make_job("limited"), make_job("limited"), make_job("limited"), make_job("free")]
    broker.enqueue_jobs(jobs)

    assert ids(broker.get_jobs_from_queue("q", 10)) == ids([jobs[0], jobs[3]])
    assert broker.queue_lengths() == {"q": 1}
    assert broker.next_future_job_delta() == pytest.approx(3600.0)


def test_a_limit_dropped_from_the_code_stops_applying(broker: Broker, make_job) -> None:
    limited(broker, "1/h")
    jobs = [make_job("limited") for _ in range(3)]
    broker.enqueue_jobs(jobs)
    assert ids(broker.get_jobs_from_queue("q", 10)) == [jobs[0].id]

    limited(broker, None)
    assert ids(broker.get_jobs_from_queue("q", 10)) == [jobs[2].id]  # jobs[1] is deferred
