"""Flask integration: an engine per app, an app context around every job, ``flask spinach``.

Needs Flask (``pip install 'spinach-queue[flask]'``), imported only when this module is::

    spinach = Spinach()          # at import time, without an app

    def create_app():
        app = Flask(__name__)
        app.config["SPINACH_BROKER"] = "redis://localhost:6379/0"
        spinach.init_app(app)    # app.extensions["spinach"] is now its Engine
        spinach.register_tasks(app, tasks)
        return app

Configuration, from ``app.config``:

- ``SPINACH_BROKER`` (required): a ``Broker``, or a URL (``redis://``, ``rediss://``,
  ``unix://``, ``redis+cluster://``, ``memory://``);
- ``SPINACH_NAMESPACE``: the engine's namespace, the app's name by default; apps sharing a
  Redis need different ones;
- ``SPINACH_EAGER``: run jobs at once in the scheduling thread, inside an app context,
  errors raised to the caller (for tests); False by default.

Each job of the engine's namespace runs inside an app context of its app (pushed unless
one is active in the worker thread already, popped after the job), so ``current_app``
and extensions work in tasks. ``flask spinach`` starts the workers.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable
from datetime import datetime
from typing import Any

from .. import const, signals
from ..brokers.base import Broker
from ..engine import Engine
from ..job import Job, JobStatus
from ..task import Batch, TaskRef, Tasks
from .settings import broker_from_setting

try:
    import click
    import flask
except ImportError as exc:  # pragma: no cover - the message is the point
    raise ImportError(
        "spinach.contrib.flask needs Flask: pip install 'spinach-queue[flask]'"
    ) from exc

__all__ = ["EagerEngine", "Spinach"]

#: The ``app.extensions`` key of the app's engine (upstream Spinach's).
EXTENSION = "spinach"


class Spinach:
    """The extension: ``Spinach(app)``, or ``Spinach()`` then ``init_app(app)`` per app."""

    def __init__(self, app: flask.Flask | None = None):
        self.app = app
        if app is not None:
            self.init_app(app)

    def init_app(self, app: flask.Flask) -> None:
        """Build the app's engine from its config, hook the app context, add the command."""
        where = f"the config of Flask app {app.name!r}"
        broker = broker_from_setting(app.config.get("SPINACH_BROKER"), "SPINACH_BROKER", where)
        namespace = app.config.setdefault("SPINACH_NAMESPACE", app.name)
        _bind(broker, namespace, where)
        engine_class = EagerEngine if app.config.get("SPINACH_EAGER") else Engine
        engine = engine_class(broker, namespace=namespace)
        app.extensions[EXTENSION] = engine
        app.extensions[EXTENSION + ".contexts"] = _AppContexts(app, self)  # keeps it alive
        app.cli.add_command(_worker_command(engine))

    # Callbacks for subclasses, called inside the app context (as upstream Spinach's).

    def job_started(self, *args: Any, job: Job | None = None, **kwargs: Any) -> None:
        """A job of the app starts, its app context pushed."""

    def job_finished(self, *args: Any, job: Job | None = None, **kwargs: Any) -> None:
        """A job of the app ended, whatever its outcome; its app context is popped next."""

    def job_failed(self, *args: Any, job: Job | None = None, err: Any = None, **kw: Any) -> None:
        """A job of the app failed for good (``err``), inside its app context."""

    @property
    def spin(self) -> Engine:
        """The engine of the app given to the constructor, else of ``current_app``."""
        app = self.app if self.app is not None else _current_app()
        try:
            return app.extensions[EXTENSION]
        except KeyError:
            raise RuntimeError(
                f"the Spinach extension is not initialized on Flask app {app.name!r}: "
                "call Spinach.init_app(app) first"
            ) from None

    def register_tasks(self, app: flask.Flask, tasks: Tasks) -> None:
        """Attach ``tasks`` to the engine of ``app`` (one registry can serve several apps)."""
        try:
            engine = app.extensions[EXTENSION]
        except KeyError:
            raise RuntimeError(
                f"the Spinach extension is not initialized on Flask app {app.name!r}: "
                "call Spinach.init_app(app) before register_tasks"
            ) from None
        engine.attach_tasks(tasks)

    # Shortcuts to the engine of the app.

    @property
    def task(self) -> Callable:
        return self.spin.task

    def execute(self, task: TaskRef, *args: Any, **kwargs: Any) -> Any:
        return self.spin.execute(task, *args, **kwargs)

    def schedule(self, task: TaskRef, *args: Any, **kwargs: Any) -> Job:
        return self.spin.schedule(task, *args, **kwargs)

    def schedule_at(self, task: TaskRef, at: datetime, *args: Any, **kwargs: Any) -> Job:
        return self.spin.schedule_at(task, at, *args, **kwargs)

    def schedule_batch(self, batch: Batch) -> list[Job]:
        return self.spin.schedule_batch(batch)


