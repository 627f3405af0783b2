"""Publishing: ``apply_async``/``send_task`` as one pipeline, from a call to a queued job.

``publish`` settles each thing about a message once, in this order (each step reads what
the steps before settled, nothing is looked up twice):

1. task: the one given (``task_type``, as ``Task.apply_async`` passes it), else the name's
   in the raw registry (``app.registered_task``: the app is never finalized, as by Celery's
   ``send_task``); the options, checked against their one declaration
   (``spinach_compat.app.call_options``, which the migration checker reads too);
2. route: ``task_routes`` asked once (a router sees the name, args, kwargs and options);
   the queue (the call's, else the task's, else the route's, else ``task_default_queue``),
   the priority (the call's, else the task's, else the route's, else
   ``task_default_priority``) and its band queue; legacy Celery workers or native;
3. meta: what the worker reads (eta, expires, ids, time limits, headers) and the links
   (``link``, ``link_error``, the facade's chord);
4. encoding: serializer and compression (the call's, else the task's, else the app's);
5. enqueue: ``before_task_publish`` (headers its receivers add travel on), then a Celery
   message to legacy workers, or a native job (collected by ``batch()``, else enqueued
   with the publish retry policy), then ``after_task_publish``; the caller's result.

Publishing needs of the app only what ``Publisher`` lists (a ``Celery`` app is one).
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import inspect
import itertools
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, tzinfo
from typing import TYPE_CHECKING, Any, Protocol

from kombu.exceptions import EncodeError

from .. import signals
from .._state import get_current_task, get_current_worker_task
from ..exceptions import UnsupportedFeature
from ..interop import legacy
from ..utils.saferepr import args_reprs
from . import codec, links, routes, stamps
from .call_options import MUST_BE_NONE as MUST_BE_NONE  # where it was read before
from .call_options import REPRS, check_options
from .priority import band_queue, priority_steps
from .unique import mark_unique

if TYPE_CHECKING:
    from spinach.engine import Engine
    from spinach.job import Job

    from ..result import AsyncResult
    from .defaults import Settings
    from .task import Task

#: The jobs being collected by ``batch()`` in this context, with what to do once sent.
_batch: contextvars.ContextVar[list | None] = contextvars.ContextVar("batch", default=None)


class Publisher(Protocol):
    """What publishing needs of an app (a ``Celery`` app is one)."""

    hostname: str  #: the message's origin

    @property
    def conf(self) -> Settings: ...

    def registered_task(self, name: str) -> Task | None:
        """The task registered under ``name``, if any; never finalizes the app."""

    @property
    def engine(self) -> Engine: ...

    @property
    def timezone(self) -> tzinfo: ...

    def now(self) -> datetime: ...

    def uuid(self) -> str: ...

    def build_native_job(
        self, name: str, at: datetime, args: list, kwargs: dict, job_id: str, queue: str,
        meta: dict,
    ) -> Job: ...  # fmt: skip

    def AsyncResult(self, task_id: str, **kwargs: Any) -> AsyncResult: ...


@dataclass
class Message:
    """A message being published: what each step of the pipeline settled."""

    name: str
    task: Task | None
    task_id: str
    args: list
    kwargs: dict
    options: dict
    routing_key: str = ""  #: the queue asked for (Celery's routing key)
    priority: int | None = None
    queue: str = ""  #: the native queue: the routing key's priority band
    legacy: bool = False  #: sent to legacy Celery workers (``spinach_compat.interop``)
    meta: dict = field(default_factory=dict)  #: what the worker reads, in the job's meta
    serializer: str | None = None  #: None: JSON, the fast path
    compression: str | None = None


def publish(app: Publisher, name: str, args: Any, kwargs: Any, options: dict) -> AsyncResult:
    """Publish one Celery message (see the module docstring); its ``AsyncResult``."""
    message = resolve(app, name, args, kwargs, options)
    policy = _retry_policy(app, options.get("retry_policy"))
    headers, body = _announce(message, policy)
    policy_if_retrying = policy if options.get("retry", app.conf.task_publish_retry) else None
    after = functools.partial(_after_publish, name, body, headers, message.routing_key)
    if app.conf.task_send_sent_event:  # Celery's task-sent event (see spinach_compat.events)
        after = functools.partial(_after_publish_and_event, app, message, after)
    if message.legacy:  # interop: run by a legacy Celery worker
        legacy.send(
            app, name, message.task_id, message.args, message.kwargs, message.routing_key,
            message.meta, policy_if_retrying,
        )  # fmt: skip
        after()
    else:
        _enqueue_native(app, message, after, policy_if_retrying)
    result = _result(app, message)
    if options.get("add_to_parent", True):
        _add_to_parent(result)
    return result


def _add_to_parent(result: AsyncResult) -> None:
    """Record ``result`` as a child of the task running here, if any (as Celery)."""
    parent = get_current_worker_task()
    if parent is not None:
        parent.add_trail(result)


def resolve(app: Publisher, name: str, args: Any, kwargs: Any, options: dict) -> Message:
    """Every decision about a message, each made once, in the pipeline's order."""
    task = options.pop("task_type", None) or app.registered_task(name)  # never finalizes, as Celery
    options, stamped_headers, stamped = stamps.split(options)
    check_options(options, name)
    task_id = options.get("task_id") or app.uuid()
    message = Message(name, task, task_id, list(args or ()), dict(kwargs or {}), options)
    _route(app, message, args, kwargs)
    message.meta = _meta(app, message)
    if stamped_headers:  # as Celery's message headers
        message.meta.update(stamped_headers=stamped_headers, stamps=stamped)
    message.serializer, message.compression = _format(app.conf, task, options)
    if message.legacy:
        _refuse_for_legacy(message)
    return message


