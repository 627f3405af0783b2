"""Priority bands (``spinach.priority``): a queue's bands are fetched right after it, most
urgent first; bands named in the fetch keep the order given (the Celery facade's)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from spinach.brokers.base import Broker
from spinach.priority import band
from spinach.task import Task

from .support import ids


@pytest.mark.one_partition
def test_a_queue_s_bands_follow_it_in_priority_order(broker: Broker, make_job) -> None:
    low, mid, plain = make_job(queue=band("q", 9)), make_job(queue=band("q", 4)), make_job()
    other = make_job(queue="r")
    broker.enqueue_jobs([low, mid, plain, other])

    assert not broker.is_queue_empty("q")
    assert ids(broker.get_jobs_from_queue(["q", "r"], 10)) == ids([plain, mid, low, other])
    assert broker.is_queue_empty("q")


@pytest.mark.one_partition
def test_bands_named_in_the_fetch_keep_their_place(broker: Broker, make_job) -> None:
    a3, b0 = make_job(queue=band("a", 3)), make_job(queue="b")
    broker.enqueue_jobs([a3, b0])

    named = ["a", "b", band("a", 3), band("b", 3)]  # step-major, as the facade's workers
    assert ids(broker.get_jobs_from_queue(named, 10)) == ids([b0, a3])


def test_a_periodic_task_fires_into_its_priority_band(broker: Broker, make_job) -> None:
    periodic = Task(lambda: None, "tick", "q", 0, timedelta(seconds=10), priority=5)
    broker.register_periodic_tasks([periodic])
    # A partitioned namespace keeps a periodic task on the partition of its name: the
    # plain job goes there too, as the order holds within a partition.
    broker.enqueue_jobs([plain := make_job(partition_key="tick")])
    broker.move_future_jobs()

    [first, second] = broker.get_jobs_from_queue("q", 10)
    assert first.id == plain.id
    assert (second.task_name, second.queue) == ("tick", band("q", 5))
