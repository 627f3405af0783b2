"""The job codec: one field list for Python and the Redis scripts, and payloads written by
the previous version still decoding; the task options declared once."""

from __future__ import annotations

import importlib.resources
import inspect
import json
import re
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
import redis

from spinach import job_codec
from spinach.brokers.redis import RedisBroker, script_source
from spinach.exc import InvalidPayloadError
from spinach.job import Job
from spinach.task import JOB_OPTIONS, OPTION_NAMES, OPTIONS, Task, TaskOptions, Tasks
from spinach.testing import FakeClock
from tests.support.redis_server import RedisServer

START = 1_700_000_000.0

#: Payloads the previous version (before the codec) wrote, as stored in Redis: a job with
#: every field set, one with the defaults, and a periodic job built by move_future_jobs.
OLD_FULL = (
    '{"id":"4f1c0e2a9b8d4c6e8a7b6c5d4e3f2a1b","task_name":"app.tasks.report",'
    '"queue":"reports","at":1700000000.25,"max_retries":5,"retries":2,"max_concurrency":4,'
    '"task_args":[1,"two",[3]],"task_kwargs":{"k":{"n":null}},"meta":{"headers":{"lang":"py"}}}'
)
OLD_DEFAULTS = (
    '{"id":"0facdc1e5e2b4778a9970280c123af0b","task_name":"t","queue":"q","at":1700000000.0,'
    '"max_retries":0,"retries":0,"max_concurrency":null,"task_args":[],"task_kwargs":{},'
    '"meta":{}}'
)
OLD_PERIODIC = (
    '{"id":"5b2d1c","at":1700000000.5,"task_name":"tick","queue":"ticks","max_retries":3,'
    '"retries":0,"max_concurrency":2,"task_args":[],"task_kwargs":{},"meta":{}}'
)
#: The record the previous version kept for a periodic task (register_periodic_tasks).
OLD_PERIODIC_RECORD = (
    '{"period": 60.0, "queue": "ticks", "tail": "\\"task_name\\":\\"tick\\",\\"queue\\":'
    '\\"ticks\\",\\"max_retries\\":3,\\"retries\\":0,\\"max_concurrency\\":2,\\"task_args\\":'
    '[],\\"task_kwargs\\":{},\\"meta\\":{}}"}'
)


def full_job() -> Job:
    """A job whose every codec field differs from its default."""
    return Job(
        "app.tasks.report", "reports", START + 0.25, 5, (1, "two"), {"k": [3]},
        id="job-1", retries=2, max_concurrency=4, meta={"headers": {"lang": "py"}},
    )  # fmt: skip


def _noop() -> None:
    pass


# -- payloads of the previous version ------------------------------------------------


def test_a_payload_of_the_previous_version_decodes_to_the_same_bytes() -> None:
    job = job_codec.decode(OLD_FULL)

    assert (job.id, job.task_name, job.queue) == (
        "4f1c0e2a9b8d4c6e8a7b6c5d4e3f2a1b", "app.tasks.report", "reports",
    )  # fmt: skip
    assert (job.at_timestamp, job.max_retries, job.retries, job.max_concurrency) == (
        1700000000.25, 5, 2, 4,
    )  # fmt: skip
    assert (job.task_args, job.task_kwargs) == ((1, "two", [3]), {"k": {"n": None}})
    assert job.meta == {"headers": {"lang": "py"}}
    assert job_codec.encode(job) == OLD_FULL  # dead letters compare payloads


@pytest.mark.parametrize("payload", [OLD_DEFAULTS, OLD_PERIODIC], ids=["defaults", "periodic"])
def test_other_payloads_of_the_previous_version_decode(payload: str) -> None:
    job = job_codec.decode(payload)

    assert job_codec.to_dict(job) == json.loads(payload) | {"task_args": ()}


def test_a_payload_without_the_optional_fields_takes_their_defaults() -> None:
    data = json.loads(OLD_FULL)
    optional = [f for f in job_codec.FIELDS if not f.required]
    for field in optional:
        del data[field.name]

    job = job_codec.decode(json.dumps(data))

    assert job.max_concurrency is None and job.meta == {}
    assert {f.name for f in optional} == {"max_concurrency", "meta"}


# -- the field list --------------------------------------------------------------------