# -- 2. route: queue, priority band, legacy or native --------------------------------------


def _route(app: Publisher, message: Message, args: Any, kwargs: Any) -> None:
    """Ask ``task_routes`` once (routers get the call's ``args`` and ``kwargs`` as given):
    the routing key, the priority and its band queue, legacy or native."""
    conf, task, options = app.conf, message.task, message.options
    routers = routes.prepare(conf.task_routes)
    routed = options.get("route_name") or (task.name if task is not None else None) or message.name
    route = routes.route_for(routers, routed, args, kwargs, options, task) or {}
    queue = routes.queue_name(options.get("queue"))
    message.routing_key = queue or options.get("routing_key") or routes.queue_of(conf, task, route)
    message.priority = _priority(conf, task, options, route)
    message.queue = band_queue(message.routing_key, message.priority, priority_steps(conf))
    message.legacy = legacy.is_legacy(app, message.name, routers)


def _priority(conf: Settings, task: Task | None, options: dict, route: dict) -> int | None:
    """The call's priority, else the task's (its own, else ``task_default_priority``), else
    the route's (last, as Celery), else ``task_default_priority``."""
    task_priority = task.priority if task is not None else None
    for priority in (options.get("priority"), task_priority, route.get("priority")):
        if priority is not None:
            return priority
    return conf.task_default_priority


# -- 3. meta and links ---------------------------------------------------------------------


def _meta(app: Publisher, message: Message) -> dict:
    """What the worker needs of the message, carried in the job's meta."""
    options, task = message.options, message.task
    eta = _eta(app, options.get("countdown"), options.get("eta"))
    expires = options.get("expires", task.expires if task is not None else None)
    root_id, parent_id = _lineage(options)
    return {
        **_replacing(message),
        **_group(options),
        **_reprs(options),
        "eta": eta.isoformat() if eta else None,
        "expires": _expires(app, expires),
        "headers": dict(options.get("headers") or {}),
        "ignore_result": options.get("ignore_result"),
        "root_id": root_id or message.task_id,
        "parent_id": parent_id,
        "origin": app.hostname,
        "timelimit": _timelimit(options),
        "priority": message.priority,
        "callbacks": links.encode(options.get("link")),
        "errbacks": links.encode(options.get("link_error")),
        "chord": options.get("spinach_chord"),
        "routing_key": message.routing_key,
    }


def _replacing(message: Message) -> dict:
    """What the meta of a task replacing another (``Task.replace``) adds: the task id it
    takes over, kept apart from its native job id (the replaced job may still be running:
    the broker would not store a second job of its id)."""
    nesting = message.options.get("replaced_task_nesting")
    return {"task_id": message.task_id, "replaced_task_nesting": nesting} if nesting else {}


def _group(options: dict) -> dict:
    """A group member's ``group`` (the group's id) and ``group_index`` (its position), the
    request's fields of those names; nothing outside a group."""
    group_id = options.get("group_id")
    return {"group": group_id, "group_index": options.get("group_index")} if group_id else {}


