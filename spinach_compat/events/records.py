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

#: Different (task name, retries, eta, expires) whose JSON a writer keeps: more saves the
#: writing of more tasks' constant members, at the cost of memory (about 200 bytes each).
TEMPLATES_LIMIT = 1024


class JsonWriter:
    """Writes the events of records as JSON objects, for one process's stamp (its hostname,
    offset and pid, the members every event carries).

    A task's events mostly differ by their uuid, time, clock, arguments and result: the
    members of a task that seldom change (its name, retries, eta and expires, the stamp) are
    written once per task and kept as templates. A method raises ``TypeError`` if a value
    is not one JSON takes as is (the caller then makes the events the usual way).
    """

    def __init__(self, hostname: str, utcoffset: float, pid: int):
        self.stamp = f',"hostname":{_quote(hostname)},"utcoffset":{_value(utcoffset)},"pid":{pid}'
        self._templates: dict[tuple[Any, ...], tuple[str, str]] = {}

    def received(self, clock: int, now: float, values: tuple[Any, ...]) -> str:
        """``received``'s two events (of its ``values``), separated by a comma; the values
        come as one tuple: a call with them spread costs about 0.4 us more."""
        uuid, name, args, kwargs, root_id, parent_id, retries, eta, expires = values
        key = (name, retries, eta, expires)
        template = self._templates.get(key)
        if template is None:
            template = self._template(key)
        head, tail = template
        uuid, when = _quote(uuid), repr(now)
        return (
            f'{{"type":"task-received","uuid":{uuid}{head}{_quote(args)},"kwargs":'
            f'{_quote(kwargs)},"root_id":{_optional(root_id)},"parent_id":'
            f'{_optional(parent_id)}{tail},"clock":{clock},"timestamp":{when}}},'
            f'{{"type":"task-started","uuid":{uuid}{self.stamp},"clock":{clock + 1},'
            f'"timestamp":{when}}}'
        )

    def succeeded(self, clock: int, now: float, values: tuple[Any, ...]) -> str:
        """``succeeded``'s event (of its ``values``)."""
        uuid, result, runtime = values
        return (
            f'{{"type":"task-succeeded","uuid":{_quote(uuid)},"result":{_quote(result)},'
            f'"runtime":{_value(runtime)}{self.stamp},"clock":{clock},"timestamp":{now!r}}}'
        )

    def _template(self, key: tuple[Any, ...]) -> tuple[str, str]:
        """The members before ``args`` and after ``parent_id`` of a task's received event."""
        name, retries, eta, expires = key
        template = (
            f',"name":{_quote(name)},"args":',
            f',"retries":{_value(retries)},"eta":{_value(eta)},"expires":{_value(expires)}'
            f"{self.stamp}",
        )
        if len(self._templates) >= TEMPLATES_LIMIT:
            self._templates.clear()
        self._templates[key] = template
        return template


#: The records written as JSON directly: their ``JsonWriter`` method and how many events
#: they give.
JSON_WRITERS: dict[Callable[..., Any], tuple[Callable[..., str], int]] = {
    received: (JsonWriter.received, 2),
    succeeded: (JsonWriter.succeeded, 1),
}

#: JSON's quoting of a str (the json module's, in C); ``TypeError`` for anything else.
_quote = encode_basestring_ascii


def _optional(value: Any) -> str:
    """An optional str (an id) in JSON."""
    return "null" if value is None else _quote(value)


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
