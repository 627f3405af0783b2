"""Worker liveness and the recovery of the running jobs of dead worker processes."""

from __future__ import annotations

import pytest

from spinach.brokers.base import Broker, WorkerInfo
from spinach.job import JobStatus

from .support import THRESHOLD, ids, register


def worker_ids(broker: Broker) -> set[str]:
    return {info.id for info in broker.workers()}


def test_register_worker_stamps_start_and_heartbeat(broker: Broker, start: float) -> None:
    info = WorkerInfo(id=broker.worker_id, hostname="h", pid=42, queues=["a", "b"], threads=3)
    broker.register_worker(info)

    [stored] = broker.workers()
    assert (stored.id, stored.hostname, stored.pid) == (broker.worker_id, "h", 42)
    assert (stored.queues, stored.threads) == (["a", "b"], 3)
    assert stored.started_at == start
    assert stored.last_heartbeat == start


def test_register_worker_keeps_a_given_start(broker: Broker, start: float) -> None:
    broker.register_worker(WorkerInfo(id=broker.worker_id, started_at=start - 100))

    [stored] = broker.workers()
    assert (stored.started_at, stored.last_heartbeat) == (start - 100, start)


def test_heartbeat_updates_the_last_heartbeat(broker: Broker, clock, start: float) -> None:
    register(broker)
    clock.advance(5)

    broker.heartbeat()

    [stored] = broker.workers()
    assert (stored.started_at, stored.last_heartbeat) == (start, start + 5)


def test_workers_lists_every_worker_process(broker: Broker, peer: Broker) -> None:
    register(broker, peer)

    assert worker_ids(broker) == {broker.worker_id, peer.worker_id}
    assert worker_ids(peer) == {broker.worker_id, peer.worker_id}


def test_deregister_worker(broker: Broker, peer: Broker) -> None:
    register(broker, peer)

    peer.deregister_worker()

    assert worker_ids(broker) == {broker.worker_id}


def test_jobs_of_a_dead_worker_are_recovered(broker: Broker, peer: Broker, clock, make_job) -> None:
    register(broker, peer)
    at_least_once = make_job(max_retries=2, task_args=[1])
    at_most_once = make_job(max_retries=0)
    broker.enqueue_jobs([at_least_once, at_most_once])
    assert len(peer.get_jobs_from_queue("q", 10)) == 2

    clock.advance(THRESHOLD + 1)
    broker.heartbeat()
    recovered = {job.id: job for job in broker.recover_dead_workers(THRESHOLD)}

    assert recovered.keys() == {at_least_once.id, at_most_once.id}
    requeued, failed = recovered[at_least_once.id], recovered[at_most_once.id]
    assert (requeued.status, requeued.retries, requeued.task_args) == (JobStatus.QUEUED, 1, (1,))
    assert (failed.status, failed.retries) == (JobStatus.FAILED, 0)
    assert broker.running_jobs() == {}
    assert worker_ids(broker) == {broker.worker_id}
    [again] = broker.get_jobs_from_queue("q", 10)
    assert (again.id, again.retries) == (at_least_once.id, 1)


@pytest.mark.one_partition
def test_recovered_job_goes_to_the_end_of_its_queue(
    broker: Broker, peer: Broker, clock, make_job
) -> None:
    register(broker, peer)
    lost = make_job(max_retries=1)
    broker.enqueue_jobs([lost])
    peer.get_jobs_from_queue("q", 10)
    waiting = make_job()
    broker.enqueue_jobs([waiting])

    clock.advance(THRESHOLD + 1)
    broker.heartbeat()
    broker.recover_dead_workers(THRESHOLD)

    assert ids(broker.get_jobs_from_queue("q", 10)) == ids([waiting, lost])


def test_nothing_is_recovered_before_the_threshold(
    broker: Broker, peer: Broker, clock, make_job
) -> None:
    register(broker, peer)
    broker.enqueue_jobs([job := make_job(max_retries=1)])
    peer.get_jobs_from_queue("q", 10)

    clock.advance(THRESHOLD - 1)

    assert broker.recover_dead_workers(THRESHOLD) == []
    assert ids(broker.running_jobs()[peer.worker_id]) == [job.id]
    assert worker_ids(broker) == {broker.worker_id, peer.worker_id}


