"""The checker's table of support statuses for settings, options, flags and a few names.

``RULES`` maps ``kind:name`` to a ``Rule``. Where a value matters (a setting, a task or
``apply_async`` option, a worker flag), ``accepts`` tells a supported value apart. For
Celery *names* (``name:celery.x.y``, ``attr:celery.x.Class.y``) the table only adds a note
or a known difference: whether a name is supported is decided by resolving it against the
installed facade (``spinach_compat.check.facade``), never by this table alone.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..app import call_options

SUPPORTED, DIFFERENT, UNSUPPORTED = "supported", "different", "unsupported"
CHECK = "check"  #: a value the checker cannot see (a variable, an environment lookup)
STATUSES = (SUPPORTED, DIFFERENT, CHECK, UNSUPPORTED)
GUIDE = "migration_guide/"
UNKNOWN = object()  #: a value the checker cannot see as a literal


@dataclass(frozen=True)
class Rule:
    """How one Celery API migrates; ``accepts`` tells a supported value apart (if any)."""

    status: str
    section: str
    note: str
    accepts: Callable[[Any], bool | None] | None = None  #: None from it: "check it"


def _in(*values: Any) -> Callable[[Any], bool]:
    return lambda value: value in values


def _is_none(value: Any) -> bool:
    return value is None


def _scheme_in(*schemes: str, none: bool | None) -> Callable[[Any], bool | None]:
    """A URL of one of ``schemes``; None (left at its default) is ``none`` (None: check it)."""
    return lambda value: (
        none if value is None else (isinstance(value, str) and value.split(":", 1)[0] in schemes)
    )


_NOT_SIGNED = lambda value: value != "auth"  # noqa: E731  (message signing is refused)
_BROKERS = _scheme_in("memory", "redis", "rediss", "unix", "redis+socket", none=None)
#: django-celery-results' backend names, and the modules of its classes' 'module:Class' paths.
_DJANGO_BACKENDS = ("django-db", "django-cache", "django_celery_results.backends",
                    "django_celery_results.backends.database",
                    "django_celery_results.backends.cache")  # fmt: skip
_BACKENDS = _scheme_in(
    "memory", "cache+memory", "redis", "rediss", "unix", "disabled", *_DJANGO_BACKENDS, none=True
)

F = "features.md"
S_IMPORTS = "README.md#step-1-swap-the-imports"
S_BROKERS = f"{F}#brokers-and-result-backends"
S_SETTINGS = f"{F}#settings"
S_TASKS = f"{F}#task-options"
S_CALLING = f"{F}#calling-tasks"
S_RETRIES = f"{F}#retries"
S_RESULTS = f"{F}#results"
S_DJRESULTS = f"{F}#django-celery-results"
S_CANVAS = f"{F}#canvas"
S_BEAT = f"{F}#periodic-tasks-beat"
S_LIMITS = f"{F}#time-limits"
S_SIGNALS = f"{F}#signals"
S_CLI = f"{F}#worker-command-line"
S_CONTROL = f"{F}#control-and-inspection"
S_SERIAL = f"{F}#serialization"
S_RATES = f"{F}#rate-limits-and-priorities"
S_POOLS = f"{F}#worker-pools"
S_DEPLOY = f"{F}#deployment"
S_GUARANTEES = "README.md#delivery-guarantees-and-timing"
S_INTEROP = f"{F}#interop-with-celery"
S_COMMANDS = f"{F}#commands"
S_EVENTS = f"{F}#monitoring-events-and-flower"

#: The pools the worker command runs (``processes`` is Celery's other name of prefork).
POOLS = ("prefork", "processes", "threads", "solo", "gevent")


def _each(kind: str, rule: Rule, names: str) -> dict[str, Rule]:
    """The same rule for each of the space-separated ``names`` of ``kind``."""
    return {f"{kind}:{name}": rule for name in names.split()}


def _call_rules() -> dict[str, Rule]:
    """``call:<option>`` rules of ``spinach_compat.app.call_options.OPTIONS`` (``call:*``:
    an option missing there is refused)."""
    rules = {
        f"call:{option.name}": Rule(
            option.status, f"{F}#{option.section}", option.note, option.accepts
        )
        for option in call_options.OPTIONS.values()
        if not option.internal
    }
    return {**rules, "call:*": Rule(UNSUPPORTED, S_CALLING, call_options.UNKNOWN_NOTE)}


_S = lambda section, note="", accepts=None: Rule(SUPPORTED, section, note, accepts)  # noqa: E731
_D = lambda section, note, accepts=None: Rule(DIFFERENT, section, note, accepts)  # noqa: E731
_U = lambda section, note, accepts=None: Rule(UNSUPPORTED, section, note, accepts)  # noqa: E731
_NO_EFFECT = "accepted, no effect"
_NOT_SENT = "defined so receivers connect, but never sent"
_PREFETCH = "held beyond the threads only while jobs are short; 0 (no limit) is refused"

#: The one table: ``kind:name`` -> Rule. ``kind:*`` is the fallback of a kind.
RULES: dict[str, Rule] = {
    # -- names and attributes: notes and known differences only (verdicts: facade.py) ---
    "module:*": _U(S_IMPORTS, "no such module in spinach_compat"),
    "name:*": _S(S_IMPORTS, "in spinach_compat under the same name"),
    "attr:*": _S(S_IMPORTS, "an attribute of the facade's class"),
    "name:celery.app.base.Celery": _S(S_IMPORTS, "one native Engine per app; namespace = main"),
    "name:celery.app.shared_task": _S(S_TASKS, "registered with every app"),
    "decorator:task": _S(S_TASKS, "@app.task"),
    "name:celery.schedules.crontab": _D(S_BEAT, "sent ahead by the workers' crontab ticker"),
    "name:celery.schedules.solar": _U(S_BEAT, "solar schedules are refused; use a fixed period"),
    "name:celery.canvas.group": _S(S_CANVAS, "members sent in one round trip; a GroupResult"),
    "name:celery.canvas.chain": _S(S_CANVAS, "each task linked to the next"),
    "name:celery.canvas.chord": _S(S_CANVAS, "a counter in the result backend"),
    "name:celery.canvas.chunks": _U(S_CANVAS, "chunks is refused; split the work yourself"),
    "name:celery.canvas.xmap": _U(S_CANVAS, "xmap is refused"),
    "name:celery.canvas.xstarmap": _U(S_CANVAS, "xstarmap is refused"),
    "attr:celery.app.task.Task.chunks": _U(S_CANVAS, "chunks is refused; split the work"),
    "attr:celery.app.task.Task.map": _U(S_CANVAS, "xmap is refused"),
    "attr:celery.app.task.Task.starmap": _U(S_CANVAS, "xstarmap is refused"),
    "name:celery.result.GroupResult": _S(S_RESULTS, "what group().apply_async() returns"),
    "canvas:|": _S(S_CANVAS, "a chain (group | signature: a chord)"),
    "base:*": _U(S_TASKS, "a task base class from a package built on Celery's own Task"),
    # -- settings (Celery(...) keywords, app.conf, config_from_object) --------------------
    "setting:broker_url": _S(S_BROKERS, "memory:// or redis:// only", _BROKERS),
    "setting:spinach_legacy_tasks": _S(S_INTEROP, "sent as Celery messages to Celery workers"),
    "setting:task_protocol": _U(S_INTEROP, "the bridge dead-letters protocol 1 messages", _in(2)),
    "setting:result_backend": _S(S_BROKERS, "memory://, redis://, django-db/-cache", _BACKENDS),
    "setting:result_expires": _S(S_RESULTS),
    "setting:cache_backend": _S(S_DJRESULTS, "the Django cache alias of django-cache"),
    "setting:result_serializer": _U(S_SERIAL, "kombu's serializers; auth is refused", _NOT_SIGNED),
    "setting:accept_content": _S(S_SERIAL, "gates what workers decode (None: JSON only)"),
    "setting:result_accept_content": _S(S_SERIAL, "gates what results are decoded"),
    "setting:task_serializer": _U(S_SERIAL, "kombu's serializers; auth is refused", _NOT_SIGNED),
    "setting:result_extended": _S(S_RESULTS, "name, args, kwargs, worker, retries, queue"),
    "setting:task_compression": _S(S_SERIAL, "kombu's compressions"),
    "setting:result_compression": _U(S_SERIAL, "compressed results are refused", _is_none),
    "setting:task_default_rate_limit": _S(
        S_RATES, "a token bucket per worker process (spinach_global_rate_limits: per namespace)"
    ),
    "setting:task_annotations": _U(S_TASKS, "annotations are refused", _is_none),
    "setting:task_repr_maxlevels": _U(
        S_SETTINGS, "only 3, the default: argsrepr/kwargsrepr show 3 levels", _in(3, None)
    ),
    "setting:task_default_priority": _S(S_RATES, "kombu's Redis priority bands"),
    "setting:beat_scheduler": _S(S_BEAT, "run by spinach-compat beat (third parties: the shim)"),
    "setting:beat_schedule": _D(S_BEAT, "fired by the workers, or by beat while one leads"),
    "setting:spinach_beat_lease_term": _S(S_BEAT, "a standby beat takes over within 2 terms"),
    "setting:spinach_global_rate_limits": _S(S_RATES, "rate limits for the whole namespace"),
    "setting:spinach_prefetch_short_job": _S(
        S_SETTINGS, "the mean run time below which a worker holds tasks beyond its threads"
    ),
    "setting:worker_pool": _U(
        S_POOLS, "prefork, threads, gevent or solo; eventlet refused", _in(*POOLS)
    ),
    **_each(
        "setting",
        _S(S_POOLS, "a prefork child is replaced after the task crossing it"),
        "worker_max_tasks_per_child worker_max_memory_per_child",
    ),
    **_each(
        "setting",
        _S(S_SETTINGS),
        "enable_utc timezone task_always_eager task_eager_propagates task_store_eager_result "
        "task_default_queue task_ignore_result task_store_errors_even_if_ignored "
        "task_track_started task_publish_retry task_publish_retry_policy "
        "task_create_missing_queues imports include worker_concurrency "
        "worker_hijack_root_logger spinach_namespace",
    ),
    "setting:task_routes": _D(
        S_SETTINGS, "a route's queue and priority are used; 'legacy': True sends to Celery workers"
    ),
    "setting:task_queues": _D(S_SETTINGS, "only the queue names are used"),
    "setting:task_time_limit": _D(S_LIMITS, "enforced in threads"),
    "setting:task_soft_time_limit": _D(S_LIMITS, "enforced in threads"),
    "setting:task_acks_late": _D(S_GUARANTEES, "tasks are always run again after a crash"),
    "setting:task_reject_on_worker_lost": _D(S_GUARANTEES, "tasks are always run again"),
    "setting:task_retry_on_worker_lost": _U(S_GUARANTEES, "always run again", _in(False, None)),
    **_each(
        "setting",
        _U(S_TASKS, "only True: failed or timed-out tasks are not run again", _in(True, None)),
        "task_acks_on_failure_or_timeout task_acks_on_failure task_acks_on_timeout",
    ),
    **_each(
        "setting",
        _D(S_SETTINGS, _NO_EFFECT),
        "result_backend_transport_options task_default_exchange "
        "task_default_routing_key beat_max_loop_interval",
    ),
    "setting:worker_prefetch_multiplier": _D(S_SETTINGS, _PREFETCH),
    "flag:--prefetch-multiplier": _D(S_CLI, _PREFETCH),
    "setting:worker_send_task_events": _S(S_EVENTS, "task and worker events, as -E"),
    "setting:task_send_sent_event": _S(S_EVENTS, "task-sent from delay() and apply_async()"),
    **_each(
        "setting",
        _D(S_SETTINGS, "read when a worker starts (retrying an unreachable broker) only"),
        "broker_connection_retry broker_connection_retry_on_startup broker_connection_max_retries "
        "broker_connection_timeout",
    ),
    **_each(
        "setting",
        _S(S_CONTROL, "the workers' remote-control mailbox, as Celery's"),
        "control_exchange control_queue_ttl control_queue_expires worker_enable_remote_control",
    ),
    "setting:broker_transport_options": _D(
        S_RATES, "only priority_steps, partitions and the startup waits (interval_*) are read"
    ),
    "setting:*": _D(S_SETTINGS, "not read by spinach_compat"),
    # -- task options (@app.task / @shared_task / Task subclasses) -------------------------
    **_each(
        "task",
        _S(S_TASKS),
        "name bind base max_retries default_retry_delay ignore_result track_started expires "
        "queue throws autoretry_for typing dont_autoretry_for retry_kwargs retry_backoff "
        "retry_backoff_max retry_jitter store_errors_even_if_ignored",
    ),
    "task:serializer": _U(S_SERIAL, "kombu's serializers; auth is refused", _NOT_SIGNED),
    "task:acks_late": _D(S_GUARANTEES, "tasks are always run again after a crash"),
    "task:time_limit": _D(S_LIMITS, "enforced in threads"),
    "task:soft_time_limit": _D(S_LIMITS, "enforced in threads"),
    "task:rate_limit": _S(
        S_RATES, "a token bucket per worker process (spinach_global_rate_limits: per namespace)"
    ),
    "task:priority": _S(S_RATES, "kombu's Redis priority bands"),
    "task:reject_on_worker_lost": _U(S_GUARANTEES, "always run again", _is_none),
    "task:compression": _S(S_SERIAL, "kombu's compressions"),
    "task:pydantic": _U(S_TASKS, "pydantic conversion is refused", _is_none),
    "task:shadow_name": _U(S_TASKS, "shadow names are refused", _is_none),
    "task:retry_on_worker_lost": _U(S_GUARANTEES, "always run again", _is_none),
    **_each(
        "task",
        _U(S_TASKS, "only True: failed or timed-out tasks are not run again", _in(True, None)),
        "acks_on_failure_or_timeout acks_on_failure acks_on_timeout",
    ),
    "task:resultrepr_maxsize": _U(S_TASKS, "the log line is not configurable", _in(1024)),
    **_each(
        "task",
        _U(S_TASKS, "read by Celery's worker only: refused"),
        "Strategy start_strategy from_config annotate Request",
    ),
    "task:send_events": _S(S_EVENTS, "False: no task events for it"),
    "task:trail": _D(S_TASKS, "accepted, no effect"),
    "task:*": _D(S_TASKS, "set as a task attribute, no effect"),
    # -- apply_async options: from the declaration publishing validates against ----------
    **_call_rules(),
    # -- self.retry options ------------------------------------------------------------
    **_each(
        "retry",
        _S(S_RETRIES),
        "exc countdown eta max_retries throw args kwargs",
    ),
    "retry:*": _D(S_RETRIES, "ignored: the job is retried on its own queue"),
    # -- schedules, control ------------------------------------------------------------
    "schedule:period": _S(S_BEAT, "a fixed period"),
    "control:revoke(terminate)": _D(
        S_CONTROL, "stops the task's thread; a C call (sleep, socket read) first returns"
    ),
    "control:revoke(destination)": _D(
        S_CONTROL, "every worker honours the revocation; destination limits the replies"
    ),
    # -- signals -----------------------------------------------------------------------
    **_each(
        "signal",
        _S(S_SIGNALS),
        "before_task_publish after_task_publish task_received task_prerun task_postrun "
        "task_success task_failure task_retry task_revoked task_unknown task_internal_error "
        "celeryd_init setup_logging after_setup_logger after_setup_task_logger import_modules "
        "worker_init celeryd_after_setup worker_ready worker_shutting_down "
        "worker_process_shutdown worker_shutdown",
    ),
    "signal:worker_process_init": _D(S_SIGNALS, "sent once: tasks run in threads"),
    **_each(
        "signal",
        _D(S_SIGNALS, _NOT_SENT),
        "task_rejected task_sent worker_before_create_process heartbeat_sent user_preload_options",
    ),
    **_each(
        "signal",
        _D(S_BEAT, "sent when a beat first leads, not at start"),
        "beat_init beat_embedded_init",
    ),
    "signal:*": _U(S_SIGNALS, "not defined by spinach_compat"),
    # -- command line ------------------------------------------------------------------
    "cli:worker": _S(S_CLI, "spinach-compat -A proj worker"),
    "cli:inspect": _S(S_CONTROL, "answered by the workers through Celery's mailbox"),
    "cli:purge": _S(S_CONTROL),
    "cli:beat": _S(S_BEAT, "spinach-compat -A proj beat; one leads across replicas"),
    "cli:*": _U(S_CLI, "no such sub-command in spinach-compat"),
    **_each(
        "flag",
        _S(S_CLI),
        "-A --app -b --broker --result-backend --workdir -q --quiet -n --hostname -Q --queues "
        "-X --exclude-queues -c --concurrency -l --loglevel -f --logfile -I --include "
        "--pidfile --time-limit --soft-time-limit --uid --gid --umask --executable",
    ),
    **_each(
        "flag",
        _S(S_POOLS, "prefork children replaced or scaled as Celery's"),
        "--autoscale --max-tasks-per-child --max-memory-per-child",
    ),
    **_each("flag", _D(S_DEPLOY, "in the background, in the current directory"), "-D --detach"),
    **_each("flag", _D(S_DEPLOY, "accepted: revocations persist in the broker"), "-S --statedb"),
    "flag:--celery-queues": _S(S_INTEROP, "also consumes Celery's messages on these queues"),
    "flag:--metrics-port": _S(S_CLI, "serves Prometheus metrics of the tasks (new)"),
    "flag:-B": _D(S_BEAT, "beat in a thread of the worker; one leads across replicas"),
    "flag:--beat": _D(S_BEAT, "beat in a thread of the worker; one leads across replicas"),
    "flag:--scheduler": _S(S_BEAT, "the scheduler of -B"),
    **_each(
        "flag",
        _U(S_BEAT, "refused by spinach-compat beat: run it under a process supervisor"),
        "beat:--detach beat:--uid beat:--gid beat:--enable-remote-control",
    ),
    **_each(
        "flag",
        _D(S_CLI, _NO_EFFECT),
        "-O --without-gossip --without-mingle --without-heartbeat "
        "--heartbeat-interval",
    ),
    **_each(
        "flag",
        _S(S_BEAT, "the schedule file of -B"),
        "-s --schedule --schedule-filename",
    ),
    "flag:-P": _U(S_POOLS, "prefork, threads, gevent or solo; eventlet refused", _in(*POOLS)),
    "flag:--pool": _U(S_POOLS, "prefork, threads, gevent or solo; eventlet refused", _in(*POOLS)),
    **_each(
        "flag",
        _S(S_EVENTS, "task and worker events, for celery events and Flower"),
        "-E --task-events --events",
    ),
    "flag:*": _U(S_CLI, "unknown to spinach-compat"),
}

#: Celery's other sub-commands (a block of its own, apart from the worker's flags).
RULES.update({
    "cli:status": _S(S_COMMANDS, "the workers answering ping"),
    "cli:control": _S(S_COMMANDS, "each command is judged: Celery's are sent to the workers"),
    "cli:call": _S(S_COMMANDS),
    "cli:result": _S(S_COMMANDS),
    "cli:report": _D(S_COMMANDS, "our versions and the Celery API followed, settings masked"),
    "cli:shell": _S(S_COMMANDS),
    "cli:multi": _S(S_COMMANDS, "Celery's node names; the workers' flags are judged"),
    "cli:events": _S(S_EVENTS, "--dump; the curses monitor (no --dump) is refused"),
    **_each(
        "flag:events",
        _U(S_EVENTS, "snapshot cameras are refused: use --dump or your own receiver"),
        "-c --camera -F --frequency --freq -r --maxrate",
    ),
    "flag:events:--detach": _U(S_EVENTS, "refused: run it under your supervisor"),
    "cli:flower": _D(S_EVENTS, "Flower is a program of its own: run it with real Celery's "
                     "command on the same broker; it reads the -E workers' events"),
    **{
        f"cli:{name}": _U(S_COMMANDS, f"no such sub-command: {why}")
        for name, why in {
            "graph": "no worker graph; use status",
            "migrate": "drain the old broker with worker --celery-queues",
            "upgrade": "both setting names are read; run spinach-compat check",
            "amqp": "no AMQP broker; use purge -Q",
            "list": "no AMQP bindings; use inspect active_queues",
            "logtool": "worker logs are plain logging lines",
        }.items()
    },
})  # fmt: skip


def rule_for(key: str) -> Rule:
    """The rule of ``kind:name``, else the fallback of its kind."""
    return RULES.get(key) or RULES[key.split(":", 1)[0] + ":*"]
