"""Serializers and compression through kombu's registry, gated by accept_content as Celery.

Each round trip runs through real worker threads, on the MemoryBroker and on a throwaway
Redis server. A body whose content type the worker's app does not accept is dead-lettered
unread: a pickled tripwire (an object whose unpickling creates a file) proves it.
"""

from __future__ import annotations

import base64
import json
import pickle
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace
from unittest import mock

import pytest
from kombu.exceptions import ContentDisallowed, EncodeError

from spinach_compat.app import codec
from spinach_compat.exceptions import UnsupportedFeature
from spinach_compat.interop.message import CELERY_RESULT_HEADER
from spinach_compat.interop.results import celery_key

from ..helpers import wait_until
from .conftest import WAIT


def _touch(path: str) -> str:
    Path(path).touch()
    return path


class Tripwire:
    """Unpickling it creates ``path``: the proof that a pickle was (or was not) loaded."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return _touch, (self.path,)


@pytest.fixture(params=["memory", "redis"])
def broker_url(request) -> str:
    """The broker and result backend of the test's app: the MemoryBroker or a real Redis."""
    if request.param == "memory":
        return "memory://"
    return request.getfixturevalue("redis_url")


@pytest.fixture
def serial_app(make_app, broker_url):
    def make(**conf):
        app = make_app(broker=broker_url, backend=broker_url, **conf)

        @app.task(name="echo")
        def echo(*args, **kwargs):
            return [args, kwargs]

        return app, echo

    return make


# -- round trips ----------------------------------------------------------------------------

#: Serializer -> arguments it carries, and what a task receives of them.
ROUND_TRIPS = {
    "json": (
        (1, datetime(2030, 1, 2, tzinfo=timezone.utc)),
        {"d": Decimal("1.5")},
        [[1, datetime(2030, 1, 2, tzinfo=timezone.utc)], {"d": Decimal("1.5")}],
    ),
    "pickle": (({1, 2}, (3, 4)), {"b": b"\x00\xff"}, [({1, 2}, (3, 4)), {"b": b"\x00\xff"}]),
    "msgpack": ((1, "two", [3.5]), {"b": b"\x00\xff"}, [[1, "two", [3.5]], {"b": b"\x00\xff"}]),
    "yaml": (
        (datetime(2030, 1, 2, 3, 4), {"k": [1]}),
        {"x": None},
        [[datetime(2030, 1, 2, 3, 4), {"k": [1]}], {"x": None}],
    ),
}


@pytest.mark.parametrize("serializer", sorted(ROUND_TRIPS))
def test_each_serializer_round_trips_through_a_worker(serial_app, serializer):
    app, echo = serial_app(
        task_serializer=serializer, accept_content=[serializer],
        result_serializer=serializer, result_accept_content=[serializer],
    )  # fmt: skip
    args, kwargs, expected = ROUND_TRIPS[serializer]
    app.start_worker(concurrency=1, block=False)
    result = echo.delay(*args, **kwargs)
    got = result.get(timeout=WAIT)
    if serializer == "pickle":  # a tuple stays one: the task's *args
        got = [got[0], got[1]]
        expected = [expected[0], expected[1]]
    assert got == expected
    assert result.state == "SUCCESS"


def test_the_call_s_serializer_wins_and_the_job_carries_an_encoded_body(make_app):
    app = make_app(accept_content=["json", "pickle"])
    seen = []

    @app.task
    def keep(value):
        seen.append(value)

    engine = app.engine
    with mock.patch.object(engine, "schedule_jobs", wraps=engine.schedule_jobs) as spy:
        result = keep.apply_async(({"a", "b"},), serializer="pickle")
    (job,) = spy.call_args.args[0]
    assert (list(job.task_args), job.task_kwargs) == ([], {})  # the native payload stays JSON
    assert job.meta["body"]["content_type"] == "application/x-python-serialize"
    json.dumps(job.meta)
    app.start_worker(concurrency=1, block=False)
    result.get(timeout=WAIT)
    assert seen == [{"a", "b"}]


