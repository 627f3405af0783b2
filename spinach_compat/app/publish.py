"""Publishing a Celery message as a native job: ``send_task`` and ``apply_async``."""

from __future__ import annotations

import contextlib
import contextvars
import functools
import inspect
import itertools
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from kombu.exceptions import EncodeError

from .. import signals
from .._state import get_current_task
from ..exceptions import UnsupportedFeature
from ..interop import legacy
from . import codec, links
from .priority import band_queue, priority_steps

if TYPE_CHECKING:
    from spinach.engine import Engine

    from ..result import AsyncResult
    from .base import Celery
    from .task import Task

#: Options accepted without effect: they only tune Celery's transport or bookkeeping.
ACCEPTED = frozenset(
    {
        "serializer", "shadow", "add_to_parent", "exchange", "exchange_type", "declare",
        "delivery_mode", "mandatory", "group_id", "group_index", "chord", "chain",
        "reply_to", "replaced_task_nesting", "retries", "result_cls", "task_type",
        "soft_time_limit", "time_limit", "link", "link_error", "priority", "producer",
        "connection", "root_id", "parent_id", "origin", "routing_key", "retry",
        "retry_policy", "expires", "ignore_result", "spinach_chord", "compression",
    }
)  # fmt: skip

#: The jobs being collected by ``batch()`` in this context, with what to do once sent.
_batch: contextvars.ContextVar[list | None] = contextvars.ContextVar("batch", default=None)

#: Options that must stay None: the facade cannot honour them yet.
MUST_BE_NONE = {
    "chord": "chords are not supported yet",
    "chain": "chains are not supported yet",
    "producer": "custom producers are not supported",
    "connection": "custom connections are not supported",
}


def publish(app: Celery, name: str, args: Any, kwargs: Any, options: dict) -> AsyncResult:
    """Enqueue one native job for a Celery message; its ``AsyncResult``."""
    task = options.pop("task_type", None) or app.registered_task(name)
    check_options(options)
    task_id = options.get("task_id") or app.uuid()
    args, kwargs = list(args or ()), dict(kwargs or {})
    base = options.get("queue") or options.get("routing_key") or app.queue_of(task, name)
    meta = _meta(app, task, task_id, options)
    meta["routing_key"] = base
    to_legacy = legacy.is_legacy(app, name)
    fmt = _format(app, task, options)
    if to_legacy:
        legacy.refuse_what_is_not_carried(name, meta)
        if fmt != (None, None):
            raise UnsupportedFeature(
                f"task {name!r} is routed to legacy workers: it is sent as uncompressed JSON, "
                f"not serializer={fmt[0]!r} compression={fmt[1]!r}"
            )
        if meta["chord"]:
            raise UnsupportedFeature(f"task {name!r} is routed to legacy workers: no chords")
    queue = band_queue(base, meta["priority"], priority_steps(app.conf))
    headers = {"lang": "py", "task": name, "id": task_id, "retries": 0, **meta, **meta["headers"]}
    for embedded in ("headers", "callbacks", "errbacks", "priority", "routing_key", "chord"):
        del headers[embedded]
    embed = {"callbacks": meta["callbacks"], "errbacks": meta["errbacks"], "chain": None}
    body = (args, kwargs, {**embed, "chord": None})
    policy = _retry_policy(app, options.get("retry_policy"))
    signals.before_task_publish.send(
        sender=name, body=body, exchange="", routing_key=base, headers=headers,
        properties={"correlation_id": task_id, "reply_to": None}, declare=[],
        retry_policy=policy,
    )  # fmt: skip
    _carry_added_headers(headers, meta)
    retry = options.get("retry", app.conf.task_publish_retry)
    if to_legacy:  # interop: run by a legacy Celery worker
        legacy.send(app, name, task_id, args, kwargs, base, meta, policy if retry else None)
    else:
        encoded_args, encoded_kwargs, encoded = _encode(name, task_id, args, kwargs, fmt)
        if encoded is not None:
            meta[codec.BODY] = encoded
        at = _parse(meta["eta"]) if meta["eta"] else app.now()
        job = app.build_native_job(name, at, encoded_args, encoded_kwargs, task_id, queue, meta)
        pending = _batch.get()
        if pending is not None:  # sent with the rest of the batch, in one round trip
            pending.append((job, lambda: _after_publish(name, body, headers, base)))
            return _result(app, name, task_id, _ignores_result(task, options))
        _enqueue(app, [job], policy if retry else None)
    _after_publish(name, body, headers, base)
    return _result(app, name, task_id, _ignores_result(task, options))


