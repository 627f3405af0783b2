"""Unique jobs: one stored job per unique key; another one scheduled meanwhile is that job
(its id, its status); the key is released when the job ends in any way."""

from __future__ import annotations

import pytest

from spinach.brokers.base import Broker
from spinach.job import Job, JobStatus
from spinach.testing import FakeClock

from .support import THRESHOLD, ids, register


def unique_job(make_job, key: str = "task:k", ttl: float | None = None, **options) -> Job:
    job = make_job(**options)
    job.unique_key, job.unique_ttl = key, ttl
    return job


def test_a_held_key_gives_the_stored_job(broker: Broker, peer: Broker, make_job) -> None:
    first, second = unique_job(make_job), unique_job(make_job)
    broker.enqueue_jobs([first])
    peer.enqueue_jobs([second])

    assert (second.id, second.status) == (first.id, JobStatus.QUEUED)
    assert broker.queue_lengths() == {"q": 1}


def test_jobs_of_one_batch_share_a_key(broker: Broker, make_job) -> None:
    jobs = [unique_job(make_job), unique_job(make_job), unique_job(make_job, key="task:other")]
    broker.enqueue_jobs(jobs)

    assert jobs[1].id == jobs[0].id != jobs[2].id
    assert broker.queue_lengths() == {"q": 2}


def test_a_future_or_running_job_holds_its_key(broker: Broker, make_job) -> None:
    later = unique_job(make_job, delay=60)
    broker.enqueue_jobs([later])
    broker.enqueue_jobs([again := unique_job(make_job)])
    assert (again.id, again.status) == (later.id, JobStatus.WAITING)

    other = unique_job(make_job, key="task:other")
    broker.enqueue_jobs([other])
    broker.get_jobs_from_queue("q", 10)
    broker.enqueue_jobs([while_running := unique_job(make_job, key="task:other")])
    assert (while_running.id, while_running.status) == (other.id, JobStatus.RUNNING)


def test_the_key_is_released_when_the_job_ends(broker: Broker, make_job) -> None:
    broker.enqueue_jobs([first := unique_job(make_job)])
    [running] = broker.get_jobs_from_queue("q", 10)
    broker.remove_job_from_running(running)

    broker.enqueue_jobs([second := unique_job(make_job)])
    assert second.id != first.id and broker.queue_lengths() == {"q": 1}


def test_a_retry_keeps_the_key_and_a_dead_letter_releases_it(broker: Broker, make_job) -> None:
    broker.enqueue_jobs([first := unique_job(make_job, max_retries=1)])
    [running] = broker.get_jobs_from_queue("q", 10)
    running.retries += 1
    broker.enqueue_jobs([running], from_failure=True)
    broker.enqueue_jobs([again := unique_job(make_job)])
    assert again.id == first.id

    [running] = broker.get_jobs_from_queue("q", 10)
    broker.dead_letter(running, "its task is unknown")
    broker.enqueue_jobs([after := unique_job(make_job)])
    assert (after.id != first.id, after.status) == (True, JobStatus.QUEUED)


def test_recovery_keeps_the_key_of_a_requeued_job_and_releases_a_failed_one(
    broker: Broker, peer: Broker, clock: FakeClock, make_job
) -> None:
    register(broker, peer)
    requeued = unique_job(make_job, key="task:requeued", max_retries=1)
    failed = unique_job(make_job, key="task:failed", max_retries=0)
    broker.enqueue_jobs([requeued, failed])
    assert len(peer.get_jobs_from_queue("q", 10)) == 2
    clock.advance(THRESHOLD + 1)
    broker.heartbeat()
    assert set(ids(broker.recover_dead_workers(THRESHOLD))) == {requeued.id, failed.id}

    broker.enqueue_jobs([a := unique_job(make_job, key="task:requeued")])
    broker.enqueue_jobs([b := unique_job(make_job, key="task:failed")])
    assert a.id == requeued.id
    assert b.id != failed.id and b.status == JobStatus.QUEUED


@pytest.mark.parametrize("ttl", [10.0])
def test_a_key_with_a_ttl_is_released_after_it(
    broker: Broker, clock: FakeClock, make_job, ttl: float
) -> None:
    broker.enqueue_jobs([first := unique_job(make_job, ttl=ttl)])
    clock.advance(ttl - 1)
    broker.enqueue_jobs([held := unique_job(make_job, ttl=ttl)])
    assert held.id == first.id
    clock.advance(1)
    broker.enqueue_jobs([second := unique_job(make_job, ttl=ttl)])
    assert second.id != first.id and broker.queue_lengths() == {"q": 2}


