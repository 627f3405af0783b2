"""Namespaces: brokers on one storage but different namespaces never see each other."""

from __future__ import annotations

from spinach.brokers.base import Broker, WorkerInfo
from spinach.job import Job

from .support import ids


def test_jobs_and_queues_are_per_namespace(
    broker: Broker, other_namespace: Broker, make_job
) -> None:
    mine, theirs = make_job(), make_job()
    broker.enqueue_jobs([mine])
    other_namespace.enqueue_jobs([theirs])

    assert broker.queue_lengths() == {"q": 1}
    assert ids(other_namespace.get_jobs_from_queue("q", 10)) == [theirs.id]
    assert other_namespace.is_queue_empty("q")
    assert not broker.is_queue_empty("q")
    assert ids(broker.get_jobs_from_queue("q", 10)) == [mine.id]


def test_future_and_running_jobs_are_per_namespace(
    broker: Broker, other_namespace: Broker, clock, make_job
) -> None:
    broker.enqueue_jobs([make_job(delay=10), make_job()])
    broker.get_jobs_from_queue("q", 10)
    clock.advance(10)

    assert other_namespace.scheduled_jobs() == []
    assert other_namespace.running_jobs() == {}
    assert other_namespace.move_future_jobs() == 0
    assert other_namespace.next_future_job_delta() is None
    assert broker.move_future_jobs() == 1


def test_the_same_job_id_can_live_in_two_namespaces(
    broker: Broker, other_namespace: Broker, make_job
) -> None:
    job = make_job()
    broker.enqueue_jobs([job])
    other_namespace.enqueue_jobs([job])

    assert ids(broker.get_jobs_from_queue("q", 10)) == [job.id]
    assert ids(other_namespace.get_jobs_from_queue("q", 10)) == [job.id]


def test_periodic_tasks_are_per_namespace(
    broker: Broker, other_namespace: Broker, make_task
) -> None:
    broker.register_periodic_tasks([make_task("mine", every=60)])
    other_namespace.register_periodic_tasks([make_task("theirs", every=60)])

    assert [name for _, name in broker.inspect_periodic_tasks()] == ["mine"]
    assert [name for _, name in other_namespace.inspect_periodic_tasks()] == ["theirs"]
    assert broker.move_future_jobs() == 1
    assert other_namespace.move_future_jobs() == 1
    other_namespace.register_periodic_tasks([make_task("mine")])  # not theirs to remove
    assert [name for _, name in broker.inspect_periodic_tasks()] == ["mine"]


def test_concurrency_limits_and_counters_are_per_namespace(
    broker: Broker, other_namespace: Broker, make_task, make_job
) -> None:
    # The jobs carry the limit of their task, as Task.new_job makes them: a partitioned
    # namespace keeps them on the partition of the task's name, where it is counted.
    def limited() -> Job:
        return make_job("limited", max_concurrency=1)

    broker.set_concurrency_keys([make_task("limited", max_concurrency=1)])
    broker.enqueue_jobs([limited()])
    assert len(broker.get_jobs_from_queue("q", 10)) == 1

    other_namespace.enqueue_jobs([limited(), limited()])
    assert len(other_namespace.get_jobs_from_queue("q", 10)) == 2  # no limit there

    other_namespace.set_concurrency_keys([make_task("limited", max_concurrency=1)])
    other_namespace.enqueue_jobs([limited()])
    assert other_namespace.get_jobs_from_queue("q", 10) == []  # its own two run
    broker.enqueue_jobs([limited()])
    assert broker.get_jobs_from_queue("q", 10) == []  # its own one runs


def test_dead_letters_are_per_namespace(broker: Broker, other_namespace: Broker, make_job) -> None:
    broker.push_raw("q", "{not json")
    broker.get_jobs_from_queue("q", 10)

    assert other_namespace.list_dead_letters() == []
    assert other_namespace.retry_dead_letters() == 0
    assert other_namespace.purge_dead_letters() == 0
    assert len(broker.list_dead_letters()) == 1


def test_workers_are_per_namespace(broker: Broker, other_namespace: Broker, clock) -> None:
    broker.register_worker(WorkerInfo(id=broker.worker_id))
    other_namespace.register_worker(WorkerInfo(id=other_namespace.worker_id))
    clock.advance(1000)
    broker.heartbeat()

    assert [info.id for info in broker.workers()] == [broker.worker_id]
    assert broker.recover_dead_workers(30) == []
    assert [info.id for info in other_namespace.workers()] == [other_namespace.worker_id]


def test_flush_clears_one_namespace_only(broker: Broker, other_namespace: Broker, make_job) -> None:
    broker.enqueue_jobs([make_job()])
    other_namespace.enqueue_jobs([make_job()])

    other_namespace.flush()

    assert broker.queue_lengths() == {"q": 1}
    assert other_namespace.queue_lengths() == {}
