"""``call NAME`` sends a task by name and prints its id; ``result ID`` prints its value.

As Celery's: ``call`` takes ``-a/--args`` (a JSON array), ``-k/--kwargs`` (a JSON object),
``--eta`` (ISO 8601), ``--countdown`` (seconds), ``--expires`` (seconds or ISO 8601),
``--serializer`` (``json`` by default, whatever the app's ``task_serializer``), ``--queue``,
``--exchange`` and ``--routing-key``, and sends with ``app.send_task``. ``result`` waits for
the task's value (``-t/--task NAME`` reads it through that task's ``AsyncResult``) and
prints it; ``--traceback`` prints the stored traceback instead. Where Celery shows a Python
traceback (a failed task, an unknown task name), these print one ``Error:`` line and exit
with status 1 (the task's own stored traceback first, for a failed task).
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime
from typing import TYPE_CHECKING, Any

from .celery import EXIT_FAILURE, EXIT_OK, UsageError

if TYPE_CHECKING:
    from ..app.base import Celery


def add_parsers(commands: Any, common: argparse.ArgumentParser) -> None:
    """Add ``call`` and ``result`` to the sub-commands."""
    call = commands.add_parser("call", parents=[common], help="send a task by name")
    add = call.add_argument
    add("name", help="the task's name")
    add("-a", "--args", type=_json_of(list, "array"), default=[], help="a JSON array")
    add("-k", "--kwargs", type=_json_of(dict, "object"), default={}, help="a JSON object")
    add("--eta", type=_iso8601, help="when to run it (ISO 8601)")
    add("--countdown", type=float, help="seconds from now")
    add("--expires", type=_float_or_iso8601, help="seconds from now, or ISO 8601")
    add("--serializer", default="json", help="json (default)")
    add("--queue", help="the queue")
    add("--exchange", help="the exchange (as the queue name, as a direct exchange)")
    add("--routing-key", help="the routing key (the queue)")
    call.set_defaults(handler=run_call)
    result = commands.add_parser("result", parents=[common], help="print a task's result")
    result.add_argument("task_id", help="the task's id")
    result.add_argument("-t", "--task", help="the task's name (its AsyncResult)")
    result.add_argument("--traceback", action="store_true", help="the traceback instead")
    result.set_defaults(handler=run_result)


def _json_of(kind: type, what: str) -> Any:
    def parse(text: str) -> Any:
        try:
            value = json.loads(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(f"{text!r} is not JSON: {exc}") from None
        if not isinstance(value, kind):
            raise argparse.ArgumentTypeError(f"{text} was not an {what}")
        return value

    return parse


def _iso8601(text: str) -> datetime:
    from ..utils.time import maybe_iso8601

    try:
        value = maybe_iso8601(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if value is None:
        raise argparse.ArgumentTypeError("an empty date")
    return value


def _float_or_iso8601(text: str) -> float | datetime:
    try:
        return float(text)
    except ValueError:
        return _iso8601(text)


def run_call(app: Celery, args: argparse.Namespace) -> int:
    """``call NAME``: send it; print its id."""
    options = {
        "countdown": args.countdown, "eta": args.eta, "expires": args.expires,
        "serializer": args.serializer, "queue": args.queue, "exchange": args.exchange,
        "routing_key": args.routing_key,
    }  # fmt: skip
    options = {key: value for key, value in options.items() if value is not None}
    try:
        result = app.send_task(args.name, args=args.args, kwargs=args.kwargs, **options)
    except Exception as exc:  # e.g. a serializer the app does not accept: nothing was sent
        print(f"Error: sending {args.name}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    print(result.id)
    return EXIT_OK


def run_result(app: Celery, args: argparse.Namespace) -> int:
    """``result ID``: wait for its value and print it (or its stored traceback)."""
    if args.task:
        app.loader.import_default_modules()
        if args.task not in app.tasks:
            raise UsageError(f"no task named {args.task!r} in the app {app.main!r}")
        result = app.tasks[args.task].AsyncResult(args.task_id)
    else:
        result = app.AsyncResult(args.task_id)
    if args.traceback:
        _echo(result.traceback)
        return EXIT_OK
    try:
        value = result.get()
    except Exception as exc:
        if result.traceback:
            print(result.traceback.rstrip(), file=sys.stderr)
        print(f"Error: task {args.task_id} raised {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    _echo(value)
    return EXIT_OK


def _echo(value: Any) -> None:
    """Print as click's ``echo``: None as an empty line, anything else as ``str``."""
    print("" if value is None else value)
