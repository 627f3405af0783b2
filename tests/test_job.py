"""Jobs and their JSON payloads."""

import uuid
from datetime import datetime, timezone

import pytest

from spinach import Job, JobStatus
from spinach.exc import InvalidPayloadError, UnserializableArgumentError
from spinach.job import new_job_id
from spinach.retries import exponential_backoff


def make_job(**overrides):
    fields = dict(task_name="t", queue="q", at=1_700_000_000.5, max_retries=2)
    fields.update(overrides)
    return Job(**fields)


def test_payload_round_trip():
    job = make_job(task_args=(1, "a"), task_kwargs={"k": [1, 2]}, meta={"h": 1})
    job.retries = 1
    again = Job.deserialize(job.serialize())
    assert again.to_dict() == job.to_dict()
    assert again.task_args == (1, "a")  # arguments come back as a tuple
    assert again.id == job.id and again.retries == 1 and again.meta == {"h": 1}


def test_at_is_kept_to_the_microsecond_and_naive_is_utc():
    job = make_job(at=datetime(2030, 1, 2, 3, 4, 5, 123456))
    assert job.at == datetime(2030, 1, 2, 3, 4, 5, 123456, tzinfo=timezone.utc)
    assert Job.deserialize(job.serialize()).at == job.at


def test_each_job_gets_a_new_id_unless_given_one():
    assert make_job().id != make_job().id
    assert make_job(id="fixed").id == "fixed"


def test_should_retry():
    job = make_job(max_retries=1)
    assert job.should_retry
    job.retries = 1
    assert not job.should_retry


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ("{not json", "not valid JSON"),
        (b"\xff\xfe", "not valid JSON"),
        ("[1, 2]", "not a JSON object"),
        ('{"id": "x"}', "no 'task_name' field"),
    ],
)
def test_bad_payloads_say_why(payload, message):
    with pytest.raises(InvalidPayloadError, match=message):
        Job.deserialize(payload)


def test_wrongly_typed_field_is_named():
    data = make_job().to_dict()
    data["retries"] = "3"
    with pytest.raises(InvalidPayloadError, match="'retries' has the wrong type"):
        Job.from_dict(data)


def test_unserializable_argument_is_named():
    with pytest.raises(UnserializableArgumentError, match=r"argument 1 of task 't'.*set"):
        make_job(task_args=(1, {2})).serialize()
    with pytest.raises(TypeError, match="argument 'x' of task 't'"):
        make_job(task_kwargs={"x": object()}).serialize()


def test_repr_and_str_name_the_task_and_id():
    job = make_job(id="abc")
    assert str(job) == "job abc of task 't'"
    assert repr(job) == f"<Job t abc {JobStatus.NOT_SET.name}>"


def test_backoff_doubles_up_to_the_cap_with_jitter():
    assert exponential_backoff(1, rand=lambda: 0.0) == 1.5
    assert exponential_backoff(1, rand=lambda: 1.0) == 3.0
    assert exponential_backoff(3, rand=lambda: 1.0) == 12.0
    assert exponential_backoff(50, rand=lambda: 1.0) == 1200.0
    assert exponential_backoff(10_000, rand=lambda: 0.0) == 600.0
    with pytest.raises(ValueError):
        exponential_backoff(0)


def test_job_ids_are_version_4_uuids() -> None:
    ids = {new_job_id() for _ in range(1000)}

    assert len(ids) == 1000
    for job_id in ids:
        parsed = uuid.UUID(hex=job_id)
        assert parsed.version == 4 and parsed.variant == uuid.RFC_4122
        assert parsed.hex == job_id