def test_a_retry_keeps_the_job_s_serializer(make_app):
    app = make_app(task_serializer="pickle", accept_content=["pickle"])
    seen = []

    @app.task(bind=True)
    def again(self, value):
        seen.append(value)
        if self.request.retries == 0:
            raise self.retry(args=(frozenset(value) | {9},), countdown=0)
        return sorted(value)

    app.start_worker(concurrency=1, block=False)
    assert again.delay({1}).get(timeout=WAIT) == [1, 9]
    assert seen == [{1}, frozenset({1, 9})]


@pytest.mark.parametrize("compression", ["zlib", "gzip", "bzip2"])
def test_compression_round_trip(serial_app, compression):
    app, echo = serial_app(task_compression=compression)
    app.start_worker(concurrency=1, block=False)
    when = datetime(2030, 1, 2, tzinfo=timezone.utc)
    assert echo.delay("x" * 1000, when=when).get(timeout=WAIT) == [["x" * 1000], {"when": when}]


def test_the_compression_option_per_call(make_app):
    app = make_app()
    _, _, body = codec.encode(["x" * 1000], {}, None, "zlib")
    assert body["compression"] == "application/x-gzip"
    assert len(base64.b64decode(body["data"])) < 100

    @app.task
    def size(text):
        return len(text)

    app.start_worker(concurrency=1, block=False)
    assert size.apply_async(("x" * 1000,), compression="bzip2").get(timeout=WAIT) == 1000


# -- what is not accepted is never decoded -----------------------------------------------------


def test_a_pickle_the_worker_does_not_accept_is_dead_lettered_unread(
    serial_app, broker_url, tmp_path
):
    """As Celery: the producer may send pickle (accept_content gates the worker only)."""
    app, echo = serial_app(task_serializer="pickle")  # accept_content stays ['json']
    tripwire = tmp_path / "unpickled"
    result = echo.delay(Tripwire(str(tripwire)))
    app.start_worker(concurrency=1, block=False)
    broker = app.engine.broker
    assert wait_until(lambda: broker.list_dead_letters(), WAIT)
    (letter,) = broker.list_dead_letters()
    assert letter.id == result.id
    for part in ("echo", result.id, "application/x-python-serialize", "accept_content"):
        assert part in letter.reason
    assert not tripwire.exists()  # never unpickled
    assert result.state == "FAILURE"
    assert isinstance(result.result, ContentDisallowed)
    with pytest.raises(ContentDisallowed):
        result.get(timeout=WAIT)
    # Nothing is lost: once the app accepts pickle, the dead letter runs.
    app.conf.accept_content = ["json", "pickle"]
    assert broker.retry_dead_letters() == 1
    assert wait_until(lambda: result.state == "SUCCESS", WAIT)
    assert tripwire.exists()


def test_celery_also_publishes_pickle_without_accept_content_and_refuses_it_at_the_worker():
    """What the facade mirrors: Celery's producer sends, its worker's trace refuses."""
    celery = pytest.importorskip("celery")
    from celery.app.trace import trace_task_ret
    from kombu.serialization import dumps

    app = celery.Celery("c", broker="memory://", set_as_current=False)

    @app.task(name="echo")
    def echo(value):
        return value

    echo.apply_async(({1},), serializer="pickle")  # published: the producer is allowed
    content_type, encoding, body = dumps([[{1}], {}, {}], serializer="pickle")
    with pytest.raises(ContentDisallowed):
        trace_task_ret("echo", "id", {}, body, content_type, encoding, app=app)


def test_a_pickled_result_is_never_unpickled_unless_accepted(serial_app, tmp_path):
    app, _ = serial_app(result_serializer="pickle", result_accept_content=["json"])
    tripwire = tmp_path / "unpickled"
    app.backend.mark_as_done("t", Tripwire(str(tripwire)))
    result = app.AsyncResult("t")
    assert result.state == "SUCCESS"  # the state is read without the result
    with pytest.raises(ContentDisallowed):
        _ = result.result
    assert not tripwire.exists()
    app.conf.result_accept_content = ["pickle"]
    assert result.result == str(tripwire) and tripwire.exists()


def test_a_pickled_result_is_never_overwritten_once_a_success(serial_app):
    app, _ = serial_app(result_serializer="pickle", result_accept_content=["pickle"])
    app.backend.mark_as_done("t", {1, 2})
    app.backend.mark_as_failure("t", ValueError("late"))
    assert (app.AsyncResult("t").state, app.AsyncResult("t").result) == ("SUCCESS", {1, 2})


