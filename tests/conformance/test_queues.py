"""Enqueuing and fetching: FIFO queues, priorities, future jobs, retries, idempotence."""

from __future__ import annotations

import pytest

from spinach.brokers.base import Broker
from spinach.exc import UnserializableArgumentError
from spinach.job import JobStatus

from .support import ids


def test_due_job_is_queued(broker: Broker, make_job) -> None:
    job = make_job()
    broker.enqueue_jobs([job])

    assert job.status is JobStatus.QUEUED
    assert broker.queue_lengths() == {"q": 1}
    assert not broker.is_queue_empty("q")
    assert broker.scheduled_jobs() == []


def test_fetched_job_is_running_with_all_its_fields(broker: Broker, make_job) -> None:
    job = make_job(
        max_retries=3,
        task_args=[1, "a", None],
        task_kwargs={"k": [1.5, {"x": True}]},
        meta={"origin": "test"},
        max_concurrency=4,
    )
    broker.enqueue_jobs([job])

    [fetched] = broker.get_jobs_from_queue("q", 10)

    assert fetched.status is JobStatus.RUNNING
    assert fetched.to_dict() == job.to_dict()
    assert broker.is_queue_empty("q")
    assert ids(broker.running_jobs()[broker.worker_id]) == [job.id]


@pytest.mark.one_partition
def test_queue_is_fifo(broker: Broker, make_job) -> None:
    jobs = [make_job() for _ in range(5)]
    broker.enqueue_jobs(jobs[:2])
    broker.enqueue_jobs(jobs[2:])

    assert ids(broker.get_jobs_from_queue("q", 10)) == ids(jobs)


@pytest.mark.one_partition
def test_queues_are_taken_in_the_order_given(broker: Broker, make_job) -> None:
    low = [make_job(queue="low") for _ in range(2)]
    high = [make_job(queue="high") for _ in range(2)]
    broker.enqueue_jobs(low + high)

    assert ids(broker.get_jobs_from_queue(["high", "low"], 3)) == ids(high + low[:1])
    assert ids(broker.get_jobs_from_queue(["high", "low"], 3)) == ids(low[1:])


@pytest.mark.one_partition
def test_a_queue_can_be_named_alone_or_in_a_list(broker: Broker, make_job) -> None:
    jobs = [make_job(), make_job()]
    broker.enqueue_jobs(jobs)

    assert ids(broker.get_jobs_from_queue("q", 1)) == ids(jobs[:1])
    assert ids(broker.get_jobs_from_queue(["q"], 1)) == ids(jobs[1:])


def test_duplicate_queue_names_fetch_a_job_once(broker: Broker, make_job) -> None:
    job = make_job()
    broker.enqueue_jobs([job])

    assert ids(broker.get_jobs_from_queue(["q", "q"], 10)) == [job.id]


def test_no_queue_is_an_error(broker: Broker) -> None:
    with pytest.raises(ValueError):
        broker.get_jobs_from_queue([], 10)


@pytest.mark.one_partition
def test_max_jobs_bounds_a_fetch(broker: Broker, make_job) -> None:
    jobs = [make_job() for _ in range(5)]
    broker.enqueue_jobs(jobs)

    assert ids(broker.get_jobs_from_queue("q", 2)) == ids(jobs[:2])
    assert broker.queue_lengths() == {"q": 3}
    assert ids(broker.get_jobs_from_queue("q", 2)) == ids(jobs[2:4])
    assert ids(broker.get_jobs_from_queue("q", 2)) == ids(jobs[4:])


def test_empty_or_unknown_queue_gives_nothing(broker: Broker) -> None:
    assert broker.get_jobs_from_queue(["q", "unknown"], 10) == []
    assert broker.is_queue_empty("unknown")


def test_future_job_waits_until_due(broker: Broker, clock, make_job) -> None:
    job = make_job(delay=10)
    broker.enqueue_jobs([job])

    assert job.status is JobStatus.WAITING
    assert broker.is_queue_empty("q")
    assert broker.get_jobs_from_queue("q", 10) == []
    assert broker.move_future_jobs() == 0

    clock.advance(9.5)
    assert broker.move_future_jobs() == 0
    assert broker.get_jobs_from_queue("q", 10) == []

    clock.advance(0.5)  # due exactly now
    assert broker.move_future_jobs() == 1
    assert broker.scheduled_jobs() == []
    assert ids(broker.get_jobs_from_queue("q", 10)) == [job.id]


@pytest.mark.one_partition
def test_future_jobs_become_queued_in_due_order(broker: Broker, clock, make_job) -> None:
    late, soon, middle = make_job(delay=30), make_job(delay=10), make_job(delay=20)
    broker.enqueue_jobs([late, soon, middle])

    clock.advance(15)
    assert broker.move_future_jobs() == 1
    clock.advance(100)
    assert broker.move_future_jobs() == 2

    assert ids(broker.get_jobs_from_queue("q", 10)) == ids([soon, middle, late])


@pytest.mark.one_partition
def test_due_future_job_goes_to_the_end_of_its_queue(broker: Broker, clock, make_job) -> None:
    queued, future = make_job(), make_job(delay=5)
    broker.enqueue_jobs([future, queued])
    clock.advance(5)
    broker.move_future_jobs()
    later = make_job()
    broker.enqueue_jobs([later])

    assert ids(broker.get_jobs_from_queue("q", 10)) == ids([queued, future, later])


