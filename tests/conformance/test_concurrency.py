"""``max_concurrency``: a task's running jobs are counted across every worker process."""

from __future__ import annotations

import pytest

from spinach.brokers.base import Broker, WorkerInfo

from .support import THRESHOLD, ids


def limited(broker: Broker, make_task, limit: int = 1) -> None:
    broker.set_concurrency_keys([make_task("limited", max_concurrency=limit)])


def test_limit_holds_across_worker_processes(broker: Broker, peer: Broker, make_task, make_job):
    limited(broker, make_task)
    first, second = make_job("limited"), make_job("limited")
    broker.enqueue_jobs([first, second])

    assert ids(broker.get_jobs_from_queue("q", 10)) == [first.id]
    assert peer.get_jobs_from_queue("q", 10) == []
    assert broker.get_jobs_from_queue("q", 10) == []
    assert broker.queue_lengths() == {"q": 1}

    broker.remove_job_from_running(first)
    assert ids(peer.get_jobs_from_queue("q", 10)) == [second.id]


def test_limit_above_one(broker: Broker, peer: Broker, make_task, make_job) -> None:
    limited(broker, make_task, limit=2)
    jobs = [make_job("limited") for _ in range(3)]
    broker.enqueue_jobs(jobs)

    assert ids(broker.get_jobs_from_queue("q", 1)) == ids(jobs[:1])
    assert ids(peer.get_jobs_from_queue("q", 10)) == ids(jobs[1:2])
    assert broker.get_jobs_from_queue("q", 10) == []


def test_a_limit_holds_within_one_fetch(broker: Broker, make_task, make_job) -> None:
    limited(broker, make_task, limit=2)
    jobs = [make_job("limited") for _ in range(4)]
    broker.enqueue_jobs(jobs)

    assert len(broker.get_jobs_from_queue("q", 10)) == 2
    assert broker.get_jobs_from_queue("q", 10) == []
    assert sum(broker.queue_lengths().values()) == 2


@pytest.mark.one_partition
def test_a_job_at_its_limit_keeps_its_place(broker: Broker, make_task, make_job) -> None:
    limited(broker, make_task)
    l1, a, l2, b, l3 = (make_job(name) for name in ["limited", "a", "limited", "b", "limited"])
    broker.enqueue_jobs([l1, a, l2, b, l3])

    assert ids(broker.get_jobs_from_queue("q", 10)) == ids([l1, a, b])
    broker.enqueue_jobs([c := make_job("c")])
    broker.remove_job_from_running(l1)

    assert ids(broker.get_jobs_from_queue("q", 10)) == ids([l2, c])
    broker.remove_job_from_running(l2)
    assert ids(broker.get_jobs_from_queue("q", 10)) == [l3.id]


@pytest.mark.one_partition
def test_tasks_without_a_limit_are_not_limited(broker: Broker, make_task, make_job) -> None:
    limited(broker, make_task)
    broker.set_concurrency_keys([make_task("free", max_concurrency=None)])
    jobs = [make_job("free") for _ in range(3)] + [make_job("unregistered") for _ in range(3)]
    broker.enqueue_jobs(jobs)

    assert ids(broker.get_jobs_from_queue("q", 10)) == ids(jobs)


def test_the_registered_limit_wins_over_the_job_field(broker: Broker, make_job) -> None:
    jobs = [make_job("unregistered", max_concurrency=1) for _ in range(2)]
    broker.enqueue_jobs(jobs)

    assert ids(broker.get_jobs_from_queue("q", 10)) == ids(jobs)


def test_finishing_twice_frees_one_slot_only(broker: Broker, make_task, make_job) -> None:
    limited(broker, make_task)
    first = make_job("limited")
    broker.enqueue_jobs([first])
    broker.get_jobs_from_queue("q", 10)

    broker.remove_job_from_running(first)
    broker.remove_job_from_running(first)
    broker.enqueue_jobs([make_job("limited"), make_job("limited")])

    assert len(broker.get_jobs_from_queue("q", 10)) == 1
    assert broker.queue_lengths() == {"q": 1}


def test_retry_frees_the_slot(broker: Broker, clock, make_task, make_job) -> None:
    limited(broker, make_task)
    first, second = make_job("limited", max_retries=1), make_job("limited")
    broker.enqueue_jobs([first, second])
    [job] = broker.get_jobs_from_queue("q", 10)
    job.retries += 1
    job.at_timestamp = clock() + 60

    broker.enqueue_jobs([job], from_failure=True)

    assert ids(broker.get_jobs_from_queue("q", 10)) == [second.id]


def test_dead_letter_frees_the_slot(broker: Broker, make_task, make_job) -> None:
    limited(broker, make_task)
    first, second = make_job("limited"), make_job("limited")
    broker.enqueue_jobs([first, second])
    [job] = broker.get_jobs_from_queue("q", 10)

    broker.dead_letter(job, "unknown task")

    assert ids(broker.get_jobs_from_queue("q", 10)) == [second.id]


def test_returning_a_job_frees_the_slot(broker: Broker, make_task, make_job) -> None:
    limited(broker, make_task)
    first = make_job("limited")
    broker.enqueue_jobs([first])
    fetched = broker.get_jobs_from_queue("q", 10)

    broker.return_jobs(fetched)

    assert ids(broker.get_jobs_from_queue("q", 10)) == [first.id]


def test_recovery_frees_the_slot(broker: Broker, peer: Broker, clock, make_task, make_job):
    limited(broker, make_task)
    broker.register_worker(WorkerInfo(id=broker.worker_id))
    peer.register_worker(WorkerInfo(id=peer.worker_id))
    lost, waiting = make_job("limited"), make_job("limited")
    broker.enqueue_jobs([lost, waiting])
    assert ids(peer.get_jobs_from_queue("q", 10)) == [lost.id]

    clock.advance(THRESHOLD + 1)
    broker.heartbeat()
    assert ids(broker.recover_dead_workers(THRESHOLD)) == [lost.id]

    assert ids(broker.get_jobs_from_queue("q", 10)) == [waiting.id]


@pytest.mark.one_partition
def test_limits_are_per_task(broker: Broker, make_task, make_job) -> None:
    broker.set_concurrency_keys(
        [make_task("a", max_concurrency=1), make_task("b", max_concurrency=1)]
    )
    a1, a2, b1 = make_job("a"), make_job("a"), make_job("b")
    broker.enqueue_jobs([a1, a2, b1])

    assert ids(broker.get_jobs_from_queue("q", 10)) == ids([a1, b1])


@pytest.mark.one_partition
def test_many_jobs_end_in_one_call(broker: Broker, peer: Broker, make_task, make_job) -> None:
    limited(broker, make_task, limit=2)
    mine = [make_job("limited"), make_job("limited"), make_job("free")]
    theirs = make_job("free")
    broker.enqueue_jobs([*mine, theirs])
    assert len(broker.get_jobs_from_queue("q", 3)) == 3
    assert ids(peer.get_jobs_from_queue("q", 10)) == [theirs.id]

    broker.remove_jobs_from_running([*mine, theirs])  # not ours to end: left alone
    broker.remove_jobs_from_running(mine)  # sent twice: a no-op the second time

    assert [j.id for j in peer.running_jobs()[peer.worker_id]] == [theirs.id]
    assert broker.worker_id not in broker.running_jobs()
    broker.enqueue_jobs([more := make_job("limited"), again := make_job("limited")])
    assert ids(broker.get_jobs_from_queue("q", 10)) == [more.id, again.id]  # slots freed
