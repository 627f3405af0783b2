"""A worker process of a Celery-style app: logging, lifecycle signals, banner, shutdown.

What ``spinach-compat -A proj worker`` runs. The lifecycle signals are sent with Celery's
names and keyword arguments, in this order: ``celeryd_init``, ``setup_logging`` (when it
has receivers, logging is left to them; else it is configured here and
``after_setup_logger`` and ``after_setup_task_logger`` follow), ``import_modules``,
``worker_init``, ``celeryd_after_setup``, ``worker_process_init`` (once: the tasks run in
threads of this process), ``worker_ready``; on SIGTERM or SIGINT ``worker_shutting_down``,
then, once running tasks finished, ``worker_process_shutdown`` and ``worker_shutdown``. A
second signal exits at once (status 130) without waiting for running tasks, which other
workers then recover as a dead worker's.

That is the ``main`` role (``-P threads``, ``-P gevent``, ``-P solo``). In a prefork pool
(``.prefork``) the ``parent`` role sets up the same way, then runs ``run_parent`` (the
supervisor of the children) instead of the engine, sending the worker's signals; each
``child`` runs the engine with one thread, sending only ``setup_logging`` (and its
followers), ``import_modules``, ``worker_process_init`` and ``worker_process_shutdown``.

``services`` (e.g. the Celery bridge of ``--celery-queues``) run beside the engine:
``prepare()`` after ``worker_init``, before the engine starts; ``start()`` once it runs,
before ``worker_ready``; ``stop()`` (idempotent, also for a service never started) after
``worker_shutting_down``, before the engine stops. An error in ``prepare`` or ``start`` is
not a signal receiver's: it stops the worker start (the services and the engine are
stopped, ``worker_ready`` is never sent) and is raised. ``pidfile`` is written at start and
removed at exit, as Celery's, when it still holds this process's id.
"""

from __future__ import annotations

import logging
import os
import platform
import signal
import socket
import sys
import threading
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol, TextIO

from kombu.utils.url import maybe_sanitize_url

from spinach import stop_signals
from spinach.log_format import CachedTimeFormatter
from spinach.stop_signals import StopSignals
from spinach.worker_process.startup import (
    BrokerUnreachable,
    signal_aware_sleep,
    wait_for_broker,
)

from .. import __version__, signals
from .broker_wait import broker_connect, connection_retry
from .queues import worker_queues

if TYPE_CHECKING:
    from ..app.base import Celery

logger = logging.getLogger("spinach_compat.worker")

LOG_FORMAT = "[%(asctime)s: %(levelname)s/%(threadName)s] %(message)s"
TASK_LOG_FORMAT = (
    "[%(asctime)s: %(levelname)s/%(threadName)s] %(task_name)s[%(task_id)s]: %(message)s"
)
EXIT_INTERRUPTED = 130

#: What ``-c`` counts in each pool, for the banner.
POOL_MEANINGS = {
    "prefork": "prefork: child processes, one task each",
    "threads": "threads: one process, one task per thread",
    "solo": "solo: one task at a time, in the worker process",
    "gevent": "gevent: one process, one task per greenlet (monkey-patched)",
}


def default_nodename(name: str | None = None) -> str:
    """``celery@<host>``, or ``name`` with ``%h``, ``%n``, ``%d`` expanded as Celery does."""
    host = socket.gethostname()
    if not name:
        return f"celery@{host}"
    short, _, domain = host.partition(".")
    name = name.replace("%h", host).replace("%n", short).replace("%d", domain)
    return name if "@" in name else f"{name}@{host}"


class Service(Protocol):
    """What runs beside the engine in a worker process (see the module docstring)."""

    def prepare(self) -> None: ...
    def start(self) -> None: ...
    def stop(self) -> None: ...