# -- Celery's stored format ------------------------------------------------------------------


def test_celery_clients_read_our_pickled_results_in_celery_s_key(make_app, redis_url):
    celery = pytest.importorskip("celery")
    app = make_app(
        broker=redis_url, backend=redis_url, result_serializer="pickle",
        result_accept_content=["pickle"], result_extended=True,
    )  # fmt: skip
    request = SimpleNamespace(
        task="echo", args=[1], kwargs={}, hostname="w1", retries=0,
        delivery_info={"routing_key": "celery"}, **{CELERY_RESULT_HEADER: True},
    )  # fmt: skip
    app.backend.mark_as_done("tid", {1, 2}, request=request)
    raw = app.backend.broker.redis.get(celery_key("tid"))
    assert pickle.loads(raw)["result"] == {1, 2}  # Celery's layout, pickled whole
    client = celery.Celery("c", backend=redis_url, set_as_current=False)
    client.conf.update(result_serializer="pickle", result_accept_content=["pickle"])
    theirs = client.AsyncResult("tid")
    assert (theirs.get(timeout=WAIT), theirs.name, theirs.args) == ({1, 2}, "echo", [1])


def test_result_extended_stores_what_celery_stores(serial_app):
    app, echo = serial_app(result_extended=True)
    app.start_worker(concurrency=1, block=False)
    result = echo.delay(2, b=3)
    result.get(timeout=WAIT)
    fresh = app.AsyncResult(result.id)
    got = (fresh.name, fresh.args, fresh.kwargs, fresh.worker, fresh.retries, fresh.queue)
    assert got == ("echo", [2], {"b": 3}, app.hostname, 0, "celery")
    assert set(_celery_extended_meta()) <= set(app.backend.get_task_meta(result.id))


def _celery_extended_meta() -> dict:
    """The meta keys real Celery stores with ``result_extended``."""
    celery = pytest.importorskip("celery")
    from celery.app.task import Context

    app = celery.Celery("c", backend="cache+memory://", set_as_current=False)
    app.conf.result_extended = True
    request = Context(
        task="echo", args=[2], kwargs={"b": 3}, hostname="w", retries=0,
        delivery_info={"routing_key": "celery"},
    )  # fmt: skip
    meta = app.backend._get_result_meta(4, "SUCCESS", None, request)
    return {**meta, "task_id": "id"}


def test_without_result_extended_only_the_name_is_kept(serial_app):
    app, echo = serial_app()
    app.start_worker(concurrency=1, block=False)
    result = echo.delay(2)
    result.get(timeout=WAIT)
    fresh = app.AsyncResult(result.id)
    assert (fresh.name, fresh.args, fresh.kwargs, fresh.worker) == ("echo", None, None, None)


# -- EncodeError ----------------------------------------------------------------------------


def test_an_unserializable_argument_raises_encode_error_as_celery(impl):
    app = impl.Celery("enc", broker="memory://", set_as_current=False)

    @app.task
    def take(value):
        return value

    with pytest.raises(EncodeError):
        take.delay(object())
    try:
        take.apply_async((object(),))
    except EncodeError as exc:  # what a migrated ``except EncodeError`` catches
        caught = exc
    assert isinstance(caught, EncodeError)


def test_an_unpicklable_argument_raises_encode_error(make_app):
    app = make_app(task_serializer="pickle")

    @app.task
    def take(value):
        return value

    with pytest.raises(EncodeError, match="take"):
        take.delay(lambda: None)


# -- refused ---------------------------------------------------------------------------------


def test_message_signing_is_refused_loudly(make_app):
    app = make_app()
    with pytest.raises(UnsupportedFeature, match="message signing"):
        app.setup_security()
    signed = make_app(task_serializer="auth", accept_content=["auth"])
    with pytest.raises(UnsupportedFeature, match="message signing"):
        _ = signed.engine


def test_the_default_accepts_json_only():
    assert codec.accept_set(None) == {"application/json"}
    assert json.loads(json.dumps(sorted(codec.accept_set(["json", "pickle"])))) == [
        "application/json",
        "application/x-python-serialize",
    ]
