"""A worker's task events recorded lazily: raw values in the job's thread, Celery's events
made of them in the publisher's thread.

Every job of a worker sending task events records two entries (see ``EventDispatcher.record``):
``received`` when it starts (``task-received`` then ``task-started``, as the worker takes a
job when it runs it) and ``succeeded`` when it returns. Recording is a tuple appended to the
dispatcher's buffer; the dicts are built, stamped and encoded by the publisher thread, off
the job's path. The fields are Celery's (``celery.worker.request`` and ``celery.app.trace``).
"""

from __future__ import annotations

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
