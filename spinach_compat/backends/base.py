"""What every result backend shares: the meta of a task (JSON, or ``result_serializer``)
and exceptions in JSON."""

from __future__ import annotations

import json
import sys
import time
from abc import ABC, abstractmethod
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from kombu.utils import json as kombu_json

from .. import states
from ..app import codec
from ..exceptions import TimeoutError

if TYPE_CHECKING:
    from ..app.base import Celery
    from ..app.context import Context

#: Celery's key prefix of saved groups: a Celery client sharing the Redis reads them too.
GROUP_KEY_PREFIX = "celery-taskset-meta-"


class DisabledBackend:
    """No result backend configured: storing does nothing, reading raises (as Celery)."""

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


class KeyValueBackend(ABC):
    """A backend keeping each task's meta as one JSON value under its own key."""

    def __init__(self, app: Celery):
        self.app = app

    @property
    def namespace(self) -> str:
        return self.app.namespace

    def key(self, task_id: str) -> str:
        """``{<namespace>}/result/<task id>``: inside the namespace's hash tag."""
        return f"{{{self.namespace}}}/result/{task_id}"

    @property
    def expires(self) -> float | None:
        """Seconds a result is kept (``result_expires``), None to keep it forever."""
        value = self.app.conf.result_expires
        if value is None:
            return None
        return value.total_seconds() if isinstance(value, timedelta) else float(value)

    # -- storage, per backend ------------------------------------------------------------

    @abstractmethod
    def _get(self, key: str) -> str | None:
        """The stored value of ``key``."""

    @abstractmethod
    def _set_unless_success(self, key: str, value: str) -> bool:
        """Store ``value`` and notify waiters, unless a SUCCESS is stored; whether stored."""

    @abstractmethod
    def _delete(self, key: str) -> None:
        """Forget ``key``."""

    # -- storing -------------------------------------------------------------------------

    def store_result(
        self, task_id: str, result: Any, state: str, traceback: str | None = None,
        request: Context | None = None, **kwargs: Any,
    ) -> Any:  # fmt: skip
        """Store the state of ``task_id``; a stored SUCCESS is never overwritten."""
        if state in states.EXCEPTION_STATES and isinstance(result, BaseException):
            result = prepare_exception(result)
        meta = task_meta(task_id, state, result, traceback)
        meta.update(request_meta(request, self.app.conf.get("result_extended")))
        self._save(task_id, meta, request)
        return result

    def _save(self, task_id: str, meta: dict[str, Any], request: Context | None) -> None:
        """Store ``meta`` under the task's key (see ``encode_meta``)."""
        self._set_unless_success(self.key(task_id), self.encode_meta(meta))

    # -- result_serializer ---------------------------------------------------------------

    @property
    def serializer(self) -> str | None:
        """``result_serializer``; None for JSON (stored as plain JSON)."""
        serializer = self.app.conf.get("result_serializer")
        return None if codec.is_json(serializer) else serializer

    @property
    def accept(self) -> frozenset[str]:
        """Content types a stored result may be read in: ``result_accept_content``, else
        ``accept_content`` (as Celery's backends)."""
        conf = self.app.conf
        accept = conf.get("result_accept_content")
        return codec.accept_set(conf.get("accept_content") if accept is None else accept)

    def encode_meta(self, meta: dict[str, Any]) -> str:
        """The stored value of ``meta``: JSON, or with another ``result_serializer`` an
        envelope ``{"status", "task_id", "encoded": <codec body of the meta>}`` (the state
        stays readable by the store script, which never overwrites a SUCCESS)."""
        serializer = self.serializer
        if serializer is None:
            return kombu_json.dumps(meta)
        encoded = codec.encode_body(meta, serializer, None)  # EncodeError, as kombu's dumps
        envelope = {"status": meta["status"], "task_id": meta["task_id"], "encoded": encoded}
        return json.dumps(envelope)

    def decode_meta(self, raw: str | bytes) -> dict[str, Any]:
        """The meta of a stored value; an envelope is decoded only when its content type is
        accepted (else kombu's ``ContentDisallowed``: nothing is unpickled unasked)."""
        meta = kombu_json.loads(raw)
        if "encoded" in meta and "result" not in meta:
            meta = codec.decode_body(meta["encoded"], self.accept)
        return meta

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

    # -- reading -------------------------------------------------------------------------

    def get_task_meta(self, task_id: str) -> dict[str, Any]:
        """The stored meta of ``task_id``; an unknown id is PENDING."""
        raw = self._get(self.key(task_id))
        if raw is None:
            return pending_meta(task_id)
        return self.decode_meta(raw)

    def get_state(self, task_id: str) -> str:
        """The stored state, read without decoding the result (an envelope tells it)."""
        raw = self._get(self.key(task_id))
        return states.PENDING if raw is None else json.loads(raw)["status"]

    def get_state_or_none(self, task_id: str) -> str | None:
        """The stored state of ``task_id`` (PENDING when unknown)."""
        return self.get_state(task_id)

    def is_revoked(self, task_id: str) -> bool:
        return self.get_state(task_id) == states.REVOKED

    def forget(self, task_id: str) -> None:
        self._delete(self.key(task_id))

    @abstractmethod
    def wait_for(
        self, task_id: str, timeout: float | None = None, interval: float = 0.5
    ) -> dict[str, Any]:
        """The meta of ``task_id`` once ready, woken by the backend's notifications;
        ``TimeoutError`` after ``timeout`` seconds. ``interval`` only bounds each wait (a
        safety net should a notification be lost): see ``next_wait``."""

    def exception_to_python(self, data: Any) -> BaseException | None:
        return exception_to_python(data)

    # -- existence and saved groups (AsyncResult.exists, GroupResult.save/restore) ---------

    @abstractmethod
    def _set(self, key: str, value: str) -> None:
        """Store ``value`` under ``key`` for ``expires`` seconds, whatever was there."""

    def task_result_exists(self, task_id: str) -> bool:
        """Whether a state of ``task_id`` is stored (a PENDING read may be a stored one)."""
        return self._get(self.key(task_id)) is not None

    def group_key(self, group_id: str) -> str:
        """Celery's key of a saved group: ``celery-taskset-meta-<id>``."""
        if not group_id:
            raise ValueError(f"group_id must not be empty. Got {group_id} instead.")
        return f"{GROUP_KEY_PREFIX}{group_id}"

    def save_group(self, group_id: str, result: Any) -> Any:
        """Save a ``GroupResult``'s ids as Celery does (``{'result': as_tuple()}``)."""
        self._set(self.group_key(group_id), kombu_json.dumps({"result": result.as_tuple()}))
        return result

    def restore_group(self, group_id: str) -> Any:
        """The ``GroupResult`` saved under ``group_id``, or None."""
        from ..result import result_from_tuple

        raw = self._get(self.group_key(group_id))
        if raw is None:
            return None
        return result_from_tuple(kombu_json.loads(raw)["result"], self.app)

    def delete_group(self, group_id: str) -> None:
        self._delete(self.group_key(group_id))


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


#: What ``app.backend`` is: results disabled, or a key-value store (memory, Redis).
Backend = DisabledBackend | KeyValueBackend
