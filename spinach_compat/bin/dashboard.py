"""``dashboard``: the native engine's web dashboard (``spinach.dashboard``) for the app of
``-A``, with each job's Celery result (state, value or error, traceback) read from the
app's result backend. Celery itself has no such command (Flower is a separate program)."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING, Any

from spinach.dashboard.options import add_options

from .. import states
from ..backends.base import DisabledBackend
from .celery import UsageError

if TYPE_CHECKING:
    from ..app.base import Celery

#: What the dashboard needs that the facade does not install.
MISSING = "the dashboard needs its dependencies: pip install 'spinach-queue[dashboard]'"


def add_dashboard_parser(commands: Any, common: argparse.ArgumentParser) -> None:
    """Add ``dashboard`` to the sub-commands."""
    dashboard = commands.add_parser(
        "dashboard", parents=[common],
        help="serve a web dashboard and JSON API of the app's queues, workers and results",
    )  # fmt: skip
    add_options(dashboard)
    dashboard.add_argument("--log-level", "-l", default="info", help="log level (default: info)")
    dashboard.set_defaults(handler=run_dashboard)


def run_dashboard(app: Celery, args: argparse.Namespace) -> int:
    """Serve the dashboard of the app's broker until SIGINT or SIGTERM."""
    from spinach.cli import configure_logging

    configure_logging(args.log_level.lower())
    try:
        from spinach.dashboard.command import NotServable, run
    except ImportError as exc:
        raise UsageError(f"{MISSING} ({exc})") from exc
    try:
        return run(app.engine.broker, args, results=result_lookup(app))
    except NotServable as exc:
        raise UsageError(str(exc)) from exc


def result_lookup(app: Celery) -> Any:
    """``job id -> {"status", "result", "traceback"}`` from the app's result backend; None
    where nothing is stored (or no backend is configured)."""
    if isinstance(app.backend, DisabledBackend):
        return None

    def lookup(job_id: str) -> dict[str, Any] | None:
        try:
            meta = app.backend.get_task_meta(job_id)
        except Exception as exc:  # e.g. a pickled result this app does not accept
            return {"status": "UNREADABLE", "result": f"{type(exc).__name__}: {exc}",
                    "traceback": None}  # fmt: skip
        if meta.get("status") == states.PENDING and meta.get("date_done") is None:
            return None
        return {"status": meta.get("status"), "result": _shown(meta),
                "traceback": meta.get("traceback")}  # fmt: skip

    return lookup


def _shown(meta: dict[str, Any]) -> str | None:
    """A result as text: an exception as ``Type: message``, a value as JSON."""
    result = meta.get("result")
    if result is None:
        return None
    if meta.get("status") in states.PROPAGATE_STATES and isinstance(result, dict):
        message = result.get("exc_message")
        if isinstance(message, (list, tuple)):
            message = ", ".join(str(m) for m in message)
        return f"{result.get('exc_type', 'Exception')}: {message}"
    return json.dumps(result, default=repr)
