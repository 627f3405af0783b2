"""The result backend: each task's meta is a value of a broker's shared state.

A task's meta is stored with ``Broker.publish_value`` under ``result/<task id>`` of the
app's namespace (``{<namespace>}/result/<task id>`` on Redis) for ``result_expires``,
never over a stored SUCCESS; the same call publishes it to the watches of that name, which
``AsyncResult.get`` waits on (``Broker.watch``: pub/sub on Redis, a condition in memory).
Which broker holds them is ``backend_from_url``'s business: this module works on any.

Celery interop (``spinach_compat.interop.results``): jobs that came from Celery's queues
also store their states under Celery's ``celery-task-meta-<id>`` (an ``Unscoped`` name,
outside the namespace), and a task id without a result of ours is looked up there (a task
run by a legacy Celery worker). Saved groups are under Celery's ``celery-taskset-meta-<id>``.
"""

from __future__ import annotations

import builtins
import json
import time
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from kombu.utils import json as kombu_json

from spinach.brokers.base import Broker, Unscoped, Watch

from .. import states
from ..app import codec
from ..exceptions import TimeoutError
from ..interop.results import CeleryResults, celery_key, decode_celery_meta, wants_celery_result
from .base import (
    StateMarks,
    exception_to_python,
    next_wait,
    pending_meta,
    prepare_exception,
    request_meta,
    task_meta,
)

if TYPE_CHECKING:
    from ..app.base import Celery
    from ..app.context import Context

#: Celery's key prefix of saved groups: a Celery client sharing the Redis reads them too.
GROUP_KEY_PREFIX = "celery-taskset-meta-"