def _carry_added_headers(headers: dict, meta: dict) -> None:
    """Headers ``before_task_publish`` receivers added or changed travel with the message
    to ``self.request``, as Celery's (django-structlog and tracers put their context there)."""
    for key, value in headers.items():
        if key not in meta and key not in ("lang", "task", "id", "retries"):
            meta["headers"][key] = value


#: Serializers already checked by ``_format`` (known to kombu, not refused).
_CHECKED: set[str | None] = set()


def _format(app: Celery, task: Task | None, options: dict) -> tuple[str | None, str | None]:
    """``(serializer, compression)`` of a message, as Celery picks them: the call's option,
    else the task's attribute, else the app's setting; JSON is None (the fast path).

    Kept cheap (it runs at every call): settings are read as plain dict items, under their
    new names, which is how ``Settings`` keeps them.
    """
    conf = app.conf
    serializer = (
        options.get("serializer") or _explicit_serializer(task) or dict.get(conf, "task_serializer")
    )
    compression = (
        options.get("compression")
        or getattr(task, "compression", None)
        or dict.get(conf, "task_compression")
    )
    if serializer in codec.JSON_NAMES:
        return None, compression
    if serializer not in _CHECKED:  # e.g. task_serializer set after the engine started
        codec.check_serializer(serializer, "serializer (the call's, the task's or task_serializer)")
        _CHECKED.add(serializer)
    return serializer, compression


def _explicit_serializer(task: Task | None) -> str | None:
    """The serializer set on ``task`` (None: the app's), without reading the app's setting."""
    if task is None:
        return None
    found = task.__dict__.get("serializer")
    if found is None:
        cls: type = type(task)
        found = _static_serializer(cls)
    return getattr(found, "value", found)  # a ``FromConfig``: the value set on the class


@functools.lru_cache(maxsize=1024)
def _static_serializer(cls: type) -> Any:
    """The ``serializer`` attribute of a task class as defined (a ``FromConfig`` or value)."""
    return inspect.getattr_static(cls, "serializer", None)


def _encode(
    name: str, task_id: str, args: list, kwargs: dict, fmt: tuple[str | None, str | None]
) -> tuple[list, dict, dict | None]:
    """``codec.encode``; its ``EncodeError`` names the task and the message."""
    try:
        return codec.encode(args, kwargs, *fmt)
    except EncodeError as exc:
        why = f"task {name!r} (id {task_id}): cannot encode its arguments: {exc}"
        raise EncodeError(why) from exc


def _ignores_result(task: Task | None, options: dict) -> bool:
    """The effective ``ignore_result``: the option's, else the task's (as the worker)."""
    ignore = options.get("ignore_result")
    if ignore is None and task is not None:
        ignore = task.ignore_result
    return bool(ignore)


def _result(app: Celery, name: str, task_id: str, ignored: bool) -> AsyncResult:
    """The caller's result; ``ignored`` (``get()`` returns None at once) as Celery's."""
    from ..result import AsyncResult

    result = AsyncResult(task_id, app=app, task_name=name)
    result.ignored = ignored
    return result


def _after_publish(name: str, body: tuple, headers: dict, routing_key: str) -> None:
    signals.after_task_publish.send(
        sender=name, body=body, headers=headers, exchange="", routing_key=routing_key
    )  # the message's headers, as Celery's (receivers read the task id there)


@contextlib.contextmanager
def batch(app: Celery) -> Iterator[None]:
    """Collect the native jobs published inside, then enqueue them in one round trip.

    All or none: an exception inside sends nothing. Nested batches join the outer one.
    """
    if _batch.get() is not None:
        yield
        return
    pending: list[tuple[Any, Callable[[], None]]] = []
    token = _batch.set(pending)
    try:
        yield
    finally:
        _batch.reset(token)
    if pending:
        policy = _retry_policy(app, None) if app.conf.task_publish_retry else None
        _enqueue(app, [job for job, _ in pending], policy)
    for _, after in pending:
        after()


def check_options(options: dict) -> None:
    """Raise ``UnsupportedFeature`` for an ``apply_async`` option the facade cannot honour."""
    for option, why in MUST_BE_NONE.items():
        if options.get(option) is not None:
            raise UnsupportedFeature(
                f"apply_async({option}={options[option]!r}): {why} (see migration_guide/)"
            )
    unknown = set(options) - ACCEPTED - {"task_id", "queue", "countdown", "eta", "headers"}
    if unknown:
        raise UnsupportedFeature(
            f"apply_async options not supported by spinach_compat: {sorted(unknown)} "
            "(see migration_guide/)"
        )
    codec.check_serializer(options.get("serializer"), "apply_async() option serializer")
    codec.check_compression(options.get("compression"), "apply_async() option compression")