def test_every_field_survives_encode_and_decode() -> None:
    job = full_job()
    defaults = job_codec.to_dict(Job("t", "q", 0.0, 0, id="x"))

    decoded = job_codec.decode(job_codec.encode(job))

    for field in job_codec.FIELDS:  # a field added to the codec is covered here
        value = getattr(job, field.attribute)
        assert value != defaults[field.name], f"full_job() leaves {field.name} at its default"
        assert getattr(decoded, field.attribute) == value, field.name
    assert decoded == job


@pytest.mark.parametrize("field", [f for f in job_codec.FIELDS if f.required], ids=str)
def test_a_payload_without_a_required_field_is_refused(field: job_codec.Field) -> None:
    data = job_codec.to_dict(full_job())
    del data[field.name]

    with pytest.raises(InvalidPayloadError, match=f"no '{field.name}' field"):
        job_codec.decode(json.dumps(data))


def test_the_template_carries_every_field_but_the_head() -> None:
    job = full_job()

    template = job_codec.template(job)
    rebuilt = json.loads(f'{{"id":"{job.id}","at":{job.at_timestamp},{template}')

    assert set(rebuilt) == {f.name for f in job_codec.FIELDS}
    assert job_codec.from_dict(rebuilt) == job
    assert not set(job_codec.HEAD) & set(json.loads("{" + template))


# -- the Lua side gets its field list from the codec -----------------------------------


def _lua_files() -> Iterator[tuple[str, str]]:
    directory = importlib.resources.files("spinach.brokers") / "redis_scripts"
    for entry in directory.iterdir():
        if entry.name.endswith(".lua"):
            yield entry.name, entry.read_text(encoding="utf-8")


def test_the_scripts_get_the_field_list_from_the_codec() -> None:
    declarations = job_codec.lua_declarations()
    for field in job_codec.FIELDS:
        declared = f"{{'{field.name}', '{field.kind}'}}" in declarations
        assert declared == field.required, field.name
    for name in ("fetch", "move_future_jobs"):  # they decode or build payloads
        assert script_source(name).startswith(declarations)
    assert "JOB_FIELDS" not in script_source("finish")  # nor does it


def test_no_script_lists_a_job_field_or_builds_a_payload_by_hand() -> None:
    """Scripts may read a decoded field (fetch reads the task name of a job to count its
    concurrency), but neither list fields nor write payload JSON: a field added to the
    codec would miss them."""
    names = "|".join(f.name for f in job_codec.FIELDS)
    spelled = re.compile(rf"""['"]({names})['"]|'{{"|":'""")
    for name, text in _lua_files():
        code = "\n".join(line.split("--", 1)[0] for line in text.splitlines())
        found = spelled.search(code)
        assert found is None, f"{name} spells a job field: {found}"


@pytest.fixture
def redis_broker(redis_broker_factory) -> RedisBroker:
    return redis_broker_factory(clock=FakeClock(start=START), namespace="codec")


@pytest.fixture
def admin(redis_server: RedisServer) -> Iterator[redis.Redis]:
    with redis_server.client() as client:
        yield client


def _fired_payload(broker: RedisBroker, admin: redis.Redis, queue: str) -> dict[str, Any]:
    assert broker.move_future_jobs() == 1
    [raw] = admin.lrange(broker.queue_key(queue), 0, -1)
    return json.loads(raw)


def test_a_periodic_job_on_redis_has_every_field_of_the_codec(
    redis_broker: RedisBroker, admin: redis.Redis
) -> None:
    task = Task(_noop, "tick", "ticks", 3, timedelta(seconds=60), 2)
    redis_broker.register_periodic_tasks([task])

    fired = _fired_payload(redis_broker, admin, "ticks")

    expected = job_codec.to_dict(task.new_job(START, id=fired["id"]))
    assert list(fired) == [*job_codec.HEAD, *(n for n in expected if n not in job_codec.HEAD)]
    assert fired == json.loads(job_codec.encode_dict(expected))


