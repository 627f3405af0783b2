"""Inspection: what waits, what runs, what is scheduled; and flush."""

from __future__ import annotations

import pytest

from spinach import job_codec
from spinach.brokers.base import Broker, WorkerInfo
from spinach.job import JobStatus

from .support import ids


def test_queue_lengths_lists_non_empty_queues(broker: Broker, make_job) -> None:
    assert broker.queue_lengths() == {}
    broker.enqueue_jobs([make_job(queue="a"), make_job(queue="a"), make_job(queue="b")])
    broker.enqueue_jobs([make_job(queue="later", delay=10)])

    assert broker.queue_lengths() == {"a": 2, "b": 1}
    broker.get_jobs_from_queue("b", 10)
    assert broker.queue_lengths() == {"a": 2}


def test_is_queue_empty_ignores_future_jobs(broker: Broker, make_job) -> None:
    broker.enqueue_jobs([make_job(delay=10)])

    assert broker.is_queue_empty("q")


def test_scheduled_jobs_soonest_first(broker: Broker, make_job) -> None:
    late, soon = make_job(delay=20, task_args=["late"]), make_job(delay=10)
    broker.enqueue_jobs([late, soon, make_job()])

    scheduled = broker.scheduled_jobs()

    assert ids(scheduled) == ids([soon, late])
    assert [job.status for job in scheduled] == [JobStatus.WAITING] * 2
    assert scheduled[1].to_dict() == late.to_dict()


def test_scheduled_count_counts_future_jobs_only(broker: Broker, clock, make_job) -> None:
    assert broker.scheduled_count() == 0
    broker.enqueue_jobs([make_job(delay=10 + n) for n in range(5)] + [make_job()])

    assert broker.scheduled_count() == 5
    assert broker.scheduled_page(0, 2)[1] == 5
    clock.advance(12)
    broker.move_future_jobs()
    assert broker.scheduled_count() == 2


@pytest.mark.one_partition
def test_running_jobs_by_worker(broker: Broker, peer: Broker, make_job) -> None:
    assert broker.running_jobs() == {}
    mine, theirs = make_job(), make_job()
    broker.enqueue_jobs([mine, theirs])
    broker.get_jobs_from_queue("q", 1)
    peer.get_jobs_from_queue("q", 1)

    running = broker.running_jobs()

    assert {worker: ids(jobs) for worker, jobs in running.items()} == {
        broker.worker_id: [mine.id],
        peer.worker_id: [theirs.id],
    }
    assert running[broker.worker_id][0].status is JobStatus.RUNNING
    assert running[broker.worker_id][0].to_dict() == mine.to_dict()


def test_finished_job_leaves_running(broker: Broker, make_job) -> None:
    broker.enqueue_jobs([make_job()])
    [job] = broker.get_jobs_from_queue("q", 10)

    broker.remove_job_from_running(job)
    broker.remove_job_from_running(job)

    assert broker.running_jobs() == {}
    assert broker.queue_lengths() == {}


def _raw_jobs(broker: Broker, make_job) -> list[str]:
    """Jobs pushed raw (to partition 0 on a partitioned broker), with ids whose homes are
    other partitions of 3 and 4: where they run is not where their id routes them."""
    jobs = [make_job(partition_key=None) for _ in range(3)]
    for job, job_id in zip(jobs, ["b", "g", "i"], strict=True):
        job.id = job_id
        broker.push_raw("q", job_codec.encode(job))
    return ids(jobs)


def test_inspected_running_job_can_be_ended(broker: Broker, make_job) -> None:
    expected = _raw_jobs(broker, make_job)
    fetched = {job.id: job.attempt for job in broker.get_jobs_from_queue("q", 10)}

    inspected = broker.running_jobs()[broker.worker_id]

    assert sorted(ids(inspected)) == sorted(expected)
    assert {job.id: job.attempt for job in inspected} == fetched
    broker.remove_jobs_from_running(inspected[:1])
    for job in inspected[1:]:
        broker.remove_job_from_running(job)
    assert broker.running_jobs() == {}


def test_running_job_without_attempt_can_be_ended(broker: Broker, make_job) -> None:
    _raw_jobs(broker, make_job)
    broker.get_jobs_from_queue("q", 10)
    inspected = broker.running_jobs()[broker.worker_id]
    for job in inspected:
        job.attempt = None

    broker.remove_jobs_from_running(inspected)

    assert broker.running_jobs() == {}


def test_another_workers_running_job_is_left_alone(broker: Broker, peer: Broker, make_job) -> None:
    broker.enqueue_jobs([make_job()])
    [job] = peer.get_jobs_from_queue("q", 10)
    [inspected] = broker.running_jobs()[peer.worker_id]

    broker.remove_job_from_running(inspected)  # a late report: not the caller's job

    assert ids(broker.running_jobs()[peer.worker_id]) == [job.id]


def test_next_future_job_delta(broker: Broker, clock, make_job) -> None:
    assert broker.next_future_job_delta() is None
    broker.enqueue_jobs([make_job()])
    assert broker.next_future_job_delta() is None  # queued jobs are not future ones

    broker.enqueue_jobs([make_job(delay=30), make_job(delay=20)])
    assert broker.next_future_job_delta() == pytest.approx(20)

    clock.advance(25)
    assert broker.next_future_job_delta() == pytest.approx(-5)
    broker.move_future_jobs()
    assert broker.next_future_job_delta() == pytest.approx(5)


def test_next_future_job_delta_counts_periodic_tasks(
    broker: Broker, clock, make_task, make_job
) -> None:
    broker.register_periodic_tasks([make_task("tick", every=60)])
    broker.move_future_jobs()
    broker.enqueue_jobs([make_job(delay=90)])

    assert broker.next_future_job_delta() == pytest.approx(60)
    broker.enqueue_jobs([make_job(delay=0.25)])  # the earlier of the two, to the fraction
    assert broker.next_future_job_delta() == pytest.approx(0.25, abs=1e-6)


def test_flush_deletes_everything_of_the_namespace(
    broker: Broker, peer: Broker, clock, make_task, make_job
) -> None:
    broker.register_worker(WorkerInfo(id=broker.worker_id))
    broker.register_periodic_tasks([make_task("tick", every=60)])
    broker.enqueue_jobs([make_job(), make_job(), make_job(delay=10)])
    broker.push_raw("q", "{not json")
    broker.get_jobs_from_queue("q", 1)
    broker.dead_letter(peer.get_jobs_from_queue("q", 1)[0], "unknown task")

    broker.flush()

    assert broker.queue_lengths() == {}
    assert broker.scheduled_jobs() == []
    assert broker.running_jobs() == {}
    assert broker.list_dead_letters() == []
    assert broker.inspect_periodic_tasks() == []
    assert broker.workers() == []
    assert broker.next_future_job_delta() is None
    assert broker.move_future_jobs() == 0
