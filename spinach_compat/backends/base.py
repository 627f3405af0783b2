"""What result backends share: no backend (``DisabledBackend``), the meta of a task as
Celery lays it out, exceptions in JSON."""

from __future__ import annotations

import sys
import time
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, TypeAlias

from kombu.utils import json as kombu_json

from .. import states
from ..exceptions import TimeoutError

if TYPE_CHECKING:
    from ..app.base import Celery
    from ..app.context import Context


class DisabledBackend:
    """No result backend configured: storing does nothing, reading raises (as Celery)."""

    #: As Celery's: results are not joined by waiting on the backend.
    supports_native_join = False

    def __init__(self, app: Celery):
        self.app = app

    def store_result(self, *args: Any, **kwargs: Any) -> None:
        return None

    mark_as_done = mark_as_failure = mark_as_retry = mark_as_revoked = store_result

    def is_revoked(self, task_id: str) -> bool:
        return False

    def _disabled(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(
            "No result backend is configured. Please set result_backend "
            "(memory:// or redis://) to read task results."
        )

    get_task_meta = get_state = wait_for = forget = _disabled
    task_result_exists = save_group = restore_group = delete_group = _disabled

    def get_state_or_none(self, task_id: str) -> str | None:
        """None: nothing is stored without a backend."""
        return None

    #: Nothing is stored, so nothing expires.
    expires: float | None = None

    def exception_to_python(self, data: Any) -> BaseException | None:
        """A stored exception rebuilt (as with a backend: Celery's works without one)."""
        return exception_to_python(data)


class StateMarks:
    """Celery's ``mark_as_*`` calls of a backend, each one ``store_result``."""

    def store_result(
        self, task_id: str, result: Any, state: str, traceback: str | None = None,
        request: Context | None = None, **kwargs: Any,
    ) -> Any:  # fmt: skip
        raise NotImplementedError

    def mark_as_started(self, task_id: str, **meta: Any) -> Any:
        return self.store_result(task_id, meta, states.STARTED)

    def mark_as_done(
        self, task_id: str, result: Any, request: Context | None = None, **kw: Any
    ) -> Any:
        return self.store_result(task_id, result, states.SUCCESS, request=request)

    def mark_as_failure(
        self, task_id: str, exc: BaseException, traceback: str | None = None,
        request: Context | None = None, **kw: Any,
    ) -> Any:  # fmt: skip
        return self.store_result(task_id, exc, states.FAILURE, traceback, request)

    def mark_as_retry(
        self, task_id: str, exc: BaseException | None, traceback: str | None = None,
        request: Context | None = None, **kw: Any,
    ) -> Any:  # fmt: skip
        return self.store_result(task_id, exc, states.RETRY, traceback, request)

    def mark_as_revoked(
        self, task_id: str, reason: str = "", request: Context | None = None
    ) -> Any:
        from ..exceptions import TaskRevokedError

        exc = TaskRevokedError(reason)
        return self.store_result(task_id, exc, states.REVOKED, None, request)


def next_wait(deadline: float | None, interval: float) -> float:
    """How long the next wait for a notification may last: ``interval`` (at least 1 s),
    cut to what is left before ``deadline`` (``time.monotonic``); TimeoutError past it."""
    longest = max(interval, 1.0)
    if deadline is None:
        return longest
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise TimeoutError("The operation timed out.")
    return min(remaining, longest)


def prepare_exception(exc: BaseException) -> dict[str, Any]:
    """An exception as JSON: ``{exc_type, exc_message, exc_module}`` as Celery stores it."""
    cls = type(exc)
    return {
        "exc_type": getattr(cls, "__qualname__", cls.__name__),
        "exc_message": _json_safe(list(exc.args)),
        "exc_module": cls.__module__,
    }


def _json_safe(values: list) -> list:
    safe = []
    for value in values:
        try:
            kombu_json.dumps(value)
            safe.append(value)
        except (TypeError, ValueError):
            safe.append(repr(value))
    return safe


def exception_to_python(data: Any) -> BaseException | None:
    """Rebuild a stored exception: its own class if its module is loaded, else a stand-in.

    Modules are never imported here (as in Celery), so stored data cannot make the reader
    import code.
    """
    if not data:
        return None
    if isinstance(data, BaseException):
        return data
    name, module_name = data["exc_type"], data.get("exc_module")
    cls: Any = sys.modules.get(module_name) if module_name else None
    for part in name.split(".") if cls is not None else ():
        cls = getattr(cls, part, None)
    if not (isinstance(cls, type) and issubclass(cls, BaseException)):
        cls = _stand_in(name, module_name)
    message = data.get("exc_message", ())
    args = message if isinstance(message, (list, tuple)) else (message,)
    try:
        return cls(*args)
    except Exception:
        return _stand_in(name, module_name)(*args)


_stand_ins: dict[tuple[str, str | None], type] = {}


def _stand_in(name: str, module: str | None) -> type:
    key = (name, module)
    if key not in _stand_ins:
        _stand_ins[key] = type(name.rsplit(".", 1)[-1], (Exception,), {"__module__": module or ""})
    return _stand_ins[key]


def pending_meta(task_id: str) -> dict[str, Any]:
    """The meta of a task nothing is stored for."""
    return {"status": states.PENDING, "result": None, "traceback": None,
            "children": [], "date_done": None, "task_id": task_id}  # fmt: skip


def request_meta(request: Context | None, extended: bool) -> dict[str, Any]:
    """What a result keeps of its request: the task's name; with ``result_extended``, the
    fields Celery stores too (name, args, kwargs, worker, retries, queue)."""
    if request is None:
        return {}
    name = getattr(request, "task", None)
    if not extended:
        return {"name": name} if name else {}
    delivery = getattr(request, "delivery_info", None) or {}
    args = getattr(request, "args", None)
    return {
        "name": name,
        "args": list(args) if isinstance(args, tuple) else args,
        "kwargs": getattr(request, "kwargs", None),
        "worker": getattr(request, "hostname", None),
        "retries": getattr(request, "retries", None),
        "queue": delivery.get("routing_key"),
    }


def task_meta(task_id: str, state: str, result: Any, traceback: str | None) -> dict[str, Any]:
    """A task's state as Celery's backends store it (``celery-task-meta-<id>``'s layout)."""
    return {
        "status": state,
        "result": result,
        "traceback": traceback,
        "children": [],
        "date_done": datetime.now(timezone.utc).isoformat(),
        "task_id": task_id,
    }


if TYPE_CHECKING:
    from .django_cache import CacheBackend
    from .django_db import DatabaseBackend
    from .keyvalue import KeyValueBackend

    #: What ``app.backend`` is: results disabled, values of a broker's shared state, or
    #: django-celery-results' rows or Django cache entries.
    Backend: TypeAlias = DisabledBackend | KeyValueBackend | DatabaseBackend | CacheBackend