#: The namespace each broker object given to ``init_app`` serves (a broker has one).
_bound: weakref.WeakKeyDictionary[Broker, str] = weakref.WeakKeyDictionary()


def _bind(broker: Broker, namespace: str, where: str) -> None:
    """Refuse a broker object already serving another namespace (a ``Broker`` shared by
    two apps' configs): the second engine would move the first one's jobs."""
    bound = _bound.setdefault(broker, namespace)
    if bound != namespace:
        raise ValueError(
            f"SPINACH_BROKER in {where} is a broker object already serving namespace "
            f"{bound!r}, not {namespace!r}: give each app a broker of its own (a URL builds one)"
        )


def _current_app() -> flask.Flask:
    if not flask.has_app_context():
        raise RuntimeError("no Flask app: give Spinach(app) one, or use it inside an app context")
    return flask.current_app._get_current_object()  # type: ignore[attr-defined]


class _AppContexts:
    """Pushes an app context around each job of the app's namespace, in its worker thread."""

    def __init__(self, app: flask.Flask, extension: Spinach):
        self.app = app
        self.extension = extension
        self.pushed = threading.local()  # the context this thread pushed for its job
        namespace = app.config["SPINACH_NAMESPACE"]
        signals.job_started.connect(self.started, sender=namespace)
        signals.job_failed.connect(self.failed, sender=namespace)
        signals.job_finished.connect(self.finished, sender=namespace)

    def started(self, namespace: str, job: Job, **kwargs: Any) -> None:
        if not flask.has_app_context():
            context = self.app.app_context()
            context.push()
            self.pushed.context = context
        self.extension.job_started(namespace, job=job)

    def failed(self, namespace: str, job: Job, err: Any = None, **kwargs: Any) -> None:
        self.extension.job_failed(namespace, job=job, err=err)

    def finished(self, namespace: str, job: Job, **kwargs: Any) -> None:
        try:
            self.extension.job_finished(namespace, job=job)
        finally:
            context = getattr(self.pushed, "context", None)
            if context is not None:
                self.pushed.context = None
                context.pop()


class EagerEngine(Engine):
    """An engine running each job at once in the scheduling thread (``SPINACH_EAGER``).

    Jobs run once, due now or not, with the job signals sent (so inside an app context);
    a task's error is raised to the caller after the job is marked FAILED. Nothing goes
    to the broker.
    """

    def schedule_jobs(self, jobs: list[Job]) -> list[Job]:
        for job in jobs:
            self._run_now(job)
        return jobs

    def _run_now(self, job: Job) -> None:
        job.status = JobStatus.RUNNING
        signals.job_started.send(self.namespace, job=job)
        try:
            self.execute(job.task_name, *job.task_args, **job.task_kwargs)
        except Exception as exc:
            job.status = JobStatus.FAILED
            signals.job_failed.send(self.namespace, job=job, err=exc)
            raise
        else:
            job.status = JobStatus.SUCCEEDED
        finally:
            signals.job_finished.send(self.namespace, job=job)


def _worker_command(engine: Engine) -> click.Command:
    """``flask spinach``: start the app's workers (upstream Spinach's options)."""

    @click.command(name="spinach", help="Run Spinach workers.")
    @click.option(
        "--threads",
        default=const.DEFAULT_WORKER_NUMBER,
        show_default=True,
        type=click.IntRange(min=1),
        help="Number of worker threads to launch.",
    )
    @click.option(
        "--queue",
        default=[const.DEFAULT_QUEUE],
        multiple=True,
        show_default=True,
        help="Queue to consume; repeat it for several, in priority order.",
    )
    @click.option(
        "--stop-when-queue-empty",
        is_flag=True,
        default=False,
        help="Stop once the queues are empty and no job runs.",
    )
    def spinach_run_workers(threads: int, queue: tuple[str, ...], stop_when_queue_empty: bool
                            ) -> None:  # fmt: skip
        engine.start_workers(number=threads, queue=list(queue),
                             stop_when_queue_empty=stop_when_queue_empty)  # fmt: skip

    return spinach_run_workers