def _meta(app: Celery, task: Task | None, task_id: str, options: dict) -> dict:
    """What the worker needs of the message, carried in the job's meta."""
    eta = _eta(app, options.get("countdown"), options.get("eta"))
    expires = options.get("expires", task.expires if task is not None else None)
    parent = get_current_task()
    parent_request = parent.request if parent is not None else None
    parent_id = parent_request.id if parent_request is not None else None
    root_id = options.get("root_id") or (
        parent_request.root_id if parent_request is not None and parent_id else None
    )
    return {
        "eta": eta.isoformat() if eta else None,
        "expires": _expires(app, expires),
        "headers": dict(options.get("headers") or {}),
        "ignore_result": options.get("ignore_result"),
        "root_id": root_id or task_id,
        "parent_id": options.get("parent_id") or parent_id,
        "origin": app.hostname,
        "timelimit": _timelimit(options),
        "priority": _priority(app, task, options),
        "callbacks": links.encode(options.get("link")),
        "errbacks": links.encode(options.get("link_error")),
        "chord": options.get("spinach_chord"),
    }


def _priority(app: Celery, task: Task | None, options: dict) -> int | None:
    """The message priority: the call's, else the task's, else ``task_default_priority``."""
    priority = options.get("priority")
    if priority is None and task is not None:
        priority = task.priority
    return app.conf.task_default_priority if priority is None else priority


def _timelimit(options: dict) -> list | None:
    """Celery's ``timelimit`` header, ``[hard, soft]``, of per-call limits."""
    hard, soft = options.get("time_limit"), options.get("soft_time_limit")
    return None if hard is None and soft is None else [hard, soft]


def _eta(app: Celery, countdown: float | None, eta: datetime | str | None) -> datetime | None:
    if countdown is not None:
        return app.now() + timedelta(seconds=float(countdown))
    if eta is None:
        return None
    return _aware(app, _parse(eta) if isinstance(eta, str) else eta)


def _expires(app: Celery, expires: float | datetime | str | None) -> str | None:
    if expires is None:
        return None
    if isinstance(expires, (int, float)):
        return (app.now() + timedelta(seconds=expires)).isoformat()
    moment = datetime.fromisoformat(expires) if isinstance(expires, str) else expires
    return _aware(app, moment).isoformat()


def _aware(app: Celery, moment: datetime) -> datetime:
    """A naive datetime is in the app's timezone (UTC by default), as in Celery."""
    return moment if moment.tzinfo else moment.replace(tzinfo=app.timezone)


def _parse(value: str | datetime) -> datetime:
    return datetime.fromisoformat(value) if isinstance(value, str) else value


def _retry_policy(app: Celery, policy: dict | None) -> dict:
    """The call's ``retry_policy`` over ``task_publish_retry_policy``, as Celery merges them."""
    return {**(app.conf.task_publish_retry_policy or {}), **(policy or {})}


def _enqueue(app: Celery, jobs: list, policy: dict | None) -> None:
    """Enqueue, retrying on connection errors per ``policy`` (None: no retry), as kombu.

    ``max_retries`` None retries forever; a key left out takes kombu's default.
    """
    engine = app.engine
    if policy is None:
        engine.schedule_jobs(jobs)
        return
    max_retries = policy.get("max_retries")
    waits = _waits(
        float(policy.get("interval_start", 1)),
        float(policy.get("interval_step", 1)),
        float(policy.get("interval_max", 1)),
    )
    for retries in itertools.count():
        try:
            engine.schedule_jobs(jobs)
            return
        except Exception as exc:
            retryable = _is_connection_error(engine, exc, policy.get("retry_errors") or ())
            if not retryable or (max_retries is not None and retries >= int(max_retries)):
                raise
        wait = next(waits)
        if wait > 0:
            time.sleep(wait)


def _waits(start: float, step: float, maximum: float) -> Iterator[float]:
    """Seconds before each retry, as kombu's ``retry_over_time``: ``start``, growing by
    ``step`` while it stays within ``start + maximum`` (then repeating), capped at ``maximum``.
    """
    wait = start
    while True:
        yield min(wait, maximum)
        if wait + step <= start + maximum:
            wait += step


def _is_connection_error(engine: Engine, exc: BaseException, extra: Any = ()) -> bool:
    """Whether ``exc`` is worth a retry: a connection error, or one of ``extra``."""
    errors = getattr(engine.broker, "connection_errors", ())
    return isinstance(exc, (ConnectionError, *errors, *tuple(extra)))
