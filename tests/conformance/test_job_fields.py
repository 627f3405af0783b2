"""Every field of a job (the codec's list, whatever it holds) survives every path a job
takes through a broker: enqueue and fetch, future to ready, periodic registration, retry,
return, recovery, dead letter to inspection to retry."""

from __future__ import annotations

from typing import Any

from spinach import job_codec
from spinach.brokers.base import Broker
from spinach.job import Job

from .support import THRESHOLD, register

PERIOD = 60.0


def full_job(at: float, **changes: Any) -> Job:
    """A job of queue ``q`` whose every codec field is set (not its default)."""
    job = Job(
        "app.report", "q", at, 5, (1, "two", [3.5, None]), {"k": {"n": [True]}},
        id="job-1", retries=1, max_concurrency=4, meta={"headers": {"lang": "py"}},
    )  # fmt: skip
    defaults = job_codec.to_dict(Job("t", "other", 0.0, 0, id="x"))
    for field in job_codec.FIELDS:  # a field added to the codec must be set here too
        assert getattr(job, field.attribute) != defaults[field.name], field.name
    for name, value in changes.items():
        setattr(job, name, value)
    return job


def fields(job: Job) -> dict[str, Any]:
    return job_codec.to_dict(job)


def fetch_one(broker: Broker) -> Job:
    [job] = broker.get_jobs_from_queue("q", 10)
    return job


def test_enqueue_then_fetch(broker: Broker, clock) -> None:
    job = full_job(clock())
    broker.enqueue_jobs([job])

    assert fields(fetch_one(broker)) == fields(job)
    [[running]] = broker.running_jobs().values()
    assert fields(running) == fields(job)


def test_future_to_ready(broker: Broker, clock) -> None:
    job = full_job(clock() + 30)
    broker.enqueue_jobs([job])
    [scheduled] = broker.scheduled_jobs()
    assert fields(scheduled) == fields(job)

    clock.advance(30)
    assert broker.move_future_jobs() == 1

    assert fields(fetch_one(broker)) == fields(job)


def test_periodic_registration_to_job(broker: Broker, clock, make_task) -> None:
    task = make_task("app.tick", queue="q", max_retries=3, every=PERIOD, max_concurrency=2)
    broker.register_periodic_tasks([task])

    assert broker.move_future_jobs() == 1

    fired = fetch_one(broker)
    assert fields(fired) == fields(task.new_job(clock(), id=fired.id))


def test_retry(broker: Broker, clock) -> None:
    fetched = full_job(clock())
    broker.enqueue_jobs([fetched])
    job = fetch_one(broker)
    job.retries += 1
    job.at_timestamp = clock() + 10
    broker.enqueue_jobs([job], from_failure=True)

    clock.advance(10)
    assert broker.move_future_jobs() == 1

    assert fields(fetch_one(broker)) == fields(full_job(clock(), retries=2))


def test_returned_and_recovered_jobs(broker: Broker, peer: Broker, clock) -> None:
    register(broker, peer)
    job = full_job(clock())
    broker.enqueue_jobs([job])
    broker.return_jobs([fetch_one(broker)])
    assert fields(fetch_one(peer)) == fields(job)

    clock.advance(THRESHOLD + 1)
    broker.heartbeat()
    [recovered] = broker.recover_dead_workers(THRESHOLD)

    assert fields(recovered) == fields(full_job(job.at_timestamp, retries=2))
    assert fields(fetch_one(broker)) == fields(recovered)


def test_dead_letter_to_inspection_to_retry(broker: Broker, clock) -> None:
    job = full_job(clock())
    broker.enqueue_jobs([job])
    broker.dead_letter(fetch_one(broker), "unknown task 'app.report'")

    [letter] = broker.list_dead_letters()
    assert (letter.id, letter.queue) == (job.id, "q")
    assert fields(job_codec.decode(letter.payload)) == fields(job)

    assert broker.retry_dead_letters() == 1
    assert fields(fetch_one(broker)) == fields(job)
