"""Embedded workers for tests: Celery's ``start_worker`` on the facade.

``start_worker(app)`` runs a real facade worker for the block: the app's engine threads, in
the test process, on the app's broker (a ``MemoryBroker`` for ``memory://``, Redis for
``redis://``). Before yielding it checks the broker answers (one attempt, bounded by
``broker_connection_timeout``: an unreachable broker is a ``kombu OperationalError`` naming
the URL, not a hang) and, with ``perform_ping_check``, that the worker runs the
``celery.ping`` task within ``ping_task_timeout``. Leaving the block stops the worker
gracefully; still running after ``shutdown_timeout`` it is a ``RuntimeError``.

Pools: ``solo`` (Celery's test default) is one thread, ``threads`` is ``concurrency``
threads. A process pool (``prefork``, ``processes``) or a green one is refused: the tasks
would run in threads, not where the test asks. Signals, as Celery's test worker sends them:
``test_worker_starting``, ``worker_init``, ``worker_process_init``, ``test_worker_started``;
at the end ``worker_shutdown`` and ``test_worker_stopped`` (``worker_ready`` is the worker
command's, not sent here, as in Celery).
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

from kombu.exceptions import OperationalError
from kombu.utils.url import maybe_sanitize_url

from ... import signals
from ...app.base import Celery
from ...exceptions import UnsupportedFeature
from ...result import allow_join_result
from ...signals import Signal
from ...utils.nodenames import anon_nodename

#: The workers' log level unless given (Celery reads the same variable).
WORKER_LOGLEVEL = os.environ.get("WORKER_LOGLEVEL", "error")

#: The pools the facade runs: both are threads of this process.
THREAD_POOLS = frozenset({"solo", "threads"})

#: Options of Celery's WorkController naming steps the facade's worker does not have
#: (heartbeats, mingle, gossip between workers): accepted, nothing to turn off.
NO_SUCH_STEP = frozenset({"without_heartbeat", "without_mingle", "without_gossip"})

test_worker_starting = Signal("test_worker_starting", doc="start_worker begins (sender: app).")
test_worker_started = Signal(
    "test_worker_started", doc="The test worker runs (sender: app; worker, consumer=None)."
)
test_worker_stopped = Signal(
    "test_worker_stopped", doc="The test worker stopped (sender: app; worker, or None)."
)


class TestWorkController:
    """The worker ``start_worker`` yields: the app's engine workers, in this process."""

    __test__ = False  # not a test class for pytest

    def __init__(
        self, app: Celery, hostname: str, concurrency: int, pool: str, loglevel: str | int,
        logfile: str | None, queues: Sequence[str] | None,
    ):  # fmt: skip
        self.app = app
        self.hostname = hostname
        self.pool = pool
        self.concurrency = 1 if pool == "solo" else concurrency
        self.loglevel = loglevel
        self.logfile = logfile
        self.queues = list(queues) if queues else None
        self._on_started = threading.Event()
        self._started_at = time.monotonic()

    def start(self) -> None:
        """Start the engine's threads (they run until ``stop``)."""
        signals.worker_init.send(sender=self)
        signals.worker_process_init.send(sender=self.hostname)
        self.app.start_worker(concurrency=self.concurrency, queues=self.queues, block=False,
                              nodename=self.hostname)  # fmt: skip
        self._on_started.set()
        test_worker_started.send(sender=self.app, worker=self, consumer=None)

    def ensure_started(self) -> None:
        """Wait until the worker runs (it does once ``start`` returned)."""
        self._on_started.wait()

    def stop(self, timeout: float) -> None:
        """Stop gracefully, running tasks first; ``RuntimeError`` after ``timeout`` seconds."""
        stopper = threading.Thread(target=self.app.stop_worker, name="test-worker-stopper",
                                   daemon=True)  # fmt: skip
        stopper.start()
        stopper.join(timeout)
        if stopper.is_alive():
            raise RuntimeError(
                f"the test worker {self.hostname} did not stop within shutdown_timeout="
                f"{timeout}s: a task still runs; raise shutdown_timeout if tasks take longer"
            )
        signals.worker_shutdown.send(sender=self)

    def reload(self, modules: Sequence[str] | None = None, reload: bool = False,
               reloader: Any = None) -> None:  # fmt: skip
        """Import ``modules`` (tasks declared since the start are served without it)."""
        for module in modules or ():
            self.app.loader.import_task_module(module)

    def info(self) -> dict[str, Any]:
        """Celery's ``WorkController.info()`` keys this worker knows: ``pid``, ``uptime``."""
        return {"pid": os.getpid(), "uptime": round(time.monotonic() - self._started_at)}

    def __str__(self) -> str:
        return self.hostname

    def __repr__(self) -> str:
        return f"<TestWorkController: {self.hostname} ({self.pool}, {self.concurrency})>"