class KeyValueBackend(StateMarks):
    """Results as values of ``broker``'s shared state, in the app's namespace."""

    #: As Celery's Redis backend: results are waited for on the backend's notifications.
    supports_native_join = True

    def __init__(self, app: Celery, broker: Broker):
        self.app = app
        #: Where the results are kept (the app's own broker, or one for ``result_backend``).
        self.broker = broker
        self.celery_results = CeleryResults(broker)

    @property
    def namespace(self) -> str:
        return self.broker.namespace

    def name(self, task_id: str) -> str:
        """The shared-state name of ``task_id``'s meta: ``result/<task id>``."""
        return f"result/{task_id}"

    def key(self, task_id: str) -> str:
        """Its storage key: ``{<namespace>}/result/<task id>``."""
        return self.broker.key(self.name(task_id))

    def _names(self, task_id: str) -> list[str]:
        """Where the meta of ``task_id`` may be: ours, then Celery's."""
        return [self.name(task_id), Unscoped(celery_key(task_id))]

    @property
    def expires(self) -> float | None:
        """Seconds a result is kept (``result_expires``), None to keep it forever."""
        value = self.app.conf.result_expires
        if value is None:
            return None
        return value.total_seconds() if isinstance(value, timedelta) else float(value)

    # -- storing -------------------------------------------------------------------------

    def store_result(
        self, task_id: str, result: Any, state: str, traceback: str | None = None,
        request: Context | None = None, **kwargs: Any,
    ) -> Any:  # fmt: skip
        """Store the state of ``task_id``; a stored SUCCESS is never overwritten. For a job
        that came from Celery, in Celery's key too."""
        if state in states.EXCEPTION_STATES and isinstance(result, BaseException):
            result = prepare_exception(result)
        meta = task_meta(task_id, state, result, traceback)
        meta.update(request_meta(request, self.app.conf.get("result_extended")))
        children = getattr(request, "children", None)  # the results it sent, as Celery
        if children:
            meta["children"] = [child.as_tuple() for child in children]
        encoded = self.encode_meta(meta)
        self.broker.publish_value(self.name(task_id), encoded, self.expires, states.SUCCESS)
        if wants_celery_result(request):
            self.celery_results.store(task_id, meta, self.expires, self.serializer)
        return result

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
        stays readable by the broker, which never overwrites a SUCCESS)."""
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

    # -- reading -------------------------------------------------------------------------

    def get_task_meta(self, task_id: str) -> dict[str, Any]:
        """The meta of ``task_id``: ours, else the one a Celery worker stored (one read);
        an unknown id is PENDING."""
        ours, celery = self.broker.get_bytes(self._names(task_id))
        if ours is not None:
            return self.decode_meta(ours)
        if celery is not None:
            return decode_celery_meta(celery, self.serializer, self.accept)
        return pending_meta(task_id)

    def get_state(self, task_id: str) -> str:
        """The stored state: ours (read without decoding the result: an envelope tells
        it), else Celery's; PENDING when unknown."""
        ours, celery = self.broker.get_bytes(self._names(task_id))
        if ours is not None:
            return str(json.loads(ours)["status"])
        if celery is not None:
            return str(decode_celery_meta(celery, self.serializer, self.accept)["status"])
        return states.PENDING

    def get_state_or_none(self, task_id: str) -> str | None:
        """The stored state of ``task_id`` (PENDING when unknown)."""
        return self.get_state(task_id)

    def is_revoked(self, task_id: str) -> bool:
        return self.get_state(task_id) == states.REVOKED

    def forget(self, task_id: str) -> None:
        self.broker.delete([self.name(task_id)])

    def exception_to_python(self, data: Any) -> BaseException | None:
        return exception_to_python(data)

    def task_result_exists(self, task_id: str) -> bool:
        """Whether a state of ``task_id`` is stored (ours or Celery's): a PENDING read may
        be a stored one."""
        return any(value is not None for value in self.broker.get_bytes(self._names(task_id)))

    # -- waiting -------------------------------------------------------------------------

    def wait_for(
        self, task_id: str, timeout: float | None = None, interval: float = 0.5
    ) -> dict[str, Any]:
        """The meta of ``task_id`` once ready: watched first (``Broker.watch``), then read,
        then taken from what is published (a store publishes the meta it stored);
        ``TimeoutError`` after ``timeout`` seconds. ``interval`` bounds each wait, after
        which the value is read again (a safety net should a publication be lost)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            with self.broker.watch(self._names(task_id), timeout) as watch:
                return self._wait_on(watch, task_id, deadline, interval)
        except builtins.TimeoutError:  # not listening in time: what is stored now decides
            return self._ready_meta(task_id)

    def _ready_meta(self, task_id: str) -> dict[str, Any]:
        """The meta of ``task_id`` if it is ready now, else TimeoutError."""
        meta = self.get_task_meta(task_id)
        if meta["status"] not in states.READY_STATES:
            raise TimeoutError("The operation timed out.")
        return meta

    def _wait_on(
        self, watch: Watch, task_id: str, deadline: float | None, interval: float
    ) -> dict[str, Any]:
        meta = self.get_task_meta(task_id)
        while meta["status"] not in states.READY_STATES:
            published = watch.next(next_wait(deadline, interval))
            if published is None:
                meta = self.get_task_meta(task_id)
            elif published[0] == self.name(task_id):
                meta = self.decode_meta(published[1])
            else:
                meta = decode_celery_meta(published[1], self.serializer, self.accept)
        return meta

    # -- saved groups (GroupResult.save/restore) -----------------------------------------

    def group_key(self, group_id: str) -> str:
        """Celery's key of a saved group: ``celery-taskset-meta-<id>``, outside the
        namespace."""
        if not group_id:
            raise ValueError(f"group_id must not be empty. Got {group_id} instead.")
        return Unscoped(f"{GROUP_KEY_PREFIX}{group_id}")

    def _get(self, name: str) -> bytes | None:
        """The stored value of the shared-state ``name``."""
        return self.broker.get_bytes([name])[0]

    def save_group(self, group_id: str, result: Any) -> Any:
        """Save a ``GroupResult``'s ids as Celery does (``{'result': as_tuple()}``)."""
        value = kombu_json.dumps({"result": result.as_tuple()})
        self.broker.publish_value(self.group_key(group_id), value, self.expires)
        return result

    def restore_group(self, group_id: str) -> Any:
        """The ``GroupResult`` saved under ``group_id``, or None."""
        from ..result import result_from_tuple

        raw = self._get(self.group_key(group_id))
        if raw is None:
            return None
        return result_from_tuple(kombu_json.loads(raw)["result"], self.app)

    def delete_group(self, group_id: str) -> None:
        self.broker.delete([self.group_key(group_id)])