def _reprs(options: dict) -> dict:
    """The ``argsrepr``/``kwargsrepr`` given (shown in place of the arguments by events,
    logs and result rows, as Celery's headers); none given: nothing (the worker makes them
    from the arguments, only if read)."""
    return {name: options[name] for name in REPRS if options.get(name) is not None}


def job_id_of(task_id: str, meta: dict) -> str:
    """The native job id of a message: its task id, suffixed for a replacing task's."""
    nesting = meta.get("replaced_task_nesting")
    return f"{task_id}.replaced{nesting}" if nesting else task_id


def _lineage(options: dict) -> tuple[str | None, str | None]:
    """``(root_id, parent_id)``: the options', else the calling task's (if any)."""
    parent = get_current_task()
    parent_request = parent.request if parent is not None else None
    parent_id = parent_request.id if parent_request is not None else None
    root_id = options.get("root_id") or (
        parent_request.root_id if parent_request is not None and parent_id else None
    )
    return root_id, options.get("parent_id") or parent_id


def _timelimit(options: dict) -> list | None:
    """Celery's ``timelimit`` header, ``[hard, soft]``, of per-call limits."""
    hard, soft = options.get("time_limit"), options.get("soft_time_limit")
    return None if hard is None and soft is None else [hard, soft]


def _eta(app: Publisher, countdown: float | None, eta: datetime | str | None) -> datetime | None:
    if countdown is not None:
        return app.now() + timedelta(seconds=float(countdown))
    if eta is None:
        return None
    return _aware(app, _parse(eta) if isinstance(eta, str) else eta)


def _expires(app: Publisher, expires: float | datetime | str | None) -> str | None:
    if expires is None:
        return None
    if isinstance(expires, (int, float)):
        return (app.now() + timedelta(seconds=expires)).isoformat()
    moment = datetime.fromisoformat(expires) if isinstance(expires, str) else expires
    return _aware(app, moment).isoformat()


def _aware(app: Publisher, moment: datetime) -> datetime:
    """A naive datetime is in the app's timezone (UTC by default), as in Celery."""
    return moment if moment.tzinfo else moment.replace(tzinfo=app.timezone)


def _parse(value: str | datetime) -> datetime:
    return datetime.fromisoformat(value) if isinstance(value, str) else value


# -- 4. encoding, and what legacy workers cannot carry -------------------------------------


#: Serializers already checked by ``_format`` (known to kombu, not refused).
_CHECKED: set[str | None] = set()


def _format(conf: Settings, task: Task | None, options: dict) -> tuple[str | None, str | None]:
    """``(serializer, compression)`` of a message, as Celery picks them: the call's option,
    else the task's attribute, else the app's setting; JSON is None (the fast path).

    Kept cheap (it runs at every call): settings are read as plain dict items, under their
    new names, which is how ``Settings`` keeps them.
    """
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


def _refuse_for_legacy(message: Message) -> None:
    """Refuse what a Celery message to legacy workers would not carry, before sending."""
    name = message.name
    legacy.refuse_what_is_not_carried(name, message.meta)
    if (message.serializer, message.compression) != (None, None):
        raise UnsupportedFeature(
            f"task {name!r} is routed to legacy workers: it is sent as uncompressed JSON, "
            f"not serializer={message.serializer!r} compression={message.compression!r}"
        )
    if message.meta["chord"]:
        raise UnsupportedFeature(f"task {name!r} is routed to legacy workers: no chords")


# -- 5. enqueue ----------------------------------------------------------------------------


def _retry_policy(app: Publisher, policy: dict | None) -> dict:
    """The call's ``retry_policy`` over ``task_publish_retry_policy``, as Celery merges them."""
    return {**(app.conf.task_publish_retry_policy or {}), **(policy or {})}


def _announce(message: Message, policy: dict) -> tuple[dict, tuple]:
    """Send ``before_task_publish`` with the message's Celery headers and body; both."""
    meta, name = message.meta, message.name
    defaults = _default_reprs(message)
    headers = {"lang": "py", "task": name, "id": message.task_id, "retries": 0, **defaults,
               **meta, **meta["headers"]}  # fmt: skip
    for embedded in ("headers", "callbacks", "errbacks", "priority", "routing_key", "chord"):
        del headers[embedded]
    headers.pop("task_id", None)  # a replacing task's, kept in the meta: Celery's is "id"
    embed = {"callbacks": meta["callbacks"], "errbacks": meta["errbacks"], "chain": None}
    body = (message.args, message.kwargs, {**embed, "chord": None})
    signals.before_task_publish.send(
        sender=name, body=body, exchange="", routing_key=message.routing_key, headers=headers,
        properties={"correlation_id": message.task_id, "reply_to": None}, declare=[],
        retry_policy=policy,
    )  # fmt: skip
    _carry_added_headers(headers, meta, defaults)
    return headers, body


