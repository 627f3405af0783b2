"""Late reports: a worker declared dead while it was only slow reports its job after the
recovery took the job away. Its retry or dead letter stores nothing: the job stays where
the recovery (or its rerun) put it, and never runs twice because of the late report."""

from __future__ import annotations

import pytest

from spinach.brokers.base import Broker
from spinach.job import Job, JobStatus

from .support import THRESHOLD, ids, register


def slow_worker_job(broker: Broker, peer: Broker, clock, job: Job) -> Job:
    """``job`` as fetched by ``peer``, which then falls silent past the threshold."""
    register(broker, peer)
    broker.enqueue_jobs([job])
    [fetched] = peer.get_jobs_from_queue("q", 10)
    clock.advance(THRESHOLD + 1)
    broker.heartbeat()
    return fetched


def declared_dead(broker: Broker, peer: Broker, clock, job: Job) -> Job:
    """``job`` as fetched by ``peer``, which was then declared dead and its job recovered."""
    fetched = slow_worker_job(broker, peer, clock, job)
    [recovered] = broker.recover_dead_workers(THRESHOLD)
    assert recovered.id == job.id
    return fetched


def late_retry(peer: Broker, late: Job, clock, delay: float) -> None:
    """What the slow worker reports once its task raised: a retry in ``delay`` seconds."""
    late.retries += 1
    late.at_timestamp = clock() + delay
    peer.enqueue_jobs([late], from_failure=True)


def assert_stored_nowhere(broker: Broker) -> None:
    assert broker.queue_lengths() == {}
    assert broker.scheduled_jobs() == []
    assert broker.running_jobs() == {}
    assert broker.list_dead_letters() == []


# -- a late retry ---------------------------------------------------------------------------


@pytest.mark.parametrize("delay", [0.0, 60.0], ids=["due-now", "due-later"])
def test_a_late_retry_does_not_bring_back_a_job_failed_by_recovery(
    broker: Broker, peer: Broker, clock, make_job, delay: float
) -> None:
    late = declared_dead(broker, peer, clock, make_job(max_retries=0))

    late_retry(peer, late, clock, delay)

    assert late.status is JobStatus.NOT_SET  # not this worker's any more
    assert_stored_nowhere(broker)
    clock.advance(delay)
    broker.move_future_jobs()
    assert broker.get_jobs_from_queue("q", 10) == []  # at-most-once: never runs twice


@pytest.mark.parametrize("delay", [0.0, 60.0], ids=["due-now", "due-later"])
def test_a_late_retry_leaves_a_requeued_job_in_its_queue(
    broker: Broker, peer: Broker, clock, make_job, delay: float
) -> None:
    late = declared_dead(broker, peer, clock, make_job(max_retries=3))

    late_retry(peer, late, clock, delay)

    assert late.status is JobStatus.NOT_SET
    assert broker.queue_lengths() == {"q": 1}
    assert broker.scheduled_jobs() == []
    [rerun] = broker.get_jobs_from_queue("q", 10)
    assert (rerun.id, rerun.retries) == (late.id, 1)  # the retry the recovery counted


def test_a_late_retry_does_not_disturb_the_rerun(
    broker: Broker, peer: Broker, clock, make_job
) -> None:
    late = declared_dead(broker, peer, clock, make_job(max_retries=3))
    [rerun] = broker.get_jobs_from_queue("q", 10)

    late_retry(peer, late, clock, 60)

    assert late.status is JobStatus.NOT_SET
    assert ids(broker.running_jobs()[broker.worker_id]) == [rerun.id]
    assert broker.scheduled_jobs() == []
    rerun.retries += 1
    broker.enqueue_jobs([rerun], from_failure=True)  # the rerun's own retry still works
    assert rerun.status is JobStatus.QUEUED
    assert broker.queue_lengths() == {"q": 1}


def test_a_late_retry_does_not_bring_back_a_job_whose_rerun_ended(
    broker: Broker, peer: Broker, clock, make_job
) -> None:
    late = declared_dead(broker, peer, clock, make_job(max_retries=3))
    [rerun] = broker.get_jobs_from_queue("q", 10)
    broker.remove_job_from_running(rerun)

    late_retry(peer, late, clock, 0)

    assert late.status is JobStatus.NOT_SET
    assert_stored_nowhere(broker)


# -- a late dead letter ---------------------------------------------------------------------


def test_a_late_dead_letter_leaves_a_requeued_job_in_its_queue_only(
    broker: Broker, peer: Broker, clock, make_job
) -> None:
    late = declared_dead(broker, peer, clock, make_job(max_retries=3))

    peer.dead_letter(late, "unknown task")

    assert broker.list_dead_letters() == []
    assert broker.queue_lengths() == {"q": 1}
    assert broker.retry_dead_letters() == 0
    assert ids(broker.get_jobs_from_queue("q", 10)) == [late.id]
    assert broker.get_jobs_from_queue("q", 10) == []  # runs once


def test_a_late_dead_letter_does_not_keep_a_job_failed_by_recovery(
    broker: Broker, peer: Broker, clock, make_job
) -> None:
    late = declared_dead(broker, peer, clock, make_job(max_retries=0))

    peer.dead_letter(late, "unknown task")

    assert_stored_nowhere(broker)


