"""The inspection calls a dashboard polls, counting and paging without reading everything."""

from __future__ import annotations

import pytest

from spinach import MemoryBroker
from spinach.brokers.base import WorkerInfo
from spinach.job import Job
from spinach.testing import FakeClock


@pytest.fixture(params=["memory", "redis"])
def broker(request):
    clock = FakeClock(1_000_000.0)
    if request.param == "memory":
        return MemoryBroker(clock=clock)
    return request.getfixturevalue("redis_broker_factory")(clock=clock)


def test_scheduled_counts_and_pages(broker):
    now = broker.now()
    jobs = [Job("t", "a" if i % 3 else "b", now + 100 - i, 0, [i]) for i in range(7)]
    broker.enqueue_jobs([*jobs, Job("t", "a", now, 0)])  # the last one is due: queued
    assert broker.scheduled_counts() == {"a": 4, "b": 3}
    assert broker.scheduled_count() == 7
    assert broker.scheduled_page(0, 0) == ([], 7)  # no job read
    page, total = broker.scheduled_page(2, 3)
    assert total == 7
    assert [j.task_args for j in page] == [(4,), (3,), (2,)]  # soonest first
    assert broker.scheduled_page(10, 3) == ([], 7)


def test_dead_letter_count(broker):
    assert broker.dead_letter_count() == 0
    broker.register_worker(WorkerInfo(id=broker.worker_id))
    broker.enqueue_jobs([Job("t", "q", broker.now(), 0, [i]) for i in range(3)])
    for job in broker.get_jobs_from_queue("q", 3):
        broker.dead_letter(job, "unknown task")
    assert broker.dead_letter_count() == 3