def _default_reprs(message: Message) -> dict:
    """The ``argsrepr``/``kwargsrepr`` headers Celery always sends, made from the arguments
    when none is given, only if a publish signal has a receiver to read them (else the
    worker makes them, only if read)."""
    if not (signals.before_task_publish.has_receivers or signals.after_task_publish.has_receivers):
        return {}
    args, kwargs = args_reprs(tuple(message.args or ()), dict(message.kwargs or {}))
    return {"argsrepr": args, "kwargsrepr": kwargs}


def _carry_added_headers(headers: dict, meta: dict, defaults: dict) -> None:
    """Headers ``before_task_publish`` receivers added or changed travel with the message
    to ``self.request``, as Celery's (django-structlog and tracers put their context there);
    so does an ``argsrepr``/``kwargsrepr`` they changed (the worker reads it over the meta's).
    A default repr left as made stays behind: the worker makes the same one if read."""
    for key, value in headers.items():
        if key in defaults and value is defaults[key]:
            continue
        added = key not in meta and key not in ("lang", "task", "id", "retries")
        if added or (key in REPRS and value != meta[key]):
            meta["headers"][key] = value


def _enqueue_native(
    app: Publisher, message: Message, after: Callable[[], None], policy: dict | None
) -> None:
    """Enqueue the message's native job now, or leave it to the ``batch()`` collecting it."""
    job = _native_job(app, message)
    pending = _batch.get()
    if pending is not None and job.unique_key is None:  # sent with the rest of the batch
        pending.append((job, after))
        return
    _enqueue(app, [job], policy)
    if job.unique_key is not None:  # the stored job of its key (app.unique)
        message.task_id = job.id
    after()


def _native_job(app: Publisher, message: Message) -> Job:
    """The native job of the message, its arguments encoded."""
    fmt = (message.serializer, message.compression)
    args, kwargs, body = _encode(message.name, message.task_id, message.args, message.kwargs, fmt)
    meta = message.meta
    if body is not None:
        meta[codec.BODY] = body
    at = _parse(meta["eta"]) if meta["eta"] else app.now()
    job_id = job_id_of(message.task_id, meta)
    job = app.build_native_job(message.name, at, args, kwargs, job_id, message.queue, meta)
    mark_unique(job, message.task, message.name, message.args, message.kwargs)
    return job


def _encode(
    name: str, task_id: str, args: list, kwargs: dict, fmt: tuple[str | None, str | None]
) -> tuple[list, dict, dict | None]:
    """``codec.encode``; its ``EncodeError`` names the task and the message."""
    try:
        return codec.encode(args, kwargs, *fmt)
    except EncodeError as exc:
        why = f"task {name!r} (id {task_id}): cannot encode its arguments: {exc}"
        raise EncodeError(why) from exc


def _enqueue(app: Publisher, jobs: list, policy: dict | None) -> None:
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


def _after_publish(name: str, body: tuple, headers: dict, routing_key: str) -> None:
    signals.after_task_publish.send(
        sender=name, body=body, headers=headers, exchange="", routing_key=routing_key
    )  # the message's headers, as Celery's (receivers read the task id there)


def _after_publish_and_event(app: Any, message: Message, after: Callable[[], None]) -> None:
    after()
    from ..events.sent import send_task_sent

    send_task_sent(app, message)


def _result(app: Publisher, message: Message) -> AsyncResult:
    """The caller's result; ``ignored`` (``get()`` returns None at once) as Celery's: the
    ``ignore_result`` option, else the task's."""
    result = app.AsyncResult(message.task_id, task_name=message.name)
    ignore = message.options.get("ignore_result")
    if ignore is None and message.task is not None:
        ignore = message.task.ignore_result
    result.ignored = bool(ignore)
    return result


# -- batches -------------------------------------------------------------------------------


@contextlib.contextmanager
def batch(app: Publisher) -> Iterator[None]:
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
