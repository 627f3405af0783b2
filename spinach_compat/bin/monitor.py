"""``events``: Celery's ``celery events --dump``, printing the events of the app's broker.

``spinach-compat -A proj events --dump`` prints one line per event as Celery's dumper
does (``hostname [time] type: fields``, task events with ``name(id) args=... kwargs=...``)
until SIGINT or SIGTERM, reconnecting when the broker goes away. The curses monitor (no
``--dump``) and the snapshot cameras (``-c``) are refused, with what to use instead. The
module is not named as Celery's ``celery.bin.events``, which the import shim refuses.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, TextIO

from .celery import EXIT_OK, UsageError

if TYPE_CHECKING:
    from ..app.base import Celery

_GUIDE = "see migration_guide/features.md#monitoring-events-and-flower"
#: Seconds between attempts to reach the broker again: shorter notices it sooner.
RECONNECT_INTERVAL = 2.0
#: Task names remembered, to name the task of a later event (as Celery's dumper).
NAMES_KEPT = 4096

HUMAN_TYPES = {"worker-offline": "shutdown", "worker-online": "started",
               "worker-heartbeat": "heartbeat"}  # fmt: skip


def add_parsers(commands: Any, common: argparse.ArgumentParser) -> None:
    """Add ``events`` to the sub-commands."""
    events = commands.add_parser("events", parents=[common], help="print events (--dump)")
    add = events.add_argument
    add("-d", "--dump", action="store_true", help="print the events as they come")
    add("-c", "--camera", help="refused: snapshot cameras are not supported")
    add("-F", "--frequency", "--freq", type=float, help="the camera's: refused with it")
    add("-r", "--maxrate", help="the camera's: refused with it")
    add("-l", "--loglevel", help="accepted")
    for flag in ("--logfile", "--pidfile", "--uid", "--gid", "--umask", "--executable"):
        add(flag, help="accepted, no effect")
    add("--detach", action="store_true", help="refused: run it in the foreground")
    events.set_defaults(handler=run_events)


def run_events(app: Celery, args: argparse.Namespace) -> int:
    """``events``: ``--dump`` prints the events; the rest is refused (see the module doc)."""
    if args.camera or args.frequency or args.maxrate:
        raise UsageError(
            "events -c/--camera is not supported by spinach_compat: a snapshot camera runs "
            "Celery's State and Polaroid classes, which the facade does not have; keep what "
            "you need from `events --dump`, or with your own app.events.Receiver handler "
            f"({_GUIDE})"
        )
    if args.detach:
        raise UsageError(f"events --detach is not supported: run it under your supervisor "
                         f"({_GUIDE})")  # fmt: skip
    if not args.dump:
        raise UsageError(
            "the curses monitor of `events` is not provided by spinach_compat: use "
            "`events --dump` to print the events, or Flower (`celery --broker=URL flower`, "
            f"pip install flower) for a live view of the workers and tasks ({_GUIDE})"
        )
    return dump(app, sys.stdout)


def dump(app: Celery, out: TextIO) -> int:
    """Print the broker's events to ``out`` until SIGINT or SIGTERM."""
    from ..events.receiver import EventReceiver

    dumper = Dumper(out)
    dumper.say("-> evdump: starting capture...")
    stopping: list[EventReceiver] = []
    previous = signal.signal(signal.SIGTERM, lambda *_: _stop(stopping))
    try:
        while not (stopping and stopping[0].should_stop):
            with app.connection_for_read() as connection:
                try:
                    receiver = EventReceiver(connection, {"*": dumper.on_event}, app=app)
                    stopping[:] = [receiver]
                    receiver.capture()
                except connection.connection_errors + connection.channel_errors as exc:
                    dumper.say(f"-> Cannot connect to {connection.as_uri()}: {exc}.")
                    time.sleep(RECONNECT_INTERVAL)
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
    return EXIT_OK


def _stop(receivers: list[Any]) -> None:
    for receiver in receivers:
        receiver.should_stop = True


class Dumper:
    """Prints events as Celery's ``celery events --dump`` does."""

    def __init__(self, out: TextIO):
        self.out = out
        self.names: dict[str, str] = {}

    def say(self, line: str) -> None:
        print(line, file=self.out, flush=True)

    def on_event(self, event: dict[str, Any]) -> None:
        """Print one event (as received: ``local_received`` is one of its fields)."""
        event = dict(event)
        when = datetime.fromtimestamp(event.pop("timestamp"), timezone.utc)
        type, hostname = event.pop("type").lower(), event.pop("hostname")
        head = f"{hostname} [{when}] {HUMAN_TYPES.get(type, type.replace('-', ' '))}"
        task = self._task(type, event) if type.startswith("task-") else None
        fields = ", ".join(f"{key}={event[key]}" for key in sorted(event))
        sep = ":" if fields else ""
        self.say(f"{head}{sep} {fields}" if task is None else f"{head}{sep} {task} {fields}")

    def _task(self, type: str, event: dict[str, Any]) -> str:
        """``name(id) args=... kwargs=...`` of a task event (its fields taken out)."""
        uuid = event.pop("uuid")
        if type not in ("task-received", "task-sent"):
            return self.names.get(uuid, "")
        name, args, kwargs = event.pop("name"), event.pop("args"), event.pop("kwargs")
        task = f"{name}({uuid}) args={args} kwargs={kwargs}"
        self._remember(uuid, task)
        return task

    def _remember(self, uuid: str, task: str) -> None:
        if len(self.names) >= NAMES_KEPT:
            self.names.pop(next(iter(self.names)))
        self.names[uuid] = task
