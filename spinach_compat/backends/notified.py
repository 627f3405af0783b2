"""Result backends whose store is elsewhere, with ``get()`` woken by the broker.

django-celery-results' backends (``django_db``, ``django_cache``) keep each task's state
where Django says: a database row, a Django cache entry. That store is the source of truth;
after each write the backend publishes a small notice under ``result-notice/<task id>``
of the app's broker (``Broker.publish_value``: Redis pub/sub, or a condition in memory), the
path the Redis result backend's ``get()`` waits on. ``wait_for`` watches that name and reads
the store again when a notice comes (or every ``interval``, at least a second, should one be
lost), instead of polling the store as Celery's database backend does every half second.

A notice is published once the write is committed (``transaction.on_commit``: at once
outside a transaction), so a waiter woken by it reads the new state.
"""

from __future__ import annotations

import builtins
import json
import time
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from spinach.brokers.base import Broker

from .. import exceptions, states
from ..exceptions import TimeoutError
from ..interop.results import _celery_module
from .base import StateMarks, exception_to_python, next_wait, prepare_exception

if TYPE_CHECKING:
    from ..app.base import Celery
    from ..app.context import Context

#: Seconds a notice stays stored after it was published: it only wakes waiters, so a short
#: life spares the broker's memory; a waiter arriving later reads the store itself.
NOTICE_TTL = 60.0


class NotifiedBackend(StateMarks):
    """What the Django backends share: notices, waiting, Celery's ``mark_as_*`` calls.

    Subclasses store and read (``store_result``'s ``_store``, ``get_task_meta``, ...);
    ``alias`` is the ``result_backend`` value they serve, for messages.
    """

    #: ``get()`` waits on notifications, as with the Redis backend.
    supports_native_join = True

    def __init__(self, app: Celery, alias: str):
        self.app = app
        self.alias = alias

    # -- settings ------------------------------------------------------------------------

    @property
    def expires(self) -> float | None:
        """Seconds a result is kept (``result_expires``), None to keep it forever."""
        value = self.app.conf.result_expires
        if value is None:
            return None
        return value.total_seconds() if isinstance(value, timedelta) else float(value)

    @property
    def extended(self) -> bool:
        """``result_extended``: the request's name, arguments and worker are stored too."""
        return bool(self.app.conf.get("result_extended"))

    # -- storing (Celery's calls) ----------------------------------------------------------

    def store_result(
        self, task_id: str, result: Any, state: str, traceback: str | None = None,
        request: Context | None = None, **kwargs: Any,
    ) -> Any:  # fmt: skip
        """Store the state of ``task_id``, then notify its waiters once committed. A failure's
        exception is stored as ``{exc_type, exc_message, exc_module}``, the facade's own
        exceptions under ``celery.exceptions`` (as Celery stores them)."""
        stored = result
        if state in states.EXCEPTION_STATES and isinstance(result, BaseException):
            stored = as_celery_exception(prepare_exception(result))
        self._store(task_id, stored, state, traceback, request)
        self._notify_on_commit(task_id, state)
        return result

    def _store(
        self, task_id: str, result: Any, state: str, traceback: str | None,
        request: Context | None,
    ) -> None:  # fmt: skip
        raise NotImplementedError

    # -- reading ---------------------------------------------------------------------------

    def get_task_meta(self, task_id: str) -> dict[str, Any]:
        raise NotImplementedError

    def get_state(self, task_id: str) -> str:
        return str(self.get_task_meta(task_id)["status"])

    def get_state_or_none(self, task_id: str) -> str | None:
        return self.get_state(task_id)

    def is_revoked(self, task_id: str) -> bool:
        return self.get_state(task_id) == states.REVOKED

    def exception_to_python(self, data: Any) -> BaseException | None:
        return exception_to_python(data)

    # -- notices and waiting ---------------------------------------------------------------

    @property
    def broker(self) -> Broker:
        """Where notices are published: the app's broker."""
        return self.app.engine.broker

    def notice_name(self, task_id: str) -> str:
        return f"result-notice/{task_id}"

    def notice_key(self, task_id: str) -> str:
        """The broker's key (on Redis, the pub/sub channel) of ``task_id``'s notices."""
        return self.broker.key(self.notice_name(task_id))

    def _notify_on_commit(self, task_id: str, state: str) -> None:
        from django.db import transaction

        transaction.on_commit(lambda: self.notify(task_id, state))

    def notify(self, task_id: str, state: str) -> None:
        """Wake the waiters of ``task_id``: its state changed in the store."""
        notice = json.dumps({"task_id": task_id, "status": state})
        self.broker.publish_value(self.notice_name(task_id), notice, NOTICE_TTL)

    def wait_for(
        self, task_id: str, timeout: float | None = None, interval: float = 0.5
    ) -> dict[str, Any]:
        """The meta of ``task_id`` once ready, read from the store when a notice comes (or
        after ``interval``, at least a second); ``TimeoutError`` after ``timeout`` s."""
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            with self.broker.watch([self.notice_name(task_id)], timeout) as watch:
                meta = self.get_task_meta(task_id)
                while meta["status"] not in states.READY_STATES:
                    watch.next(next_wait(deadline, interval))
                    meta = self.get_task_meta(task_id)
                return meta
        except builtins.TimeoutError:  # not listening in time: what is stored now decides
            meta = self.get_task_meta(task_id)
            if meta["status"] not in states.READY_STATES:
                raise TimeoutError("The operation timed out.") from None
            return meta


def as_celery_exception(data: dict[str, Any]) -> dict[str, Any]:
    """A facade exception named as Celery's (``celery.exceptions``), as Celery stores it."""
    if data.get("exc_module") == exceptions.__name__:
        return {**data, "exc_module": _celery_module(data.get("exc_type"))}
    return data


def as_facade_exception(value: Any) -> Any:
    """A stored ``celery.exceptions`` exception read as the facade's class of that name."""
    if (
        isinstance(value, dict)
        and value.get("exc_module") == "celery.exceptions"
        and hasattr(exceptions, str(value.get("exc_type")))
    ):
        return {**value, "exc_module": exceptions.__name__}
    return value