def test_jobs_without_a_key_are_never_merged(broker: Broker, make_job) -> None:
    jobs = [make_job(), make_job()]
    broker.enqueue_jobs(jobs)
    assert broker.queue_lengths() == {"q": 2}


def test_any_job_id_holds_a_key(broker: Broker, make_job) -> None:
    broker.enqueue_jobs([first := unique_job(make_job, id="a task id / with spaces")])
    broker.enqueue_jobs([again := unique_job(make_job)])
    assert again.id == first.id == "a task id / with spaces"


def _dead_letter_first(broker: Broker, make_job, ttl: float | None = None) -> Job:
    """A unique job fetched, then dead-lettered (which releases its key)."""
    broker.enqueue_jobs([first := unique_job(make_job, ttl=ttl)])
    [running] = broker.get_jobs_from_queue("q", 10)
    broker.dead_letter(running, "its body cannot be decoded here")
    return first


def test_a_retried_dead_letter_takes_its_key_again(
    broker: Broker, clock: FakeClock, make_job
) -> None:
    """Without a ``unique_ttl``, held while the job lives."""
    first = _dead_letter_first(broker, make_job)

    assert broker.retry_dead_letters() == 1
    clock.advance(3600)
    broker.enqueue_jobs([again := unique_job(make_job)])
    assert (again.id, again.status) == (first.id, JobStatus.QUEUED)
    assert broker.queue_lengths() == {"q": 1}

    [running] = broker.get_jobs_from_queue("q", 10)
    broker.remove_job_from_running(running)  # its end releases the key
    broker.enqueue_jobs([after := unique_job(make_job)])
    assert after.id != first.id and after.status is JobStatus.QUEUED


def test_a_retried_dead_letter_holds_its_key_for_its_ttl(
    broker: Broker, clock: FakeClock, make_job
) -> None:
    """The retry takes the key again for the job's ``unique_ttl``, counted from the retry."""
    first = _dead_letter_first(broker, make_job, ttl=10.0)
    clock.advance(60)  # long after the first hold would have ended

    assert broker.retry_dead_letters() == 1
    clock.advance(9)
    broker.enqueue_jobs([held := unique_job(make_job, ttl=10.0)])
    assert held.id == first.id and broker.queue_lengths() == {"q": 1}
    clock.advance(1)
    broker.enqueue_jobs([second := unique_job(make_job, ttl=10.0)])
    assert second.id != first.id and broker.queue_lengths() == {"q": 2}


def test_a_dead_letter_whose_hold_had_lapsed_is_retried_without_it(
    broker: Broker, clock: FakeClock, make_job
) -> None:
    broker.enqueue_jobs([first := unique_job(make_job, ttl=10.0)])
    [running] = broker.get_jobs_from_queue("q", 10)
    clock.advance(11)  # the hold expires while the job runs
    broker.dead_letter(running, "its body cannot be decoded here")

    assert broker.retry_dead_letters() == 1
    broker.enqueue_jobs([second := unique_job(make_job, ttl=10.0)])
    assert second.id != first.id and broker.queue_lengths() == {"q": 2}


def test_a_dead_letter_whose_key_is_held_stays_until_it_is_free(
    broker: Broker, make_job, caplog: pytest.LogCaptureFixture
) -> None:
    first = _dead_letter_first(broker, make_job)
    [letter] = broker.list_dead_letters()
    broker.enqueue_jobs([second := unique_job(make_job)])

    assert broker.retry_dead_letters() == 0
    assert ids([second]) != ids([first]) and broker.queue_lengths() == {"q": 1}
    assert [dead.id for dead in broker.list_dead_letters()] == [letter.id]
    assert f"Dead letter {letter.id} not retried: its unique key 'task:k' is held by job " \
        f"{second.id} (queued)" in caplog.text  # fmt: skip

    [running] = broker.get_jobs_from_queue("q", 10)
    broker.remove_job_from_running(running)
    assert broker.retry_dead_letters([letter.id]) == 1
    assert broker.list_dead_letters() == []
    broker.enqueue_jobs([third := unique_job(make_job)])
    assert third.id == first.id


def test_a_purged_dead_letter_leaves_the_key_free(broker: Broker, make_job) -> None:
    _dead_letter_first(broker, make_job)
    assert broker.purge_dead_letters() == 1
    broker.enqueue_jobs([job := unique_job(make_job)])
    broker.enqueue_jobs([again := unique_job(make_job)])
    assert again.id == job.id and broker.queue_lengths() == {"q": 1}
