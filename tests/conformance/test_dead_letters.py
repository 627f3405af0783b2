"""Dead letters: payloads that cannot run are set aside, never dropped, and can come back."""

from __future__ import annotations

import json

import pytest

from spinach.brokers.base import Broker
from spinach.exc import InvalidPayloadError
from spinach.job import Job

from .support import ids


def decode_error(payload: str) -> str:
    with pytest.raises(InvalidPayloadError) as raised:
        Job.deserialize(payload)
    return str(raised.value)


@pytest.mark.one_partition
@pytest.mark.parametrize(
    "payload",
    [
        pytest.param("{not json", id="malformed-json"),
        pytest.param("[1, 2, 3]", id="json-not-an-object"),
        pytest.param('"a string"', id="json-string"),
        pytest.param('{"task_name": "t", "queue": "q"}', id="missing-fields"),
        pytest.param(
            '{"id": "x", "task_name": "t", "queue": "q", "at": "soon", "max_retries": 0, '
            '"retries": 0, "task_args": [], "task_kwargs": {}}',
            id="wrong-type",
        ),
    ],
)
def test_bad_payload_is_dead_lettered_between_good_jobs(
    broker: Broker, clock, make_job, payload: str
) -> None:
    before, after = make_job(), make_job()
    broker.enqueue_jobs([before])
    broker.push_raw("q", payload)
    broker.enqueue_jobs([after])

    assert ids(broker.get_jobs_from_queue("q", 10)) == ids([before, after])

    assert broker.is_queue_empty("q")
    [letter] = broker.list_dead_letters()
    assert (letter.queue, letter.payload) == ("q", payload)
    assert letter.reason == decode_error(payload)
    assert letter.failed_at == clock()
    assert isinstance(letter.id, str) and letter.id
    assert broker.get_jobs_from_queue("q", 10) == []


def test_bad_payload_with_an_id_keeps_it(broker: Broker) -> None:
    payload = json.dumps({"id": "abc123", "task_name": "t", "queue": "q"})
    broker.push_raw("q", payload)

    assert broker.get_jobs_from_queue("q", 10) == []

    [letter] = broker.list_dead_letters()
    assert letter.id == "abc123"
    assert letter.reason == decode_error(payload)


def test_bad_payloads_without_ids_get_distinct_ids(broker: Broker) -> None:
    broker.push_raw("q", "{not json")
    broker.push_raw("q", "[]")

    broker.get_jobs_from_queue("q", 10)

    letters = broker.list_dead_letters()
    assert len({letter.id for letter in letters}) == 2


def test_undecodable_bytes_are_dead_lettered(broker: Broker, make_job) -> None:
    good = make_job()
    broker.push_raw("q", b"\xff\xfe not utf-8")
    broker.enqueue_jobs([good])

    assert ids(broker.get_jobs_from_queue("q", 10)) == [good.id]
    [letter] = broker.list_dead_letters()
    assert letter.queue == "q"


def test_bad_payload_is_dead_lettered_in_its_own_queue(broker: Broker, make_job) -> None:
    broker.push_raw("second", "nope")
    good = make_job(queue="first")
    broker.enqueue_jobs([good])

    assert ids(broker.get_jobs_from_queue(["first", "second"], 10)) == [good.id]
    assert [letter.queue for letter in broker.list_dead_letters()] == ["second"]


def test_dead_letter_of_a_fetched_job(broker: Broker, clock, make_job) -> None:
    job = make_job("unknown.task", task_args=[1, 2])
    broker.enqueue_jobs([job])
    [fetched] = broker.get_jobs_from_queue("q", 10)

    broker.dead_letter(fetched, "unknown task 'unknown.task'")

    assert broker.running_jobs() == {}
    [letter] = broker.list_dead_letters()
    assert (letter.id, letter.queue) == (job.id, "q")
    assert (letter.reason, letter.failed_at) == ("unknown task 'unknown.task'", clock())
    assert Job.deserialize(letter.payload).to_dict() == job.to_dict()


def test_dead_letters_are_listed_oldest_first(broker: Broker, clock) -> None:
    for payload in ["first", "second", "third"]:
        broker.push_raw("q", payload)
        broker.get_jobs_from_queue("q", 10)
        clock.advance(1)

    assert [letter.payload for letter in broker.list_dead_letters()] == [
        "first",
        "second",
        "third",
    ]


