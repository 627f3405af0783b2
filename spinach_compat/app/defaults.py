"""Celery's settings with Celery's defaults, and which of them the facade honours.

Settings are the lower-case names of Celery 5. ``config_from_object(..., namespace='CELERY')``
maps ``CELERY_BROKER_URL`` to ``broker_url`` and so on.

Honoured: broker_url, result_backend, result_expires, task_default_queue, task_always_eager,
task_eager_propagates, task_ignore_result, task_track_started, task_routes (dict form),
task_queues (their names), task_default_priority (see ``spinach_compat.app.priority``),
task_default_rate_limit (see ``spinach_compat.app.ratelimit``), task_time_limit and
task_soft_time_limit (see ``spinach_compat.app.timelimits``), beat_schedule (see
``spinach_compat.app.beat``), timezone, enable_utc, spinach_namespace (the engine's
namespace; default: the app's ``main`` name or 'celery').

Celery interop (``spinach_compat.interop``): spinach_legacy_tasks, a list of fnmatch patterns
of task names sent to legacy Celery workers as Celery protocol 2 messages (so does a
``task_routes`` entry with ``'legacy': True``); ``worker --celery-queues`` makes a worker
consume the messages Celery clients publish.

Accepted because the native engine already behaves that way or they only tune Celery's
transport: task_serializer/result_serializer/accept_content as long as they are JSON,
task_acks_late (a job with retries left is always run again after a worker crash),
worker_prefetch_multiplier (the engine fetches only for free workers), broker_transport_options,
broker_connection_retry*, task_publish_retry*, imports/include, beat_max_loop_interval (the
native engine schedules), worker_concurrency and worker_hijack_root_logger (read by the
worker command), other worker_* settings.

Refused with ``UnsupportedFeature`` when set to anything but their default, so that nothing
is silently ignored: see ``UNSUPPORTED`` below and ``migration_guide/``.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

DEFAULTS: dict[str, Any] = {
    "broker_url": None,
    "broker_transport_options": {},
    "broker_connection_retry": True,
    "broker_connection_retry_on_startup": None,
    "broker_connection_max_retries": 100,
    "result_backend": None,
    "result_expires": timedelta(days=1),
    "result_serializer": "json",
    "result_accept_content": None,
    "result_extended": False,
    "result_backend_transport_options": {},
    "task_serializer": "json",
    "accept_content": ["json"],
    "enable_utc": True,
    "timezone": None,
    "task_always_eager": False,
    "task_eager_propagates": False,
    "task_store_eager_result": False,
    "task_default_queue": "celery",
    "task_default_exchange": None,
    "task_default_routing_key": None,
    "task_default_priority": None,
    "task_queues": None,
    "task_routes": None,
    "task_acks_late": False,
    "task_reject_on_worker_lost": None,
    "task_ignore_result": False,
    "task_store_errors_even_if_ignored": False,
    "task_track_started": False,
    "task_time_limit": None,
    "task_soft_time_limit": None,
    "task_default_rate_limit": None,
    "task_annotations": None,
    "task_compression": None,
    "task_publish_retry": True,
    "task_publish_retry_policy": {
        "max_retries": 3,
        "interval_start": 0,
        "interval_max": 1,
        "interval_step": 0.2,
    },
    "task_protocol": 2,
    "task_create_missing_queues": True,
    "task_send_sent_event": False,
    "worker_concurrency": None,
    "worker_prefetch_multiplier": 4,
    "worker_hijack_root_logger": True,
    "worker_send_task_events": False,
    "beat_schedule": {},
    "beat_scheduler": "celery.beat:PersistentScheduler",
    "imports": (),
    "include": (),
    "spinach_namespace": None,
    "spinach_legacy_tasks": (),  #: task name patterns run by legacy Celery workers (interop)
}

#: Settings the facade cannot honour yet, with what to do instead.
UNSUPPORTED: dict[str, str] = {
    "task_annotations": "task annotations are not supported",
    "task_compression": "message compression is not supported",
    "result_extended": "extended results are not supported yet",
}

#: Serializers the facade can honour.
JSON_NAMES = frozenset({"json", "application/json"})


class Settings(dict):
    """The app's configuration: a dict with attribute access, like Celery's ``app.conf``."""

    def __getattr__(self, key: str) -> Any:
        try:
            return self[key]
        except KeyError:
            raise AttributeError(f"no setting {key!r}") from None

    def __setattr__(self, key: str, value: Any) -> None:
        self[key] = value

    def __delattr__(self, key: str) -> None:
        try:
            del self[key]
        except KeyError:
            raise AttributeError(key) from None

    def update(self, other: Any = (), **kwargs: Any) -> None:  # type: ignore[override]
        """Set several settings at once (a mapping and/or keyword arguments)."""
        super().update(other, **kwargs)

    def setdefault_many(self, values: dict[str, Any]) -> None:
        for key, value in values.items():
            self.setdefault(key, value)

    def check_supported(self) -> None:
        """Raise ``UnsupportedFeature`` for a setting the facade cannot honour."""
        from ..exceptions import UnsupportedFeature

        for key, why in UNSUPPORTED.items():
            if self.get(key) not in (None, DEFAULTS.get(key)):
                raise UnsupportedFeature(
                    f"setting {key}={self[key]!r} is not supported by spinach_compat: {why} "
                    "(see migration_guide/)"
                )
        for key in ("task_serializer", "result_serializer"):
            if self.get(key) not in JSON_NAMES:
                raise UnsupportedFeature(
                    f"setting {key}={self[key]!r}: spinach_compat only carries JSON "
                    "(see migration_guide/)"
                )
        self._check_consistent_with_the_engine(UnsupportedFeature)

    def _check_consistent_with_the_engine(self, error: type[Exception]) -> None:
        """Refuse settings whose value asks for a behaviour the engine does not have."""
        for key in ("accept_content", "result_accept_content"):
            accepted = self.get(key)
            if accepted is not None and not JSON_NAMES & set(accepted):
                raise error(
                    f"setting {key}={accepted!r} leaves out JSON, the only format "
                    "spinach_compat carries (see migration_guide/)"
                )
        if self.get("task_reject_on_worker_lost") is False:
            raise error(
                "setting task_reject_on_worker_lost=False is not supported: a job "
                "whose worker dies is always run again (see migration_guide/)"
            )
        if self.get("worker_pool") not in (None, "threads", "solo"):
            raise error(
                f"setting worker_pool={self['worker_pool']!r} is not supported: "
                "spinach_compat workers run tasks in threads; run several worker "
                "processes for CPU-bound tasks (see migration_guide/)"
            )


def from_object(obj: Any, namespace: str | None = None) -> dict[str, Any]:
    """The settings found on ``obj`` (a module, class or object), keyed Celery's way."""
    found: dict[str, Any] = {}
    prefix = f"{namespace}_" if namespace else ""
    for attr in dir(obj):
        if not attr.startswith(prefix) or attr.startswith("__"):
            continue
        key = attr[len(prefix) :]
        if namespace and key.isupper():
            key = key.lower()
        elif not namespace and not key.islower():
            continue
        if key:
            found[key] = getattr(obj, attr)
    return found