@contextlib.contextmanager
def start_worker(
    app: Celery, concurrency: int = 1, pool: str = "solo",
    loglevel: str | int = WORKER_LOGLEVEL, logfile: str | None = None,
    perform_ping_check: bool = True, ping_task_timeout: float = 10.0,
    shutdown_timeout: float = 10.0, **kwargs: Any,
) -> Iterator[TestWorkController]:  # fmt: skip
    """Run a worker of ``app`` in this process for the block; yield it (see the module).

    ``kwargs``: ``queues`` and ``hostname`` (default ``gen<pid>@<host>``) as Celery's
    WorkController; ``without_heartbeat``/``mingle``/``gossip`` are accepted. Others are
    refused with ``UnsupportedFeature`` rather than ignored.
    """
    test_worker_starting.send(sender=app)
    worker = None
    try:
        worker = _worker_for(app, concurrency, pool, loglevel, logfile, kwargs)
        setup_app_for_worker(app, loglevel, logfile)
        if perform_ping_check:
            _check_ping_task(app)
        _check_broker(app)
        worker.start()
        try:
            if perform_ping_check:
                _ping(app, ping_task_timeout)
            yield worker
        finally:
            worker.stop(shutdown_timeout)
    finally:
        test_worker_stopped.send(sender=app, worker=worker)


def _worker_for(app: Any, concurrency: int, pool: str, loglevel: str | int,
                logfile: str | None, options: dict[str, Any]) -> TestWorkController:  # fmt: skip
    """The worker ``start_worker`` asked for; a clear error for what it cannot run."""
    if not isinstance(app, Celery):
        raise TypeError(
            f"start_worker needs a spinach_compat app (a Celery instance), got {app!r}: "
            "with the pytest plugin, request the celery_app fixture or pass your app"
        )
    if pool not in THREAD_POOLS:
        raise UnsupportedFeature(
            f"start_worker(pool={pool!r}): the facade's workers run tasks in threads of "
            "this process; use pool='solo' (one thread) or pool='threads'"
        )
    unknown = sorted(set(options) - NO_SUCH_STEP - {"queues", "hostname"})
    if unknown:
        raise UnsupportedFeature(
            f"start_worker({', '.join(unknown)}=...): not supported by the facade's test "
            "worker (it takes queues and hostname)"
        )
    if app.engine.running:
        raise UnsupportedFeature(
            f"start_worker({app!r}): a worker of this app already runs in this process (the "
            "celery_session_worker fixture?), and an app has one worker here: use that "
            "worker, or give this test an app of its own (celery_app, TestApp)"
        )
    hostname = options.get("hostname") or anon_nodename()
    return TestWorkController(app, hostname, concurrency, pool, loglevel, logfile,
                              options.get("queues"))  # fmt: skip


def setup_app_for_worker(app: Celery, loglevel: str | int, logfile: str | None) -> None:
    """Prepare ``app`` for a test worker: finalized, current and default, and the level of
    its task logger set (handlers are left to pytest: Celery's test apps do not hijack the
    root logger; a ``logfile`` gets a handler of its own on the ``celery`` logger)."""
    app.finalize()
    app.set_current()
    app.set_default()
    level = logging.getLevelName(loglevel.upper()) if isinstance(loglevel, str) else loglevel
    if isinstance(level, int):
        logging.getLogger("celery.task").setLevel(level)
    logger = logging.getLogger("celery")
    path = os.path.abspath(logfile) if logfile else None
    if path and not any(getattr(h, "baseFilename", None) == path for h in logger.handlers):
        handler = logging.FileHandler(path)  # once per file, however many workers start
        handler.setLevel(level if isinstance(level, int) else logging.ERROR)
        logger.addHandler(handler)


def _check_ping_task(app: Celery) -> None:
    """The ping check needs ``celery.ping`` on the app, as in Celery (``TestApp`` has it)."""
    if "celery.ping" not in app.tasks:
        raise AssertionError(
            f"start_worker(perform_ping_check=True): {app!r} has no celery.ping task; "
            "import spinach_compat.contrib.testing.tasks before, use TestApp (the "
            "celery_app fixture), or pass perform_ping_check=False"
        )


def _check_broker(app: Celery) -> None:
    """One connection attempt to the broker, bounded by ``broker_connection_timeout``."""
    try:
        with app.connection() as connection:
            connection.ensure_connection(max_retries=1, interval_start=0, interval_step=0)
    except OperationalError as exc:
        url = maybe_sanitize_url(app.conf.broker_url)
        raise OperationalError(
            f"start_worker: the broker {url} of {app!r} cannot be reached: {exc} "
            "(is the server running? the test worker does not wait for it)"
        ) from exc


def _ping(app: Celery, timeout: float) -> None:
    """Run ``celery.ping`` through the worker within ``timeout`` seconds."""
    with allow_join_result():
        reply = app.tasks["celery.ping"].delay().get(timeout=timeout)
    if reply != "pong":
        raise AssertionError(f"the test worker answered {reply!r} to celery.ping, not 'pong'")


from ...surface import module_getattr  # noqa: E402  (Celery names refused: see surface)

__getattr__ = module_getattr(__name__)
