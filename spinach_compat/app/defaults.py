"""Celery's settings with Celery's defaults, and which of them the facade honours.

Settings are the lower-case names of Celery 5. ``config_from_object(..., namespace='CELERY')``
maps ``CELERY_BROKER_URL`` to ``broker_url`` and so on. The upper-case names of Celery 3
(``BROKER_URL``, ``CELERY_ALWAYS_EAGER``, ...) are read as their new names, as Celery 5 still
does: see ``OLD_NAMES``; a configuration mixing both styles is refused, as by Celery.

Honoured: broker_url, result_backend, result_expires, task_default_queue, task_always_eager,
task_eager_propagates, task_ignore_result, task_track_started, task_routes (see ``.routes``),
task_queues (their names), task_default_priority (see ``spinach_compat.app.priority``),
task_default_rate_limit (see ``spinach_compat.app.ratelimit``; spinach_global_rate_limits
makes the rate limits hold for the whole namespace, not per worker), task_time_limit and
task_soft_time_limit (see ``spinach_compat.app.timelimits``), beat_schedule (see
``spinach_compat.app.beat``), timezone, enable_utc, spinach_namespace (the engine's
namespace; default: the app's ``main`` name or 'celery').

Celery interop (``spinach_compat.interop``): spinach_legacy_tasks, a list of fnmatch patterns
of task names sent to legacy Celery workers as Celery protocol 2 messages (so does a
``task_routes`` entry with ``'legacy': True``); ``worker --celery-queues`` makes a worker
consume the messages Celery clients publish.

Serialization (see ``spinach_compat.app.codec``): task_serializer, task_compression,
accept_content, result_serializer, result_accept_content and result_extended, with any
serializer and compression of kombu's registry but ``auth`` (result_compression is refused).

Accepted because the native engine already behaves that way or they only tune Celery's
transport: task_acks_late (a job with retries left is always run again after a worker crash),
worker_prefetch_multiplier (the engine's prefetch: ``spinach_compat.worker.prefetch``),
broker_transport_options, broker_connection_* (read by a starting worker:
``spinach_compat.worker.broker_wait``), task_publish_retry*, imports/include,
beat_max_loop_interval, beat_schedule_filename and beat_sync_every (read by the beat
process), spinach_beat_lease_term (its lease, see ``spinach_compat.app.beat_lease``),
worker_concurrency and worker_hijack_root_logger (read by the worker command), other
worker_* settings.

Refused with ``UnsupportedFeature`` when set to anything but their default, so that nothing
is silently ignored: see ``UNSUPPORTED`` below and ``migration_guide/``. Refused when set to
a value asking for what the engine does not do: task_reject_on_worker_lost=False,
task_retry_on_worker_lost=True, ``ACKS_ON_FAILURE`` set to False, a worker_pool other than
prefork, processes, threads, solo or gevent (eventlet, a class), content types without JSON.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import timedelta
from typing import Any

from ..exceptions import ImproperlyConfigured

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
    "result_compression": None,
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
    "task_repr_maxlevels": 3,
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
    "spinach_global_rate_limits": False,  #: rate_limit for the namespace, not per worker
    "spinach_beat_lease_term": None,  #: seconds of a beat lease term (None: see app.beat_lease)
    #: seconds: jobs are held beyond the threads while their mean run time is below it
    #: (None: the engine's 5 ms); higher holds longer jobs too, which then wait behind others
    "spinach_prefetch_short_job": None,
}

#: ``worker_pool`` values the worker command runs (``processes`` is Celery's other name of
#: prefork).
SUPPORTED_POOLS = ("prefork", "processes", "threads", "solo", "gevent")

#: Settings the facade cannot honour yet, with what to do instead.
UNSUPPORTED: dict[str, str] = {
    "task_annotations": "task annotations are not supported",
    "result_compression": "compressed results are not supported: leave it unset",
    "task_repr_maxlevels": "the default argsrepr/kwargsrepr show 3 nesting levels, Celery's "
    "default: leave it unset, or pass argsrepr=/kwargsrepr= to show something else",
}

#: Settings naming a serializer, a compression, and a list of accepted content types
#: (checked against kombu's registry by ``Settings.check_supported``).
SERIALIZER_SETTINGS = ("task_serializer", "result_serializer")
COMPRESSION_SETTINGS = ("task_compression",)
ACCEPT_SETTINGS = ("accept_content", "result_accept_content")

#: Celery's settings of what a late-acknowledged task's failure or timeout does: only True
#: (Celery's default), what the facade does, is supported.
ACKS_ON_FAILURE = (
    "task_acks_on_failure_or_timeout", "task_acks_on_failure", "task_acks_on_timeout",
)  # fmt: skip

#: Celery settings besides ``DEFAULTS``, most not read by the facade: known by name so that
#: their Celery 3 names are recognised (and so refused or ignored as the new names are).
OTHER_SETTINGS = frozenset(
    f"{group}_{name}"
    for group, names in {
        "beat": "cron_starting_deadline max_loop_interval schedule_filename sync_every",
        "cache": "backend backend_options",
        "broker": "channel_error_retry connection_timeout failover_strategy heartbeat "
        "heartbeat_checkrate host login_method password pool_limit port read_url transport "
        "use_ssl user vhost write_url",
        "control": "exchange queue_durable queue_exclusive queue_expires queue_ttl",
        "event": "exchange queue_durable queue_exclusive queue_expires queue_prefix queue_ttl "
        "serializer",
        "redis": "backend_use_ssl db host max_connections password port retry_on_timeout "
        "socket_connect_timeout socket_keepalive socket_timeout username",
        "result": "backend_always_retry backend_max_retries cache_max chord_join_timeout "
        "chord_retry_interval exchange exchange_type persistent",
        "security": "cert_store certificate digest key",
        "task": "acks_on_failure_or_timeout acks_on_failure acks_on_timeout "
        "retry_on_worker_lost default_delivery_mode default_exchange_type "
        "default_queue_type inherit_parent_priority queue_max_priority remote_tracebacks",
        "worker": "agent autoscaler consumer direct disable_rate_limits enable_remote_control "
        "log_color log_datefmt log_format lost_wait max_memory_per_child max_tasks_per_child "
        "pool pool_putlocks pool_restarts proc_alive_timeout redirect_stdouts "
        "redirect_stdouts_level soft_shutdown_timeout state_db task_log_datefmt "
        "task_log_format timer timer_precision",
    }.items()
    for name in names.split()
)

#: How Celery 3 named the settings of each group (the first prefix that fits) ...
_OLD_PREFIXES = (
    ("task_", "CELERY_"),
    ("worker_", "CELERYD_"),
    ("beat_", "CELERYBEAT_"),
    ("broker_", "BROKER_"),
    ("result_", "CELERY_RESULT_"),
    ("control_", "CONTROL_"),
    ("", "CELERY_"),
)

#: ... but for these.
_IRREGULAR_OLD_NAMES = {
    "enable_utc": "ENABLE_UTC",
    "result_accept_content": "RESULT_ACCEPT_CONTENT",
    "result_cache_max": "CELERY_MAX_CACHED_RESULTS",
    "result_expires": "CELERY_TASK_RESULT_EXPIRES",
    "task_compression": "CELERY_MESSAGE_COMPRESSION",
    "task_eager_propagates": "CELERY_EAGER_PROPAGATES_EXCEPTIONS",
    "task_protocol": "CELERY_TASK_PROTOCOL",
    "task_publish_retry": "CELERY_TASK_PUBLISH_RETRY",
    "task_publish_retry_policy": "CELERY_TASK_PUBLISH_RETRY_POLICY",
    "task_send_sent_event": "CELERY_SEND_TASK_SENT_EVENT",
    "task_serializer": "CELERY_TASK_SERIALIZER",
    "task_soft_time_limit": "CELERYD_TASK_SOFT_TIME_LIMIT",
    "task_time_limit": "CELERYD_TASK_TIME_LIMIT",
    "worker_direct": "CELERY_WORKER_DIRECT",
    "worker_disable_rate_limits": "CELERY_DISABLE_RATE_LIMITS",
    "worker_enable_remote_control": "CELERY_ENABLE_REMOTE_CONTROL",
    "worker_lost_wait": "CELERYD_WORKER_LOST_WAIT",
    "worker_redirect_stdouts": "CELERY_REDIRECT_STDOUTS",
    "worker_redirect_stdouts_level": "CELERY_REDIRECT_STDOUTS_LEVEL",
    "worker_send_task_events": "CELERY_SEND_EVENTS",
}


def _old_name(new: str) -> str:
    """The Celery 3 name of setting ``new``."""
    if new in _IRREGULAR_OLD_NAMES:
        return _IRREGULAR_OLD_NAMES[new]
    prefix, old = next((p, o) for p, o in _OLD_PREFIXES if new.startswith(p))
    return old + new[len(prefix) :].upper()


#: The new name of each Celery 3 setting name (the facade's own settings have none).
OLD_NAMES: dict[str, str] = {
    _old_name(new): new
    for new in sorted({*DEFAULTS, *OTHER_SETTINGS})
    if not new.startswith("spinach_")
}

#: The Celery 3 name of each setting that has one.
NEW_TO_OLD: dict[str, str] = {new: old for old, new in OLD_NAMES.items()}


class Settings(dict):
    """The app's configuration: a dict with attribute access, like Celery's ``app.conf``.

    A Celery 3 name (``OLD_NAMES``) stands for its new name. Settings set on it (by the
    app's constructor, ``update``, assignment) win over those of a configuration source
    read later (``load``), as in Celery.
    """

    def __missing__(self, key: str) -> Any:
        if key in OLD_NAMES and dict.__contains__(self, OLD_NAMES[key]):
            return dict.__getitem__(self, OLD_NAMES[key])
        if OLD_NAMES.get(key, key) in OTHER_SETTINGS:
            return None  # a Celery setting left unset reads as unset, never a KeyError
        raise KeyError(key)

    def __contains__(self, key: object) -> bool:
        old = OLD_NAMES.get(key, key) if isinstance(key, str) else key
        return dict.__contains__(self, key) or dict.__contains__(self, old)

    def get(self, key: str, default: Any = None) -> Any:
        try:
            return self[key]
        except KeyError:
            return default

    def first(self, *keys: str) -> Any:
        """The value of the first of ``keys`` set to something else than None, as Celery's
        (redbeat reads its settings so)."""
        return next((v for v in map(self.get, keys) if v is not None), None)

    def __setitem__(self, key: str, value: Any) -> None:
        key = OLD_NAMES.get(key, key)
        self.__dict__.setdefault("_set_here", set()).add(key)
        super().__setitem__(key, value)

    def __delitem__(self, key: str) -> None:
        super().__delitem__(key if dict.__contains__(self, key) else OLD_NAMES.get(key, key))

    def setdefault(self, key: str, default: Any = None) -> Any:
        if key not in self:
            self[key] = default
        return self[key]

    def load(self, values: Mapping[str, Any]) -> None:
        """Settings read from a configuration source: those set on the app stay."""
        set_here = self.__dict__.get("_set_here", ())
        for key, value in values.items():
            if key not in set_here:
                super().__setitem__(key, value)

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
        for key, value in dict(other, **kwargs).items():
            self[key] = value

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
        self._check_serialization()
        self._check_consistent_with_the_engine(UnsupportedFeature)

    def _check_serialization(self) -> None:
        """Serializers and compressions kombu has, content types it knows (see ``codec``)."""
        from . import codec

        for key in SERIALIZER_SETTINGS:
            codec.check_serializer(self.get(key), f"setting {key}")
        for key in COMPRESSION_SETTINGS:
            codec.check_compression(self.get(key), f"setting {key}")
        for key in ACCEPT_SETTINGS:
            for name in self.get(key) or ():
                codec.check_serializer(name, f"setting {key} entry")

    def _check_consistent_with_the_engine(self, error: type[Exception]) -> None:
        """Refuse settings whose value asks for a behaviour the engine does not have."""
        if self.get("task_reject_on_worker_lost") is False:
            raise error(
                "setting task_reject_on_worker_lost=False is not supported: a job "
                "whose worker dies is always run again (see migration_guide/)"
            )
        if self.get("task_retry_on_worker_lost"):
            raise error(
                "setting task_retry_on_worker_lost=True is not supported: a job whose worker "
                "dies is run again at once while it has retries left (see migration_guide/)"
            )
        for key in ACKS_ON_FAILURE:
            if self.get(key) is False:
                raise error(
                    f"setting {key}=False is not supported: a failed or timed-out task is "
                    "not run again (see migration_guide/)"
                )
        if self.get("worker_pool") not in (None, *SUPPORTED_POOLS):
            raise error(
                f"setting worker_pool={self['worker_pool']!r} is not supported: use prefork "
                "(Celery's default), threads, gevent or solo (see migration_guide/)"
            )


def from_object(obj: Any, namespace: str | None = None, ignore: Iterable[str] = ()) -> dict:
    """The settings of ``obj`` (a mapping, module, class or object), keyed Celery's way.

    Without a namespace: its lower-case names and the Celery 3 names of ``OLD_NAMES``, not
    mixed (see ``check_old_and_new``; ``ignore`` names are left out of that check, as Celery
    does for the settings given to the app's constructor). With a namespace:
    ``<NAMESPACE>_<NAME>`` names, over plain new names, over Celery 3 names (as Celery).
    """
    names, get = _names_of(obj)
    if namespace:
        return _namespaced(names, get, namespace.rstrip("_") + "_")
    check_old_and_new(names - set(ignore))
    found = {new: get(old) for old, new in OLD_NAMES.items() if old in names}
    found.update({name: get(name) for name in names if name.islower()})
    return found


def _names_of(obj: Any) -> tuple[set[str], Callable[[str], Any]]:
    """The setting names ``obj`` may hold, and how to get the value of one."""
    if isinstance(obj, Mapping):
        return {key for key in obj if isinstance(key, str)}, obj.__getitem__
    names = {name for name in dir(obj) if not name.startswith("__")}
    return names, lambda name: getattr(obj, name)


def _namespaced(names: set[str], get: Callable[[str], Any], prefix: str) -> dict[str, Any]:
    found = {new: get(old) for old, new in OLD_NAMES.items() if old in names}
    found.update({new: get(new) for new in NEW_TO_OLD if new in names})
    for name in sorted(names):
        key = name[len(prefix) :]
        if name.startswith(prefix) and key:
            found[key.lower() if key.isupper() else key] = get(name)
    return found


def check_old_and_new(names: Iterable[str]) -> None:
    """Refuse a configuration mixing Celery 3 and new setting names, as Celery does.

    Giving one setting under both names is allowed (the new name wins). The message asks
    to rename the names of the minority, as Celery's.
    """
    names = set(names)
    old, new = names & OLD_NAMES.keys(), names & NEW_TO_OLD.keys()
    if not (old and new):
        return
    if len(old) > len(new):
        renames, style = {name: NEW_TO_OLD[name] for name in new}, "Celery 3 (upper-case)"
    else:
        renames, style = {name: OLD_NAMES[name] for name in old}, "new (lower-case)"
    renames = {name: other for name, other in renames.items() if other not in names}
    if renames:
        lines = "\n".join(f"    {name:<36} -> {other}" for name, other in sorted(renames.items()))
        raise ImproperlyConfigured(
            f"Cannot mix new and Celery 3 setting names: rename these settings to the "
            f"{style} names:\n{lines}"
        )