def test_heartbeats_keep_a_worker_alive(broker: Broker, peer: Broker, clock, make_job) -> None:
    register(broker, peer)
    broker.enqueue_jobs([job := make_job(max_retries=1)])
    peer.get_jobs_from_queue("q", 10)

    for _ in range(10):
        clock.advance(THRESHOLD / 2)
        peer.heartbeat()
        broker.heartbeat()
        assert broker.recover_dead_workers(THRESHOLD) == []

    assert ids(broker.running_jobs()[peer.worker_id]) == [job.id]


def test_a_worker_never_recovers_itself(broker: Broker, clock, make_job) -> None:
    register(broker)
    broker.enqueue_jobs([job := make_job(max_retries=1)])
    broker.get_jobs_from_queue("q", 10)

    clock.advance(10 * THRESHOLD)

    assert broker.recover_dead_workers(THRESHOLD) == []
    assert ids(broker.running_jobs()[broker.worker_id]) == [job.id]
    assert worker_ids(broker) == {broker.worker_id}


def test_jobs_of_an_unregistered_worker_are_orphans(broker: Broker, peer: Broker, make_job) -> None:
    register(broker)
    broker.enqueue_jobs([job := make_job(max_retries=1)])
    peer.get_jobs_from_queue("q", 10)  # the peer never registered

    assert ids(broker.recover_dead_workers(THRESHOLD)) == [job.id]
    assert ids(broker.get_jobs_from_queue("q", 10)) == [job.id]


def test_jobs_left_by_a_deregistered_worker_are_orphans(
    broker: Broker, peer: Broker, make_job
) -> None:
    register(broker, peer)
    broker.enqueue_jobs([job := make_job(max_retries=1)])
    peer.get_jobs_from_queue("q", 10)
    peer.deregister_worker()

    assert ids(broker.recover_dead_workers(THRESHOLD)) == [job.id]


def test_recovery_happens_once(broker: Broker, peer: Broker, clock, make_job) -> None:
    register(broker, peer)
    broker.enqueue_jobs([job := make_job(max_retries=1)])
    peer.get_jobs_from_queue("q", 10)
    clock.advance(THRESHOLD + 1)
    broker.heartbeat()

    assert ids(broker.recover_dead_workers(THRESHOLD)) == [job.id]
    assert broker.recover_dead_workers(THRESHOLD) == []
    assert broker.queue_lengths() == {"q": 1}


def test_a_worker_declared_dead_comes_back_with_a_heartbeat(
    broker: Broker, peer: Broker, clock, start: float
) -> None:
    register(broker, peer)
    clock.advance(THRESHOLD + 1)
    broker.heartbeat()
    broker.recover_dead_workers(THRESHOLD)
    assert worker_ids(broker) == {broker.worker_id}

    peer.heartbeat()

    assert worker_ids(broker) == {broker.worker_id, peer.worker_id}
    [info] = [info for info in broker.workers() if info.id == peer.worker_id]
    assert (info.started_at, info.last_heartbeat) == (start, clock())


def test_a_late_worker_does_not_disturb_the_rerun_of_its_job(
    broker: Broker, peer: Broker, clock, make_job
) -> None:
    register(broker, peer)
    broker.enqueue_jobs([make_job(max_retries=2)])
    [late] = peer.get_jobs_from_queue("q", 10)
    clock.advance(THRESHOLD + 1)
    broker.heartbeat()
    broker.recover_dead_workers(THRESHOLD)
    [rerun] = broker.get_jobs_from_queue("q", 10)

    peer.remove_job_from_running(late)  # the slow worker finally reports
    late.retries += 1
    peer.enqueue_jobs([late], from_failure=True)

    assert ids(broker.running_jobs()[broker.worker_id]) == [rerun.id]
    assert broker.queue_lengths() == {}
    assert broker.scheduled_jobs() == []