def test_job_due_in_the_past_is_queued_at_once(broker: Broker, make_job) -> None:
    job = make_job(delay=-3600)
    broker.enqueue_jobs([job])

    assert job.status is JobStatus.QUEUED
    assert ids(broker.get_jobs_from_queue("q", 10)) == [job.id]


def test_enqueuing_a_queued_job_again_stores_it_once(broker: Broker, make_job) -> None:
    job = make_job()
    broker.enqueue_jobs([job, job])
    broker.enqueue_jobs([job])

    assert broker.queue_lengths() == {"q": 1}
    assert ids(broker.get_jobs_from_queue("q", 10)) == [job.id]
    assert broker.get_jobs_from_queue("q", 10) == []


def test_enqueuing_a_future_job_again_stores_it_once(broker: Broker, clock, make_job) -> None:
    job = make_job(delay=10)
    broker.enqueue_jobs([job])
    broker.enqueue_jobs([job])

    assert ids(broker.scheduled_jobs()) == [job.id]
    clock.advance(10)
    assert broker.move_future_jobs() == 1
    assert ids(broker.get_jobs_from_queue("q", 10)) == [job.id]


def test_enqueuing_a_running_job_again_stores_nothing(broker: Broker, make_job) -> None:
    job = make_job()
    broker.enqueue_jobs([job])
    assert len(broker.get_jobs_from_queue("q", 10)) == 1

    broker.enqueue_jobs([job])

    assert broker.is_queue_empty("q")
    assert ids(broker.running_jobs()[broker.worker_id]) == [job.id]


def test_a_batch_with_an_unserializable_argument_stores_nothing(broker: Broker, make_job) -> None:
    good, later = make_job(task_args=[1]), make_job(delay=10)
    bad = make_job(task_args=[object()])

    with pytest.raises(UnserializableArgumentError) as raised:
        broker.enqueue_jobs([good, later, bad])

    assert isinstance(raised.value, TypeError)
    assert broker.queue_lengths() == {}
    assert broker.scheduled_jobs() == []
    assert broker.get_jobs_from_queue("q", 10) == []


def test_retry_from_failure_leaves_running_for_the_future_set(
    broker: Broker, clock, make_job
) -> None:
    broker.enqueue_jobs([make_job(max_retries=3)])
    [job] = broker.get_jobs_from_queue("q", 10)
    job.retries += 1
    job.at_timestamp = clock() + 10

    broker.enqueue_jobs([job], from_failure=True)

    assert job.status is JobStatus.WAITING
    assert broker.running_jobs() == {}
    [scheduled] = broker.scheduled_jobs()
    assert (scheduled.id, scheduled.retries, scheduled.status) == (job.id, 1, JobStatus.WAITING)
    clock.advance(10)
    assert broker.move_future_jobs() == 1
    [again] = broker.get_jobs_from_queue("q", 10)
    assert (again.id, again.retries) == (job.id, 1)


def test_retry_due_now_goes_straight_to_its_queue(broker: Broker, make_job) -> None:
    broker.enqueue_jobs([make_job(max_retries=1)])
    [job] = broker.get_jobs_from_queue("q", 10)
    job.retries += 1

    broker.enqueue_jobs([job], from_failure=True)

    assert job.status is JobStatus.QUEUED
    assert broker.running_jobs() == {}
    [again] = broker.get_jobs_from_queue("q", 10)
    assert (again.id, again.retries) == (job.id, 1)


def test_a_retry_sent_twice_is_stored_once(broker: Broker, clock, make_job) -> None:
    broker.enqueue_jobs([make_job(max_retries=3)])
    [job] = broker.get_jobs_from_queue("q", 10)
    job.retries += 1
    job.at_timestamp = clock() + 10

    broker.enqueue_jobs([job], from_failure=True)
    broker.enqueue_jobs([job], from_failure=True)

    assert ids(broker.scheduled_jobs()) == [job.id]
    assert broker.running_jobs() == {}


@pytest.mark.one_partition
def test_returned_jobs_go_back_to_the_front_in_order(broker: Broker, make_job) -> None:
    jobs = [make_job(max_retries=2) for _ in range(4)]
    broker.enqueue_jobs(jobs)
    fetched = broker.get_jobs_from_queue("q", 2)

    broker.return_jobs(fetched)

    assert [job.status for job in fetched] == [JobStatus.QUEUED] * 2
    assert broker.running_jobs() == {}
    again = broker.get_jobs_from_queue("q", 10)
    assert ids(again) == ids(jobs)
    assert [job.retries for job in again] == [0] * 4


@pytest.mark.one_partition
def test_returned_jobs_go_back_to_their_own_queues(broker: Broker, make_job) -> None:
    a, b = make_job(queue="a"), make_job(queue="b")
    waiting_a = make_job(queue="a")
    broker.enqueue_jobs([a, b, waiting_a])
    fetched = broker.get_jobs_from_queue(["a", "b"], 2)

    broker.return_jobs(fetched)

    assert broker.queue_lengths() == {"a": 2, "b": 1}
    assert ids(broker.get_jobs_from_queue("a", 10)) == ids([a, waiting_a])


@pytest.mark.one_partition
def test_push_raw_of_a_valid_payload_is_fetched(broker: Broker, make_job) -> None:
    as_text, as_bytes = make_job(), make_job()
    broker.push_raw("q", as_text.serialize())
    broker.push_raw("q", as_bytes.serialize().encode())

    fetched = broker.get_jobs_from_queue("q", 10)

    assert [job.to_dict() for job in fetched] == [as_text.to_dict(), as_bytes.to_dict()]