def test_a_late_dead_letter_does_not_disturb_the_rerun(
    broker: Broker, peer: Broker, clock, make_job
) -> None:
    late = declared_dead(broker, peer, clock, make_job(max_retries=3))
    [rerun] = broker.get_jobs_from_queue("q", 10)

    peer.dead_letter(late, "unknown task")

    assert broker.list_dead_letters() == []
    assert ids(broker.running_jobs()[broker.worker_id]) == [rerun.id]


# -- reports in time ------------------------------------------------------------------------


def test_a_slow_worker_not_recovered_yet_still_retries_its_job(
    broker: Broker, peer: Broker, clock, make_job
) -> None:
    job = slow_worker_job(broker, peer, clock, make_job(max_retries=3))

    late_retry(peer, job, clock, 60)

    assert job.status is JobStatus.WAITING
    assert broker.running_jobs() == {}
    assert broker.recover_dead_workers(THRESHOLD) == []
    [scheduled] = broker.scheduled_jobs()
    assert (scheduled.id, scheduled.retries) == (job.id, 1)


def test_a_slow_worker_not_recovered_yet_still_dead_letters_its_job(
    broker: Broker, peer: Broker, clock, make_job
) -> None:
    job = slow_worker_job(broker, peer, clock, make_job(max_retries=3))

    peer.dead_letter(job, "unknown task")

    assert broker.running_jobs() == {}
    assert broker.recover_dead_workers(THRESHOLD) == []
    [letter] = broker.list_dead_letters()
    assert (letter.id, letter.queue, letter.reason) == (job.id, "q", "unknown task")
    assert broker.queue_lengths() == {}


@pytest.mark.parametrize("delay", [0.0, 60.0], ids=["due-now", "due-later"])
def test_a_retry_from_the_running_worker_is_stored(
    broker: Broker, clock, make_job, delay: float
) -> None:
    broker.enqueue_jobs([make_job(max_retries=3)])
    [job] = broker.get_jobs_from_queue("q", 10)

    late_retry(broker, job, clock, delay)

    assert job.status is (JobStatus.WAITING if delay else JobStatus.QUEUED)
    assert broker.running_jobs() == {}
    clock.advance(delay)
    broker.move_future_jobs()
    [again] = broker.get_jobs_from_queue("q", 10)
    assert (again.id, again.retries) == (job.id, 1)


def test_a_dead_letter_from_the_running_worker_is_stored(broker: Broker, make_job) -> None:
    broker.enqueue_jobs([make_job()])
    [job] = broker.get_jobs_from_queue("q", 10)

    broker.dead_letter(job, "unknown task")

    assert broker.running_jobs() == {}
    [letter] = broker.list_dead_letters()
    assert (letter.id, letter.queue, letter.reason) == (job.id, "q", "unknown task")
    assert broker.retry_dead_letters() == 1
    assert ids(broker.get_jobs_from_queue("q", 10)) == [job.id]


# -- the same worker fetched its recovered job again ------------------------------------------


def refetched(broker: Broker, peer: Broker, clock, make_job) -> tuple[Job, Job]:
    """The first attempt of a job ``peer`` was declared dead running, and its second
    attempt: ``peer`` came back (registered again) and fetched the recovered job."""
    first = declared_dead(broker, peer, clock, make_job(max_retries=3))
    peer.heartbeat()  # back: registered again
    [second] = peer.get_jobs_from_queue("q", 10)
    assert (second.id, second.retries) == (first.id, first.retries + 1)
    return first, second


def report_ended(peer: Broker, job: Job, clock) -> None:
    peer.remove_jobs_from_running([job])


def report_retry(peer: Broker, job: Job, clock) -> None:
    late_retry(peer, job, clock, 60.0)


def report_dead_letter(peer: Broker, job: Job, clock) -> None:
    peer.dead_letter(job, "its task is unknown here")


def report_given_back(peer: Broker, job: Job, clock) -> None:
    peer.return_jobs([job])


@pytest.mark.parametrize(
    "report", [report_ended, report_retry, report_dead_letter, report_given_back]
)
def test_a_report_of_the_first_attempt_leaves_the_second_running(
    broker: Broker, peer: Broker, clock, make_job, report
) -> None:
    first, second = refetched(broker, peer, clock, make_job)

    report(peer, first, clock)

    assert ids(broker.running_jobs()[peer.worker_id]) == [second.id]
    assert (broker.queue_lengths(), broker.scheduled_jobs()) == ({}, [])
    assert broker.list_dead_letters() == []
    report_ended(peer, second, clock)  # the second attempt's own report still counts
    assert broker.running_jobs() == {}


def test_a_late_give_back_does_not_bring_back_a_job_failed_by_recovery(
    broker: Broker, peer: Broker, clock, make_job
) -> None:
    late = declared_dead(broker, peer, clock, make_job(max_retries=0))

    peer.return_jobs([late])  # a stop after the stall: the job never started

    assert late.status is JobStatus.NOT_SET
    assert_stored_nowhere(broker)  # failed and reported so: it stays failed