class Worker:
    """One worker process of ``app`` consuming ``queues`` with ``concurrency`` threads."""

    def __init__(
        self, app: Celery, hostname: str | None = None, queues: Sequence[str] | None = None,
        concurrency: int | None = None, loglevel: str = "WARNING", logfile: str | None = None,
        beat: bool = False, quiet: bool = False, stream: TextIO | None = None,
        services: Sequence[Service] = (), pidfile: str | None = None, pool: str = "threads",
        role: str = "main", run_parent: Callable[[Worker], int] | None = None,
    ):  # fmt: skip
        self.app = app
        self.hostname = default_nodename(hostname)
        self.queues = list(queues or ())
        self.concurrency = concurrency or app.conf.worker_concurrency or os.cpu_count() or 1
        self.loglevel = loglevel.upper()
        self.logfile = logfile
        self.beat = beat
        self.quiet = quiet
        self.stream = stream or sys.stdout
        self.services = list(services)
        self.pidfile = pidfile
        self.pool = pool
        self.role = role  #: "main" (one process), or "parent" / "child" of a prefork pool
        self.run_parent = run_parent  #: the parent's run (it supervises the children)
        self.exit_status = 0  #: a child reaching its limit sets EXIT_RECYCLE
        self.on_ready: Callable[[], None] | None = None  #: a child's report to its parent
        self.autoscale: Any = None  #: a prefork parent's ``--autoscale`` bounds
        self._stop = threading.Event()
        self._signal: str | None = None
        self._catcher: StopSignals | None = None  # while the worker runs in the main thread

    def start(self) -> int:
        """Run until SIGTERM/SIGINT (or ``stop``); the exit status."""
        self._write_pidfile()
        try:
            self._setup()
            return self._run()
        finally:
            self._remove_pidfile()

    def _setup(self) -> None:
        """Set up; a prefork parent sends the worker's signals, a child its process's."""
        worker, process = self.role != "child", self.role != "parent"
        if worker:
            signals.celeryd_init.send(sender=self.hostname, instance=self, conf=self.app.conf,
                                      options={})  # fmt: skip
        self.setup_logging()
        self.import_modules()
        self.check_configuration()
        self.app.hostname = self.hostname
        if self.role == "child":  # the parent's remote-control changes (queues, limits)
            from .consumer import apply_overrides

            self.queues = apply_overrides(self.app, self.queues) or []
        self.queues = self.queues or worker_queues(self.app)
        if worker:
            signals.worker_init.send(sender=self)
        if process:
            self.app.register_beat_schedule()
            self._prepare_services()
        if worker and not self.quiet:
            print(self.banner(), file=self.stream, flush=True)
        if worker:
            signals.celeryd_after_setup.send(
                sender=self.hostname, instance=self, conf=self.app.conf
            )
        if process:
            signals.worker_process_init.send(sender=None)

    def _run(self) -> int:
        if self.run_parent is None:
            return self._run_engine()
        with stop_signals.caught() as catcher:  # a prefork parent: the broker, then children
            if not self._wait_for_broker(catcher):
                return 0  # a stop signal came first: nothing started
        return self.run_parent(self)

    def _run_engine(self) -> int:
        with stop_signals.caught() as catcher:
            self._catcher = catcher
            try:
                if not self._wait_for_broker(catcher):
                    _stop_all(self.services)
                    return 0  # a stop signal came first: nothing started
                self._start_engine_and_services()
                self._ready()
                self._wait_for(self._stop)
                if self.role == "main":
                    signals.worker_shutting_down.send(
                        sender=self.hostname, sig=self._signal, how="Warm", exitcode=0
                    )
                self._warm_stop()
            finally:
                self._catcher = None
        signals.worker_process_shutdown.send(
            sender=None, pid=os.getpid(), exitcode=self.exit_status
        )
        if self.role == "main":
            signals.worker_shutdown.send(sender=self)
        return self.exit_status

    def _ready(self) -> None:
        """The engine runs: say so (a prefork child tells its parent instead)."""
        logger.info("%s ready.", self.hostname)
        if self.on_ready is not None:
            self.on_ready()
        if self.role == "main":
            signals.worker_ready.send(sender=self)

    def _prepare_services(self) -> None:
        """Prepare the services; on an error, stop them all and raise."""
        try:
            for service in self.services:
                service.prepare()
        except BaseException:
            _stop_all(self.services)
            raise

    def _wait_for_broker(self, catcher: StopSignals | None) -> bool:
        """Retry an unreachable broker as Celery's ``broker_connection_*`` settings say
        (see ``broker_wait``); False if a stop signal came first. Giving up exits with
        status 1 and one line naming the URL (password masked) and the cause."""
        url = maybe_sanitize_url(self.app.conf.broker_url)
        retry = connection_retry(self.app.conf)
        try:
            return wait_for_broker(
                broker_connect(self.app), url, retry, sleep=signal_aware_sleep(catcher)
            )
        except BrokerUnreachable as exc:
            _stop_all(self.services)
            raise SystemExit(f"ERROR: {exc}") from None

    def _start_engine_and_services(self) -> None:
        """Start the engine, then the services; on an error, stop them all and raise."""
        try:
            self.app.start_worker(
                concurrency=self.concurrency, queues=self.queues, block=False,
                nodename=self.hostname, pool=self.pool, on_shutdown=self.stop,
            )  # fmt: skip
            for service in self.services:
                service.start()
        except BaseException:
            _stop_all(self.services)
            try:
                self.app.stop_worker()
            except Exception as exc:  # the broker is often what failed: keep its first error
                logger.warning("Cleaning up the failed start failed too: %s: %s",
                               type(exc).__name__, exc)  # fmt: skip
            raise

    def stop(self) -> None:
        """Ask for a warm shutdown (what SIGTERM does)."""
        self._stop.set()
        self._wake()

    def stop_to_recycle(self) -> None:
        """A prefork child reached its limit: stop (warm) and exit with ``EXIT_RECYCLE``,
        so that its parent starts another."""
        from .prefork import EXIT_RECYCLE

        self.exit_status = EXIT_RECYCLE
        self.app.engine.stop_fetching()  # at once, in the job's thread: no job after it
        self.stop()

    # -- signals: noted by a handler taking no lock, handled here in the main thread -------

    def _wake(self) -> None:
        catcher = self._catcher
        if catcher is not None:
            catcher.wake()

    def _wait_for(self, event: threading.Event) -> None:
        """Wait for ``event``, handling SIGTERM and SIGINT meanwhile (in the main thread)."""
        catcher = self._catcher
        if catcher is None:  # not the main thread: no signal is caught
            event.wait()
            return
        while not event.is_set():
            for sig in catcher.wait():
                self._on_signal(sig)

    def _warm_stop(self) -> None:
        """Stop the services and the engine in a thread of their own, running tasks first,
        while this thread watches for a second signal (a cold shutdown)."""
        done = threading.Event()
        errors: list[BaseException] = []

        def stop() -> None:
            try:
                _stop_all(self.services)
                self.app.stop_worker()
            except BaseException as exc:
                errors.append(exc)
            finally:
                done.set()
                self._wake()

        stopper = threading.Thread(target=stop, name="worker-stopper")
        stopper.start()
        self._wait_for(done)
        stopper.join()
        if errors:
            raise errors[0]

    def _on_signal(self, sig: signal.Signals) -> None:
        name = sig.name
        if self._stop.is_set():
            logger.warning("%s received again: cold shutdown, running tasks are abandoned", name)
            if self.role == "main":
                signals.worker_shutting_down.send(
                    sender=self.hostname, sig=name, how="Cold", exitcode=EXIT_INTERRUPTED
                )
            self._remove_pidfile()
            logging.shutdown()
            os._exit(EXIT_INTERRUPTED)
        logger.warning("%s received: warm shutdown (running tasks finish first)", name)
        self._signal = name
        self._stop.set()

    # -- setup -------------------------------------------------------------------------

    def _write_pidfile(self) -> None:
        """Write our pid; as Celery's, refuse to start (exit status 1) while the pid the file
        holds is a running process, and replace a stale one."""
        if not self.pidfile:
            return
        holder = _live_pid_in(self.pidfile)
        if holder is not None and holder != os.getpid():
            raise SystemExit(
                f"ERROR: Pidfile ({self.pidfile}) already exists.\n"
                f"Seems we're already running? (pid: {holder})"
            )
        with open(self.pidfile, "w") as file:
            file.write(f"{os.getpid()}\n")

    def _remove_pidfile(self) -> None:
        """Remove the pidfile, unless another process wrote its own id there since."""
        if not self.pidfile:
            return
        try:
            with open(self.pidfile) as file:
                if file.read().strip() == str(os.getpid()):
                    os.unlink(self.pidfile)
        except OSError:
            pass

    def setup_logging(self) -> None:
        """Configure logging unless ``setup_logging`` has receivers (as Celery)."""
        level = getattr(logging, self.loglevel, logging.WARNING)
        options = {"loglevel": level, "logfile": self.logfile, "format": LOG_FORMAT,
                   "colorize": False}  # fmt: skip
        if signals.setup_logging.send(sender=None, **options):
            return
        if self.app.conf.worker_hijack_root_logger:
            handler = _handler(self.logfile)
            handler.setFormatter(CachedTimeFormatter(LOG_FORMAT))
            logging.basicConfig(level=level, handlers=[handler], force=True)
        root = logging.getLogger()
        signals.after_setup_logger.send(sender=None, logger=root, **options)
        task_logger = logging.getLogger("celery.task")
        task_logger.setLevel(level)
        signals.after_setup_task_logger.send(sender=None, logger=task_logger, **options)

    def check_configuration(self) -> None:
        """Refuse to start, before any job is fetched, on a broker, a result backend or a
        setting the facade does not support: exit status 1 with one line saying which."""
        from ..exceptions import ImproperlyConfigured, UnsupportedFeature

        try:
            _ = self.app.engine  # the broker and the settings
            _ = self.app.backend
        except (UnsupportedFeature, ImproperlyConfigured) as exc:
            raise SystemExit(f"ERROR: {exc}") from None

    def import_modules(self) -> None:
        """Import ``imports`` and ``include``, and run the pending ``autodiscover_tasks``."""
        signals.import_modules.send(sender=self.app)
        self.app.loader.import_default_modules()

    def banner(self) -> str:
        """What the worker prints at start: app, broker, backend, queues, tasks."""
        app, conf = self.app, self.app.conf
        tasks = sorted(n for n in app.tasks if not n.startswith("celery."))
        queues = "\n".join(f"                .> {q}" for q in self.queues)
        beat = f"on ({len(conf.beat_schedule or {})} entries)" if conf.beat_schedule else "off"
        lines = [
            f"spinach-compat {__version__} (Celery-compatible) {self.hostname}",
            f"{platform.platform()} {datetime.now().isoformat(timespec='seconds')}",
            "[config]",
            f"  .> app:         {app.main or '__main__'}:{id(app):#x}",
            f"  .> transport:   {maybe_sanitize_url(conf.broker_url)}",
            f"  .> results:     {maybe_sanitize_url(conf.result_backend) or 'disabled://'}",
            f"  .> concurrency: {self._concurrency_text()}",
            f"  .> namespace:   {app.namespace}",
            f"  .> beat:        {beat}",
            "[queues]",
            queues,
            "",
            "[tasks]",
            *(f"  . {name}" for name in tasks),
        ]
        return "\n".join(lines) + "\n"

    def _concurrency_text(self) -> str:
        """``3 (prefork: child processes, one task each)``; a range when autoscaled."""
        meaning = POOL_MEANINGS.get(self.pool, self.pool)
        if self.autoscale is not None:
            bounds = self.autoscale
            return f"{bounds.minimum} to {bounds.maximum}, autoscaled ({meaning})"
        return f"{self.concurrency} ({meaning})"


def _handler(logfile: str | None) -> logging.Handler:
    if logfile and logfile != "-":
        return logging.FileHandler(logfile)
    return logging.StreamHandler(sys.stderr)


def _stop_all(services: Sequence[Service]) -> None:
    """Stop every service, last first; one that raises is logged, the others still stop."""
    for service in reversed(services):
        try:
            service.stop()
        except Exception:
            logger.exception("Stopping %r failed", service)


def _live_pid_in(path: str) -> int | None:
    """The pid ``path`` holds if that process runs, else None (no file, junk, a dead pid)."""
    try:
        with open(path) as file:
            pid = int(file.read().strip())
    except (OSError, ValueError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:  # it runs, as another user
        return pid
    return pid if pid > 0 else None


from ..surface import module_getattr  # noqa: E402  (Celery names refused: see surface)

__getattr__ = module_getattr(__name__)
