"""``status``, ``inspect COMMAND`` and ``control COMMAND``: Celery's remote control, as
Celery's command line runs and prints it.

``status`` lists the workers that answer ``ping`` (``->  celery@host: OK`` each, then
``N nodes online.``). ``inspect`` and ``control`` take the commands of
``spinach_compat.worker.control.Panel`` (Celery's, and the project's own registered with
``inspect_command``/``control_command``), their arguments compiled from the command's
``args`` and ``variadic`` as Celery does; each reply is printed as it comes. With no reply,
``Error: No nodes replied within time constraint`` and exit status 69 (Celery's
``EX_UNAVAILABLE``); ``control shutdown`` gets none, as with Celery's workers.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

from .celery import EXIT_OK, EXIT_UNAVAILABLE, UsageError, _split, pretty_reply

if TYPE_CHECKING:
    from ..app.base import Celery

NO_REPLY = "Error: No nodes replied within time constraint"


def add_parsers(commands: Any, common: argparse.ArgumentParser) -> None:
    """Add ``status``, ``inspect`` and ``control`` to the sub-commands."""
    status = commands.add_parser("status", parents=[common], help="list the live workers")
    _remote_options(status)
    status.set_defaults(handler=run_status)
    for kind, text in (("inspect", "inspect the workers"), ("control", "remote-control commands")):
        parser = commands.add_parser(kind, parents=[common], help=text)
        parser.add_argument("action", metavar="COMMAND", nargs="?", help=f"the {kind} command")
        parser.add_argument("arguments", nargs="*", help="the command's arguments")
        parser.add_argument("--list", action="store_true", help=f"list the {kind} commands")
        _remote_options(parser)
        parser.set_defaults(handler=run_inspect if kind == "inspect" else run_control)


def _remote_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-t", "--timeout", type=float, default=1.0,
                        help="seconds to wait for a reply")  # fmt: skip
    parser.add_argument("-d", "--destination", help="node names, comma separated")
    parser.add_argument("-j", "--json", action="store_true", help="print JSON")


def _destination(args: argparse.Namespace) -> list[str] | None:
    return _split([args.destination]) if args.destination else None


def run_status(app: Celery, args: argparse.Namespace) -> int:
    """``status``: the workers answering ``ping``."""
    callback = None if args.json else _say
    replies = app.control.inspect(_destination(args), timeout=args.timeout,
                                  callback=callback).ping()  # fmt: skip
    if not replies:
        print(NO_REPLY, file=sys.stderr)
        return EXIT_UNAVAILABLE
    if args.json:
        print(json.dumps(replies))
    _online(args, len(replies))
    return EXIT_OK


def run_inspect(app: Celery, args: argparse.Namespace) -> int:
    """``inspect COMMAND [ARGS]``: each node's reply, then how many replied."""
    arguments = _command(args, "inspect")
    if arguments is None:
        return EXIT_OK
    callback = None if args.json else _say_with_body
    inspect = app.control.inspect(_destination(args), timeout=args.timeout, callback=callback)
    replies = inspect._request(args.action, **arguments)
    if not replies:
        print(NO_REPLY, file=sys.stderr)
        return EXIT_UNAVAILABLE
    if args.json:
        print(json.dumps(replies, default=str))
        return EXIT_OK
    _online(args, len(replies))
    return EXIT_OK


def run_control(app: Celery, args: argparse.Namespace) -> int:
    """``control COMMAND [ARGS]``: each node's reply."""
    arguments = _command(args, "control")
    if arguments is None:
        return EXIT_OK
    callback = None if args.json else _say_with_body
    replies = app.control.broadcast(args.action, arguments, _destination(args), reply=True,
                                    timeout=args.timeout, callback=callback)  # fmt: skip
    if not replies:
        print(NO_REPLY, file=sys.stderr)
        return EXIT_UNAVAILABLE
    if args.json:
        print(json.dumps(replies, default=str))
    return EXIT_OK


def _online(args: argparse.Namespace, count: int) -> None:
    if not args.quiet:
        print(f"\n{count} node{'s' if count != 1 else ''} online.")


def _say(reply: dict[str, Any], body: bool = False) -> None:
    """Print one node's reply as it comes: ``->  node: STATUS`` (and the body)."""
    node, answer = next(iter(reply.items()))
    status, text = pretty_reply(answer)
    print(f"->  {node}: {status}", flush=not body)
    if body and text:
        print("\n".join(f"    {line}" for line in text.splitlines()), flush=True)


def _say_with_body(reply: dict[str, Any]) -> None:
    _say(reply, body=True)


def commands_of(kind: str) -> dict[str, Any]:
    """The visible commands of ``kind`` (inspect or control), by name."""
    from ..worker.control import Panel

    return dict(sorted((n, i) for n, i in Panel.meta.items() if i.type == kind and i.visible))


def _command(args: argparse.Namespace, kind: str) -> dict[str, Any] | None:
    """The command's arguments (None after ``--list``); a usage error for a command not
    of ``kind`` or wrong arguments."""
    known = commands_of(kind)
    if args.list:
        for name, info in known.items():
            print(f"  {name} {info.signature or ''}".rstrip().ljust(40) + f" {info.help}")
        return None
    if args.action is None:
        raise UsageError("Missing argument 'COMMAND'.")
    if args.action not in known:
        raise UsageError(f"Command {args.action} not recognized. Available {kind} commands: "
                         f"{', '.join(known)}")  # fmt: skip
    return compile_arguments(args.action, list(args.arguments))


def compile_arguments(command: str, values: list[str]) -> dict[str, Any]:
    """The command's arguments from the command line, as Celery's ``control`` makes them:
    the named ``args`` in order (converted by their type), the rest to ``variadic``."""
    from ..worker.control import Panel

    meta = Panel.meta[command]
    named = list(meta.args or [])
    too_few = meta.variadic and len(values) < len(named)  # terminate <signal> ids...
    if too_few or (len(values) > len(named) and not meta.variadic):
        raise UsageError(f"Command {command!r} takes arguments: {meta.signature}")
    arguments: dict[str, Any] = {}
    for (name, kind), value in zip(named, values, strict=False):
        try:
            arguments[name] = kind(value) if kind is not None else value
        except ValueError as exc:
            raise UsageError(f"Command {command!r}: {name}: {exc}") from None
    if meta.variadic:
        arguments[meta.variadic] = values[len(named) :]
    return arguments