def test_a_payload_dead_lettered_again_keeps_its_place(broker: Broker, clock) -> None:
    first = json.dumps({"id": "first", "task_name": "t", "queue": "q"})
    for payload in [first, "second", first]:  # the first again, later: one letter
        broker.push_raw("q", payload)
        broker.get_jobs_from_queue("q", 10)
        clock.advance(1)

    letters = broker.list_dead_letters()
    assert [letter.payload for letter in letters] == [first, "second"]
    assert letters[0].failed_at == clock() - 1  # its time is the latest one


@pytest.mark.one_partition
def test_retry_some_dead_letters_goes_by_arrival(broker: Broker, make_job) -> None:
    jobs = [make_job(), make_job(), make_job()]
    broker.enqueue_jobs(jobs)
    for fetched in broker.get_jobs_from_queue("q", 10):
        broker.dead_letter(fetched, "unknown task")

    assert broker.retry_dead_letters([jobs[2].id, jobs[0].id]) == 2

    assert ids(broker.get_jobs_from_queue("q", 10)) == [jobs[0].id, jobs[2].id]


@pytest.mark.one_partition
def test_retry_dead_letters_puts_them_back_at_the_end(broker: Broker, clock, make_job):
    dead_first, dead_second, waiting = make_job(), make_job(), make_job()
    broker.enqueue_jobs([dead_first, dead_second])
    for fetched in broker.get_jobs_from_queue("q", 10):
        broker.dead_letter(fetched, "unknown task")
        clock.advance(1)
    broker.enqueue_jobs([waiting])

    assert broker.retry_dead_letters() == 2

    assert broker.list_dead_letters() == []
    assert ids(broker.get_jobs_from_queue("q", 10)) == ids([waiting, dead_first, dead_second])


def test_retry_some_dead_letters(broker: Broker, make_job) -> None:
    kept, retried = make_job(), make_job()
    broker.enqueue_jobs([kept, retried])
    for fetched in broker.get_jobs_from_queue("q", 10):
        broker.dead_letter(fetched, "unknown task")

    assert broker.retry_dead_letters([retried.id, "no-such-id"]) == 1

    assert [letter.id for letter in broker.list_dead_letters()] == [kept.id]
    assert ids(broker.get_jobs_from_queue("q", 10)) == [retried.id]


def test_a_retried_bad_payload_comes_back_as_a_dead_letter(broker: Broker) -> None:
    broker.push_raw("q", "{not json")
    broker.get_jobs_from_queue("q", 10)

    assert broker.retry_dead_letters() == 1
    assert broker.queue_lengths() == {"q": 1}
    assert broker.get_jobs_from_queue("q", 10) == []

    [letter] = broker.list_dead_letters()
    assert letter.payload == "{not json"


@pytest.mark.one_partition
def test_purge_dead_letters(broker: Broker, make_job) -> None:
    jobs = [make_job() for _ in range(3)]
    broker.enqueue_jobs(jobs)
    for fetched in broker.get_jobs_from_queue("q", 10):
        broker.dead_letter(fetched, "unknown task")

    assert broker.purge_dead_letters([jobs[0].id, "no-such-id"]) == 1
    assert [letter.id for letter in broker.list_dead_letters()] == ids(jobs[1:])
    assert broker.purge_dead_letters() == 2
    assert broker.list_dead_letters() == []
    assert broker.purge_dead_letters() == 0
    assert broker.retry_dead_letters() == 0
    assert broker.queue_lengths() == {}


@pytest.mark.one_partition
def test_a_raw_copy_of_a_running_job_is_dead_lettered(broker: Broker, make_job) -> None:
    job = make_job(max_concurrency=None)
    broker.enqueue_jobs([job])
    assert ids(broker.get_jobs_from_queue("q", 10)) == [job.id]
    broker.push_raw("q", job.serialize())  # pushed by hand while the job runs

    assert broker.get_jobs_from_queue("q", 10) == []
    (letter,) = broker.list_dead_letters()
    assert (letter.id, letter.reason) == (job.id, f"job {job.id} is already running")
    running = [j.id for jobs in broker.running_jobs().values() for j in jobs]
    assert running == [job.id]  # the running job is untouched


@pytest.mark.one_partition
def test_two_copies_of_a_job_in_one_fetch_start_it_once(broker: Broker, make_job) -> None:
    job = make_job(max_concurrency=None)
    broker.push_raw("q", job.serialize())
    broker.push_raw("q", job.serialize())  # the same job twice, fetched in one call

    (fetched,) = broker.get_jobs_from_queue("q", 10)
    assert fetched.id == job.id
    (letter,) = broker.list_dead_letters()
    assert (letter.id, letter.reason) == (job.id, f"job {job.id} is already running")
    broker.remove_job_from_running(fetched)
    assert broker.running_jobs() == {} and broker.queue_lengths() == {}