def test_a_periodic_task_registered_by_the_previous_version_still_fires(
    redis_broker: RedisBroker, admin: redis.Redis
) -> None:
    admin.hset(redis_broker.key("periodic_tasks"), "tick", OLD_PERIODIC_RECORD)
    admin.zadd(redis_broker.key("periodic"), {"tick": START})

    fired = _fired_payload(redis_broker, admin, "ticks")

    job = job_codec.from_dict(fired)
    assert (job.task_name, job.queue, job.max_retries, job.max_concurrency) == (
        "tick",
        "ticks",
        3,
        2,
    )
    assert job.at_timestamp == START


# -- task options, declared once --------------------------------------------------------


def test_the_options_are_the_keywords_of_tasks_and_task() -> None:
    assert OPTION_NAMES == (
        "queue", "max_retries", "periodicity", "max_concurrency", "rate_limit", "rate_burst",
        "priority", "unique", "unique_key", "unique_ttl", "partition_key",
    )  # fmt: skip
    for method, leading in (
        (Tasks.task, ["self", "func", "name"]),
        (Tasks.add, ["self", "func", "name"]),
    ):
        assert list(inspect.signature(method).parameters) == [*leading, *OPTION_NAMES]
    assert list(inspect.signature(Tasks).parameters) == list(OPTION_NAMES)


#: A value other than the default for each option.
OTHER_VALUES = {
    "queue": "other", "max_retries": 7, "periodicity": timedelta(seconds=5), "max_concurrency": 3,
    "rate_limit": "5/m", "rate_burst": 4, "unique": True, "unique_key": lambda *a, **kw: "k",
    "unique_ttl": 60.0, "priority": 4, "partition_key": "customer-42",
}  # fmt: skip


@pytest.mark.parametrize("option", OPTIONS, ids=lambda o: o.name)
def test_each_option_goes_from_the_registry_default_to_the_task_and_its_jobs(
    option: Any,
) -> None:
    value = OTHER_VALUES[option.name]
    assert value != option.default
    tasks = Tasks(**{option.name: value})

    task = tasks.add(_noop, "registry-default")
    overridden = tasks.add(_noop, "keyword", **{option.name: option.default})
    bare = Task(_noop, "bare")

    assert getattr(tasks, option.name) == value
    assert getattr(task, option.name) == value
    assert getattr(bare, option.name) == option.default
    if option.default is not None:  # None means "the registry's default"
        assert getattr(overridden, option.name) == option.default
    job = task.new_job(START)
    if option.name in JOB_OPTIONS:
        assert getattr(job, option.name) == value
    assert task.options == TaskOptions(**{o: getattr(task, o) for o in OPTION_NAMES})


@pytest.mark.parametrize(
    ("option", "bad", "message"),
    [
        ("queue", "_reserved", "reserved"),
        ("max_retries", -1, "max_retries of task 'bad' must be an int >= 0"),
        ("periodicity", timedelta(0), "periodicity of task 'bad' must be a positive timedelta"),
        ("max_concurrency", 0, "max_concurrency of task 'bad' must be None or an int >= 1"),
        ("rate_limit", "10/parsec", "rate_limit of task 'bad' must be '<count>/<s|m|h>'"),
        ("rate_burst", 0, "rate_burst of task 'bad' must be an int >= 1"),
        ("unique", "yes", "unique of task 'bad' must be True or False"),
        ("priority", 10, "priority of task 'bad' must be None or an int from 0"),
        ("unique_key", "args", "unique_key of task 'bad' must be None or a function"),
        ("unique_ttl", -1, "unique_ttl of task 'bad' must be None or a positive number"),
        ("partition_key", 3, "partition_key of task 'bad' must be None or a non-empty string"),
    ],
)
def test_each_option_is_checked_wherever_it_is_given(option: str, bad: Any, message: str) -> None:
    makers: list[Callable[[], Any]] = [
        lambda: Task(_noop, "bad", **{option: bad}),
        lambda: Tasks().add(_noop, "bad", **{option: bad}),
        lambda: Tasks(**{option: bad}).add(_noop, "bad"),
        lambda: Tasks().task(name="bad", **{option: bad})(_noop),
    ]
    for make in makers:
        with pytest.raises(ValueError, match=re.escape(message)):
            make()


def test_an_unknown_option_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="unexpected keyword argument 'urgency'"):
        Tasks().task(name="t", urgency=3)
    with pytest.raises(TypeError, match="unexpected keyword argument 'urgency'"):
        Tasks(urgency=3)
