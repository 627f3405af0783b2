"""A worker's task events recorded lazily: raw values in the job's thread, Celery's events
made of them in the publisher's thread.

Every job of a worker sending task events records two entries (see ``EventDispatcher.record``):
``received`` when it starts (``task-received`` then ``task-started``, as the worker takes a
job when it runs it) and ``succeeded`` when it returns. Recording is a tuple appended to the
dispatcher's buffer; the dicts are built, stamped and encoded by the publisher thread, off
the job's path. The fields are Celery's (``celery.worker.request`` and ``celery.app.trace``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from json.encoder import encode_basestring_ascii
from typing import Any


def received(
    uuid: str, name: str, args: str, kwargs: str, root_id: Any, parent_id: Any,
    retries: int, eta: Any, expires: Any,
) -> list[dict[str, Any]]:  # fmt: skip
    """``task-received`` and ``task-started`` of a job the worker starts."""
    return [
        {
            "type": "task-received", "uuid": uuid, "name": name, "args": args,
            "kwargs": kwargs, "root_id": root_id, "parent_id": parent_id,
            "retries": retries, "eta": eta, "expires": expires,
        },
        {"type": "task-started", "uuid": uuid},
    ]  # fmt: skip


def succeeded(uuid: str, result: str, runtime: float) -> list[dict[str, Any]]:
    """``task-succeeded``: the result's repr (made in the job's thread) and the runtime."""
    return [{"type": "task-succeeded", "uuid": uuid, "result": result, "runtime": runtime}]


def given(event: dict[str, Any]) -> list[dict[str, Any]]:
    """An event sent whole (``EventDispatcher.put``)."""
    return [event]


# -- JSON made directly (the publisher's fast path) ------------------------------------------


def stamp_json(hostname: str, utcoffset: float, pid: int) -> str:
    """The fields every event of a process carries, as JSON members (cached by the caller)."""
    return f',"hostname":{_quote(hostname)},"utcoffset":{_value(utcoffset)},"pid":{pid}'


def received_json(
    stamp: str, clock: int, now: float, uuid: str, name: str, args: str, kwargs: str,
    root_id: Any, parent_id: Any, retries: int, eta: Any, expires: Any,
) -> str:  # fmt: skip
    """``received``'s two events as JSON objects (separated by a comma); ``TypeError`` if a
    value is not one JSON takes as is."""
    uuid, when = _quote(uuid), repr(now)
    return (
        f'{{"type":"task-received","uuid":{uuid},"name":{_quote(name)},'
        f'"args":{_quote(args)},"kwargs":{_quote(kwargs)},"root_id":{_value(root_id)},'
        f'"parent_id":{_value(parent_id)},"retries":{_value(retries)},"eta":{_value(eta)},'
        f'"expires":{_value(expires)}{stamp},"clock":{clock},"timestamp":{when}}},'
        f'{{"type":"task-started","uuid":{uuid}{stamp},"clock":{clock + 1},"timestamp":{when}}}'
    )


def succeeded_json(
    stamp: str, clock: int, now: float, uuid: str, result: str, runtime: float
) -> str:
    """``succeeded``'s event as a JSON object."""
    return (
        f'{{"type":"task-succeeded","uuid":{_quote(uuid)},"result":{_quote(result)},'
        f'"runtime":{_value(runtime)}{stamp},"clock":{clock},"timestamp":{now!r}}}'
    )


#: The records made into JSON directly: their JSON maker and how many events they give.
JSON_MAKERS: dict[Callable[..., Any], tuple[Callable[..., str], int]] = {
    received: (received_json, 2),
    succeeded: (succeeded_json, 1),
}


def _quote(text: str) -> str:
    if type(text) is not str:
        raise TypeError(f"not a str: {text!r}")
    return encode_basestring_ascii(text)


def _value(value: Any) -> str:
    """A JSON scalar as the json module writes it; ``TypeError`` for anything else."""
    kind = type(value)
    if kind is str:
        return encode_basestring_ascii(value)
    if value is None:
        return "null"
    if kind is int or (kind is float and math.isfinite(value)):
        return repr(value)
    if kind is bool:
        return "true" if value else "false"
    raise TypeError(f"not a JSON scalar: {value!r}")
