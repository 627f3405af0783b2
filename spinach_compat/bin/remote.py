"""``status`` and ``control COMMAND``: Celery's remote-control commands, as Celery prints them.

``status`` lists the live workers (``->  celery@host: OK`` each, then ``N nodes online.``);
with none, ``Error: No nodes replied within time constraint`` and exit status 69 (Celery's
``EX_UNAVAILABLE``). ``control revoke ID...`` and ``control terminate SIGNAL ID...`` act
through ``app.control`` (see ``spinach_compat.app.broadcast``) and print each live worker's
reply. Celery's other control commands change a running worker (``rate_limit``,
``shutdown``, ``pool_grow``, ``add_consumer``, ...): the facade's workers do not take
commands at run time, so they are refused with what to do instead (exit status 69, as
Celery's ``Unable to run the `control ...` command``), and nothing is printed as done.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

from ..surface import REFUSED
from .celery import EXIT_OK, EXIT_UNAVAILABLE, UsageError, _split

if TYPE_CHECKING:
    from ..app.base import Celery

NO_REPLY = "Error: No nodes replied within time constraint"

#: Celery's control commands with their arguments: ``(name, type)`` each, then the name of
#: the variadic argument taking the rest (or None); the signature shown on misuse.
COMMANDS: dict[str, tuple[list[tuple[str, Any]], str | None, str]] = {
    "revoke": ([], "task_id", "[id1 [id2 [... [idN]]]]"),
    "terminate": ([("signal", str)], "task_id", "<signal> [id1 [id2 [... [idN]]]]"),
}

_CONTROL = "celery.app.control.Control."
_RESTART = "the worker's settings are read at start: change them and restart the worker"

#: Celery's control commands the facade refuses: what to do instead.
REFUSED_COMMANDS = {
    "rate_limit": "set rate_limit on the task (or task_annotations) and restart the workers",
    "time_limit": "set time_limit/soft_time_limit on the task (or task_time_limit) and "
    "restart the workers",
    "shutdown": "the workers take no command at run time: send SIGTERM to the worker process "
    "(a warm shutdown: systemctl stop, docker stop, kill -TERM), or "
    "`spinach-compat multi stop` for workers started by multi",
    "pool_grow": REFUSED[_CONTROL + "pool_grow"],
    "pool_shrink": REFUSED[_CONTROL + "pool_shrink"],
    "pool_restart": REFUSED[_CONTROL + "pool_restart"],
    "autoscale": REFUSED[_CONTROL + "autoscale"],
    "add_consumer": REFUSED[_CONTROL + "add_consumer"],
    "cancel_consumer": REFUSED[_CONTROL + "cancel_consumer"],
    "enable_events": REFUSED[_CONTROL + "enable_events"],
    "disable_events": REFUSED[_CONTROL + "disable_events"],
    "heartbeat": REFUSED[_CONTROL + "heartbeat"],
    "election": REFUSED[_CONTROL + "election"],
    "revoke_by_stamped_headers": "not from the command line yet: call "
    "app.control.revoke_by_stamped_headers({header: value}) or "
    "AsyncResult.revoke_by_stamped_headers from Python (see features.md#canvas)",
}


def add_parsers(commands: Any, common: argparse.ArgumentParser) -> None:
    """Add ``status`` and ``control`` to the sub-commands."""
    status = commands.add_parser("status", parents=[common], help="list the live workers")
    _remote_options(status)
    status.set_defaults(handler=run_status)
    control = commands.add_parser("control", parents=[common], help="remote-control commands")
    control.add_argument("action", metavar="COMMAND", help="revoke or terminate")
    control.add_argument("arguments", nargs="*", help="the command's arguments")
    _remote_options(control)
    control.set_defaults(handler=run_control)


def _remote_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-t", "--timeout", type=float, default=1.0, help="accepted")
    parser.add_argument("-d", "--destination", help="node names, comma separated")
    parser.add_argument("-j", "--json", action="store_true", help="print JSON")


def _destination(args: argparse.Namespace) -> list[str] | None:
    return _split([args.destination]) if args.destination else None


def run_status(app: Celery, args: argparse.Namespace) -> int:
    """``status``: the live workers."""
    replies = app.control.inspect(_destination(args), timeout=args.timeout).ping()
    if not replies:
        print(NO_REPLY, file=sys.stderr)
        return EXIT_UNAVAILABLE
    if args.json:
        print(json.dumps(replies))
    else:
        for node in replies:
            print(f"->  {node}: OK")
    if not args.quiet:
        count = len(replies)
        print(f"\n{count} node{'s' if count != 1 else ''} online.")
    return EXIT_OK


def run_control(app: Celery, args: argparse.Namespace) -> int:
    """``control COMMAND [ARGS]``: revoke and terminate; the others refused."""
    command = args.action
    if command in REFUSED_COMMANDS:
        print(f"Error: Unable to run the `control {command}` command. Reason: not supported by "
              f"spinach_compat: {REFUSED_COMMANDS[command]}", file=sys.stderr)  # fmt: skip
        return EXIT_UNAVAILABLE
    if command not in COMMANDS:
        known = ", ".join(sorted([*COMMANDS, *REFUSED_COMMANDS]))
        raise UsageError(f"Command {command} not recognized. Available control commands: {known}")
    arguments = compile_arguments(command, list(args.arguments))
    replies = app.control.broadcast(
        command, arguments, _destination(args), reply=True, timeout=args.timeout
    )
    if not replies:
        print(NO_REPLY, file=sys.stderr)
        print(f"(no worker is live; the {command} request is kept in the broker: workers "
              "started later honour it)", file=sys.stderr)  # fmt: skip
        return EXIT_UNAVAILABLE
    if args.json:
        print(json.dumps(replies))
        return EXIT_OK
    for reply in replies:
        for node, answer in reply.items():
            status, text = _pretty(answer)
            print(f"->  {node}: {status}")
            print("\n".join(f"        {line}" for line in text.splitlines()))
    return EXIT_OK


def compile_arguments(command: str, values: list[str]) -> dict[str, Any]:
    """The command's arguments from the command line, as Celery's ``control`` makes them."""
    named, variadic, signature = COMMANDS[command]
    if len(values) < len(named) or (variadic is None and len(values) > len(named)):
        raise UsageError(f"Command {command!r} takes arguments: {signature}")
    arguments: dict[str, Any] = {}
    for (name, kind), value in zip(named, values, strict=False):
        arguments[name] = kind(value)
    if variadic is not None:
        arguments[variadic] = values[len(named) :]
    return arguments


def _pretty(answer: Any) -> tuple[str, str]:
    """``('OK' or 'ERROR', text)`` of a worker's reply, as Celery's command prints it."""
    if isinstance(answer, dict) and ("ok" in answer or "error" in answer):
        status = "OK" if "ok" in answer else "ERROR"
        return status, str(answer.get("ok", answer.get("error")))
    return "OK", answer if isinstance(answer, str) else json.dumps(answer, indent=4)
