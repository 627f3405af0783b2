"""The options of ``apply_async``/``send_task``: one declaration, read by publishing and
by the migration checker.

Each option says which step of the publishing pipeline (``spinach_compat.app.publish``)
reads it and how it compares with Celery: *supported* (as Celery), *different* (honoured
differently, or accepted with no effect) or *unsupported* (refused unless None). The
pipeline validates a call's options here (``check_options``); ``spinach_compat.check.rules``
derives its ``call:<option>`` rules from ``OPTIONS``, so the two cannot disagree.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from spinach.history import REPR_KEYS

from ..exceptions import UnsupportedFeature
from . import codec

SUPPORTED, DIFFERENT, UNSUPPORTED = "supported", "different", "unsupported"

# The steps of the pipeline reading an option (see ``spinach_compat.app.publish``).
TASK, ROUTE, META, LINKS = "task", "route", "meta", "links"
ENCODING, ENQUEUE = "encoding", "enqueue"
NOWHERE = "nowhere"  #: accepted, read by no step (no effect) or refused

# Sections (anchors) of the guide's features.md, where each option is described.
CALLING, LIMITS, SERIAL, CANVAS, RATES = (
    "calling-tasks", "time-limits", "serialization", "canvas", "rate-limits-and-priorities",
)  # fmt: skip


@dataclass(frozen=True)
class CallOption:
    """How the facade treats one ``apply_async`` option.

    ``accepts`` (if any) tells the values honoured from those refused; ``internal`` marks an
    option only the facade itself passes (its canvas), left out of the checker's table;
    ``parameter`` one taken as a named parameter, never found among the options.
    """

    name: str
    status: str
    step: str
    note: str
    section: str = CALLING
    accepts: Callable[[Any], bool] | None = None
    internal: bool = False
    parameter: bool = False


def _is_none(value: Any) -> bool:
    return value is None


def _not_refused(value: Any) -> bool:
    """A serializer the facade does not refuse outright (message signing)."""
    return value not in codec.REFUSED_SERIALIZERS


_NO_EFFECT = "accepted, no effect"
_CANVAS_INTERNAL = (
    "set by Celery's own canvas; the facade's chain(...) and chord(...) link their tasks "
    "themselves: build one of those instead"
)


def _declare(*options: CallOption) -> dict[str, CallOption]:
    return {option.name: option for option in options}


def _refused(name: str, why: str, section: str = CALLING) -> CallOption:
    """An option refused unless None."""
    return CallOption(name, UNSUPPORTED, NOWHERE, why, section, _is_none)


def _no_effect(names: str) -> list[CallOption]:
    return [CallOption(name, DIFFERENT, NOWHERE, _NO_EFFECT) for name in names.split()]


#: Every option ``apply_async``/``send_task`` takes; any other is refused.
OPTIONS: Mapping[str, CallOption] = _declare(
    CallOption("args", SUPPORTED, TASK, "the positional arguments", parameter=True),
    CallOption("kwargs", SUPPORTED, TASK, "the keyword arguments", parameter=True),
    CallOption("task_type", SUPPORTED, TASK, "the task whose options apply (else its name's)"),
    CallOption("task_id", SUPPORTED, TASK, "the message's id (else a new one)"),
    CallOption("queue", SUPPORTED, ROUTE, "over the task's queue and its route"),
    CallOption("routing_key", SUPPORTED, ROUTE, "the queue when queue= is not given"),
    CallOption("route_name", SUPPORTED, ROUTE, "the name routed by", CANVAS, internal=True),
    CallOption("priority", SUPPORTED, ROUTE, "kombu's Redis priority bands", RATES),
    CallOption("countdown", SUPPORTED, META, "held in Redis until due"),
    CallOption("eta", SUPPORTED, META, "held in Redis until due"),
    CallOption("expires", SUPPORTED, META, "over the task's expires"),
    CallOption("headers", SUPPORTED, META, "in the task's request"),
    CallOption("argsrepr", SUPPORTED, META, "shown for args: events, request, result rows"),
    CallOption("kwargsrepr", SUPPORTED, META, "shown for kwargs: events, request, result rows"),
    CallOption("ignore_result", SUPPORTED, META, "over the task's ignore_result"),
    CallOption("root_id", SUPPORTED, META, "else the calling task's root, else the id"),
    CallOption("parent_id", SUPPORTED, META, "else the calling task's id"),
    CallOption("time_limit", DIFFERENT, META, "enforced in threads", LIMITS),
    CallOption("soft_time_limit", DIFFERENT, META, "enforced in threads", LIMITS),
    CallOption("add_to_parent", SUPPORTED, META, "False: no child of the running task", CANVAS),
    CallOption("group_id", SUPPORTED, META, "the task's request.group", CANVAS),
    CallOption("group_index", SUPPORTED, META, "the task's request.group_index", CANVAS),
    CallOption("replaced_task_nesting", DIFFERENT, META, "its own native job id", CANVAS),
    CallOption("link", SUPPORTED, LINKS, "Celery's callbacks", CANVAS),
    CallOption("link_error", SUPPORTED, LINKS, "Celery's errback calling rule", CANVAS),
    CallOption("spinach_chord", SUPPORTED, LINKS, "the facade's chord", CANVAS, internal=True),
    _refused("chain", _CANVAS_INTERNAL, CANVAS),
    _refused("chord", _CANVAS_INTERNAL, CANVAS),
    CallOption(
        "serializer",
        SUPPORTED,
        ENCODING,
        "kombu's serializers; auth is refused",
        SERIAL,
        _not_refused,
    ),
    CallOption("compression", SUPPORTED, ENCODING, "kombu's compressions", SERIAL),
    CallOption("retry", SUPPORTED, ENQUEUE, "over task_publish_retry"),
    CallOption("retry_policy", SUPPORTED, ENQUEUE, "merged over task_publish_retry_policy"),
    _refused("producer", "custom producers are not supported: jobs go to the app's engine"),
    _refused("connection", "custom connections are not supported: jobs go to the app's engine"),
    *_no_effect(
        "shadow exchange exchange_type declare delivery_mode mandatory "
        "reply_to retries result_cls origin"
    ),
)

#: What the checker says of an option missing from ``OPTIONS``.
UNKNOWN_NOTE = "unknown apply_async options are refused"

#: Options refused unless None, with why: Celery's own, the facade cannot honour them.
MUST_BE_NONE: Mapping[str, str] = {
    name: option.note
    for name, option in OPTIONS.items()
    if option.status == UNSUPPORTED and option.accepts is _is_none
}


def check_options(options: Mapping[str, Any], task: str | None = None) -> None:
    """Raise ``UnsupportedFeature`` for an option the facade cannot honour (as declared),
    ``TypeError`` for a value of the wrong type (``task``: the name its error gives)."""
    for name, why in MUST_BE_NONE.items():
        if options.get(name) is not None:
            raise UnsupportedFeature(
                f"apply_async({name}={options[name]!r}): {why} (see migration_guide/)"
            )
    unknown = [name for name in options if name not in OPTIONS or OPTIONS[name].parameter]
    if unknown:
        raise UnsupportedFeature(
            f"apply_async options not supported by spinach_compat: {sorted(unknown)} "
            "(see migration_guide/)"
        )
    for name in REPRS:
        _check_repr(name, options.get(name), task)
    codec.check_serializer(options.get("serializer"), "apply_async() option serializer")
    codec.check_compression(options.get("compression"), "apply_async() option compression")


#: The options shown in place of the arguments (events, logs, result rows), as Celery's:
#: the meta keys the engine's views read (``spinach.history.REPR_KEYS``).
REPRS = REPR_KEYS


def _check_repr(name: str, value: Any, task: str | None) -> None:
    """``TypeError`` unless ``value`` (option ``name``) is a string or None."""
    if value is not None and not isinstance(value, str):
        of = f"task {task!r}: " if task else ""
        raise TypeError(
            f"{of}apply_async({name}={value!r}): must be a string, the text shown in place of "
            f"the {name[:-4]} (events, logs, result rows), not {type(value).__name__}"
        )
