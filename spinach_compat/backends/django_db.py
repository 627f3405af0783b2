"""``result_backend='django-db'``: results as django-celery-results' ``TaskResult`` rows.

Rows are written as that package's own backend writes them under Celery, field by field:
``status``, ``result`` encoded with ``result_serializer`` (``content_type`` and
``content_encoding`` say how; binary encodings in base64), ``meta`` (the children),
``date_started`` for STARTED, and with ``result_extended`` ``task_name``, ``task_args`` and
``task_kwargs`` (the request's ``argsrepr``/``kwargsrepr``, encoded), ``worker``,
``periodic_task_name`` and ``traceback`` (as with that backend, the traceback is stored only
with ``result_extended``). ``GroupResult.save()``/``restore()`` use its ``GroupResult``
model. A row is decoded by its own ``content_type``, only when accepted
(``result_accept_content``, else ``accept_content``): nothing is unpickled unasked.

``get()`` is woken by the broker's notices (``notified``), the row being the source of
truth. Chords count their header in the broker, as with every backend of the facade
(``spinach_compat.app.chords``), not in django-celery-results' ``ChordCounter`` table; the
header's results are read from the rows. Expired rows (``result_expires``) are deleted at
most once every ``CLEANUP_EVERY`` seconds by one worker (a broker claim), after it stored a
result: Celery's ``celery.backend_cleanup`` beat entry is not needed.
"""

from __future__ import annotations

import base64
import logging
import time
from datetime import datetime
from typing import TYPE_CHECKING, Any

from kombu.serialization import dumps, loads

from .. import states
from ..app import codec
from . import django_checks
from .notified import NotifiedBackend, as_facade_exception

if TYPE_CHECKING:
    from ..app.base import Celery
    from ..app.context import Context

logger = logging.getLogger("spinach_compat.backends")

#: Seconds between two deletions of expired rows (one worker claims each turn): shorter
#: keeps the table nearer ``result_expires``, longer spares the database the DELETE.
CLEANUP_EVERY = 3600.0

MIGRATE = "run `python manage.py migrate django_celery_results`"


