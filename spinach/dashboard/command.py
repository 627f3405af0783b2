"""What ``spinach dashboard`` and ``spinach-compat dashboard`` share once they found the
broker: the options' checks, one log line saying where it serves, then serving."""

from __future__ import annotations

import contextlib
import logging
import signal
from collections.abc import Iterator
from typing import Any

from ..brokers.base import Broker
from ..brokers.memory import MemoryBroker
from .api import ResultLookup
from .app import Options
from .server import dashboard_source, serve

logger = logging.getLogger("spinach.dashboard")


class NotServable(Exception):
    """The broker cannot be watched from another process."""


def run(broker: Broker, args: Any, results: ResultLookup | None = None) -> int:
    """Serve the dashboard of ``broker`` with the parsed ``args`` until stopped."""
    if isinstance(broker, MemoryBroker):
        raise NotServable(
            "the application uses the in-process MemoryBroker, which another process cannot "
            "see: give a Redis broker with --broker redis://..., or serve the dashboard from "
            "the process itself (spinach.dashboard.DashboardServer, see the README)"
        )
    source = dashboard_source(broker, results)
    options = Options(args.allow_actions, args.basic_auth, broker.namespace)
    mode = "actions allowed" if args.allow_actions else "read-only"
    mode += ", basic authentication" if args.basic_auth else ""

    def ready() -> None:
        logger.info(
            "Dashboard of namespace '%s' on %s: http://%s:%d/ (%s)",
            broker.namespace, source.address, args.host, args.port, mode,
        )  # fmt: skip

    with _stop_signals_end_quietly():
        serve(source, options, args.host, args.port, ready)
    logger.info("Dashboard stopped")
    return 0


@contextlib.contextmanager
def _stop_signals_end_quietly() -> Iterator[None]:
    """uvicorn stops gracefully on SIGTERM or SIGINT, then sends the signal again to the
    handler it found: this one ignores it, so the command exits 0 as a worker does."""
    signals = (signal.SIGTERM, signal.SIGINT)
    previous = {sig: signal.signal(sig, lambda *_: None) for sig in signals}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