class DatabaseBackend(NotifiedBackend):
    """Results in django-celery-results' ``TaskResult`` and ``GroupResult`` models."""

    def __init__(self, app: Celery, alias: str = "django-db"):
        super().__init__(app, alias)
        django_checks.require_django(alias)
        django_checks.require_results_app(alias)
        from django_celery_results.models import GroupResult, TaskResult

        django_checks.require_tables(alias, (TaskResult, GroupResult), MIGRATE)
        self.TaskModel, self.GroupModel = TaskResult, GroupResult
        self._next_cleanup = 0.0

    # -- content, as django-celery-results encodes it -------------------------------------

    @property
    def serializer(self) -> str:
        return self.app.conf.get("result_serializer") or "json"

    @property
    def accept(self) -> frozenset[str]:
        """Content types a row may be decoded from (``result_accept_content``, else
        ``accept_content``)."""
        conf = self.app.conf
        accept = conf.get("result_accept_content")
        return codec.accept_set(conf.get("accept_content") if accept is None else accept)

    def encode_content(self, data: Any) -> tuple[str, str, str]:
        """``(content_type, content_encoding, text)`` of ``data``; binary as base64."""
        content_type, content_encoding, content = dumps(data, serializer=self.serializer)
        if content_encoding == "binary":
            content = base64.b64encode(content).decode("ascii")
        return content_type, content_encoding, content

    def decode_content(self, row: Any, content: str | None) -> Any:
        """A column of ``row`` decoded by the row's content type, if accepted (else
        kombu's ``ContentDisallowed``)."""
        if not content:
            return None
        data: str | bytes = content
        if row.content_encoding == "binary":
            data = base64.b64decode(content)
        return loads(data, row.content_type, row.content_encoding, accept=self.accept)

    # -- storing ---------------------------------------------------------------------------

    def store_result(
        self, task_id: str, result: Any, state: str, traceback: str | None = None,
        request: Context | None = None, **kwargs: Any,
    ) -> Any:  # fmt: skip
        stored = super().store_result(task_id, result, state, traceback, request, **kwargs)
        if state in states.READY_STATES:
            self._maybe_cleanup()
        return stored

    def _store(
        self, task_id: str, result: Any, state: str, traceback: str | None,
        request: Context | None,
    ) -> None:  # fmt: skip
        content_type, content_encoding, encoded = self.encode_content(result)
        meta = {**(getattr(request, "meta", None) or {}), "children": _children(request)}
        fields: dict[str, Any] = {
            "content_type": content_type, "content_encoding": content_encoding,
            "result": encoded, "status": state, "task_id": task_id,
            "meta": self.encode_content(meta)[2],
            **self._extended_fields(request, traceback),
        }  # fmt: skip
        if state == states.STARTED:
            from django.db.models.functions import Now

            fields["date_started"] = Now()
        self.TaskModel._default_manager.store_result(**fields)

    def _extended_fields(self, request: Context | None, traceback: str | None) -> dict:
        """The request's fields, with ``result_extended`` (else None, as the traceback)."""
        names = ("periodic_task_name", "task_args", "task_kwargs", "task_name", "traceback",
                 "worker")  # fmt: skip
        if request is None or not self.extended:
            return dict.fromkeys(names)
        args, kwargs = getattr(request, "argsrepr", None), getattr(request, "kwargsrepr", None)
        args = request.args if args is None else args  # an eager request has no reprs
        kwargs = request.kwargs if kwargs is None else kwargs
        return {
            "periodic_task_name": _periodic_task_name(request),
            "task_args": None if args is None else self.encode_content(args)[2],
            "task_kwargs": None if kwargs is None else self.encode_content(kwargs)[2],
            "task_name": request.task,
            "traceback": traceback,
            "worker": request.hostname,
        }

    def forget(self, task_id: str) -> None:
        self.TaskModel._default_manager.filter(task_id=task_id).delete()

    def cleanup(self) -> None:
        """Delete the rows older than ``result_expires`` (as Celery's ``backend_cleanup``)."""
        if self.expires:
            self.TaskModel._default_manager.delete_expired(self.expires)
            self.GroupModel._default_manager.delete_expired(self.expires)

    def _maybe_cleanup(self) -> None:
        """``cleanup`` if this process's turn came and it claims it before other workers;
        a failure is logged (the result was stored: the task is not failed for it)."""
        now = time.monotonic()
        if not self.expires or now < self._next_cleanup:
            return
        self._next_cleanup = now + CLEANUP_EVERY
        try:
            if self.broker.claim("django-results/cleanup", CLEANUP_EVERY):
                self.cleanup()
        except Exception:
            logger.exception("Deleting the expired rows of result_backend=%r failed", self.alias)

    # -- reading ---------------------------------------------------------------------------

    def get_task_meta(self, task_id: str) -> dict[str, Any]:
        """The meta of the row of ``task_id`` (PENDING without a row)."""
        row = self.TaskModel._default_manager.get_task(task_id)
        extra = self.decode_content(row, row.meta) or {}
        result = self.decode_content(row, row.result)
        if row.status in states.EXCEPTION_STATES:
            result = as_facade_exception(result)
        meta = {
            **extra, "task_id": task_id, "status": row.status, "traceback": row.traceback,
            "result": result,
            "children": extra.get("children") or [],
            "date_done": _iso(row.date_done) if row.pk else None,
        }  # fmt: skip
        if row.task_name is not None:
            meta.update(name=row.task_name, worker=row.worker,
                        args=self.decode_content(row, row.task_args),
                        kwargs=self.decode_content(row, row.task_kwargs))  # fmt: skip
        return meta

    def get_state(self, task_id: str) -> str:
        """The row's status, read without decoding its result (PENDING without a row)."""
        return str(self.TaskModel._default_manager.get_task(task_id).status)

    def task_result_exists(self, task_id: str) -> bool:
        return bool(self.TaskModel._default_manager.filter(task_id=task_id).exists())

    # -- saved groups ----------------------------------------------------------------------

    def save_group(self, group_id: str, result: Any) -> Any:
        content_type, content_encoding, encoded = self.encode_content(result.as_tuple())
        self.GroupModel._default_manager.store_group_result(
            content_type, content_encoding, group_id, encoded
        )
        return result

    def restore_group(self, group_id: str) -> Any:
        """The ``GroupResult`` saved under ``group_id``, or None."""
        from ..result import result_from_tuple

        row = self.GroupModel._default_manager.filter(group_id=group_id).first()
        value = self.decode_content(row, row.result) if row is not None else None
        return result_from_tuple(value, self.app) if value else None

    def delete_group(self, group_id: str) -> None:
        self.GroupModel._default_manager.filter(group_id=group_id).delete()


def _children(request: Context | None) -> list:
    return [child.as_tuple() for child in getattr(request, "children", None) or ()]


def _periodic_task_name(request: Context) -> str | None:
    """The beat entry that sent the task (Celery's ``periodic_task_name`` header)."""
    name = getattr(request, "periodic_task_name", None)
    return name if name is not None else (request.headers or {}).get("periodic_task_name")


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None
