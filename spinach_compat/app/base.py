"""The Celery app: configuration, task registry, publishing, and its native engine."""

from __future__ import annotations

import fnmatch
import importlib
import socket
import threading
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime, timezone, tzinfo
from typing import TYPE_CHECKING, Any

from spinach import Engine, Tasks
from spinach.const import UNLIMITED_RETRIES
from spinach.job import Job

from .. import _state
from ..exceptions import ImproperlyConfigured
from .defaults import DEFAULTS, Settings, from_object
from .engine import compat_engine
from .priority import band_queues, priority_steps
from .publish import publish
from .ratelimit import RateLimits
from .task import Task

if TYPE_CHECKING:
    from ..result import AsyncResult

#: max_retries of native jobs: Celery's own check in ``Task.retry`` decides instead.
NATIVE_MAX_RETRIES = UNLIMITED_RETRIES


class Celery:
    """A Celery-compatible app running its tasks on one native spinach ``Engine``."""

    def __init__(
        self,
        main: str | None = None,
        broker: str | None = None,
        backend: str | None = None,
        include: Sequence[str] | None = None,
        set_as_current: bool = True,
        **conf: Any,
    ):
        self.main = main
        self._conf = Settings(DEFAULTS)
        self._conf.update(conf)
        if broker:
            self._conf["broker_url"] = broker
        if backend:
            self._conf["result_backend"] = backend
        if include:
            self._conf["include"] = tuple(include)
        self._pending_config: list[tuple[Any, str | None]] = []
        self._tasks: dict[str, Task] = {}
        self._native = Tasks()
        self._engine: Engine | None = None
        self._lock = threading.RLock()
        self._backend: Any = None
        self._control: Any = None
        self._loader: Any = None
        self._rate_limits: RateLimits | None = None
        self.hostname = f"celery@{socket.gethostname()}"
        self.Task = type("Task", (Task,), {"app": self, "__module__": __name__})
        if set_as_current:
            _state.set_current_app(self)
        _state.register_app(self)
        for factory in _state.shared_task_factories():
            factory(self)

    # -- configuration -------------------------------------------------------------------

    @property
    def conf(self) -> Settings:
        """The settings; a pending ``config_from_object`` is loaded at first access."""
        while self._pending_config:
            obj, namespace = self._pending_config.pop(0)
            self._conf.update(from_object(_load_object(obj), namespace))
        return self._conf

    def config_from_object(self, obj: Any, namespace: str | None = None, **_: Any) -> None:
        """Read settings from an object or 'module:attr' path (lazily, as Celery)."""
        self._pending_config.append((obj, namespace))

    def autodiscover_tasks(
        self, packages: Any = None, related_name: str = "tasks", force: bool = False, **_: Any
    ) -> None:
        """Import ``<package>.tasks`` of each package: when a worker starts (lazily, as
        Celery), or now with ``force``. Without packages, Django's installed apps."""
        from .loader import autodiscover

        if force:
            autodiscover(packages, related_name)
        else:
            self.loader.pending_autodiscover.append((packages, related_name))

    @property
    def loader(self) -> Any:
        """``app.loader``: imports ``imports``, ``include`` and autodiscovered modules."""
        with self._lock:
            if self._loader is None:
                from .loader import Loader

                self._loader = Loader(self)
        return self._loader

    @property
    def timezone(self) -> tzinfo:
        """The app's timezone: ``timezone`` setting, UTC by default."""
        name = self.conf.timezone
        if not name:
            return timezone.utc
        from zoneinfo import ZoneInfo

        return ZoneInfo(name)

    def now(self) -> datetime:
        return datetime.now(timezone.utc)

    # -- tasks ---------------------------------------------------------------------------

    @property
    def tasks(self) -> dict[str, Task]:
        """Registered tasks by name."""
        return self._tasks

    def task(self, *args: Any, **opts: Any) -> Any:
        """Decorator making a task of a function, with or without options."""
        if len(args) == 1 and callable(args[0]) and not opts:
            return self._task_from_fun(args[0])
        if args:
            raise TypeError("@task() takes exactly 1 argument")
        return lambda fun: self._task_from_fun(fun, **opts)

    def _task_from_fun(
        self, fun: Callable, name: str | None = None, base: type | None = None,
        bind: bool = False, **options: Any,
    ) -> Task:  # fmt: skip
        name = name or f"{fun.__module__}.{fun.__name__}"
        if name in self._tasks:
            return self._tasks[name]
        base = base or self.Task
        attrs = {
            "app": self, "name": name, "run": fun if bind else staticmethod(fun),
            "_decorated": True, "__doc__": fun.__doc__, "__module__": fun.__module__,
            "__annotations__": getattr(fun, "__annotations__", {}),
            "__wrapped__": fun, **options,
        }  # fmt: skip
        task = type(fun.__name__, (base,), attrs)()
        return self.register_task(task)

    def register_task(self, task: Task) -> Task:
        """Register a task instance: with the app, and as a native spinach task."""
        from .retry import add_autoretry

        if isinstance(task, type):
            task = task()
        task.bind(self)
        add_autoretry(task)
        self._tasks[task.name] = task
        self._native.add(
            _entry_point(task), name=task.name, queue=self.queue_of(task),
            max_retries=NATIVE_MAX_RETRIES,
        )  # fmt: skip
        return task

    def queue_of(self, task: Task | None, name: str | None = None) -> str:
        """The queue of a task: its own, the matching route, else task_default_queue."""
        if task is not None and task.queue:
            return task.queue
        routes = self.conf.task_routes
        name = task.name if task is not None else name
        if isinstance(routes, dict):
            for pattern, route in routes.items():
                if fnmatch.fnmatchcase(name or "", pattern) and route.get("queue"):
                    return route["queue"]
        elif routes:
            raise ImproperlyConfigured("task_routes: only the dict form is supported")
        return self.conf.task_default_queue

    # -- publishing ----------------------------------------------------------------------

    def send_task(
        self, name: str, args: Any = None, kwargs: Any = None, **options: Any
    ) -> AsyncResult:
        """Send a task by name to the native engine; an ``AsyncResult`` of its id."""
        return publish(self, name, args, kwargs, options)

    def build_native_job(
        self, name: str, at: datetime, args: list, kwargs: dict, job_id: str, queue: str, meta: dict
    ) -> Job:
        """The native job of a Celery message; a name unknown here still gets a job."""
        engine = self.engine
        if name in self._native:
            return engine.build_job(
                name, at, tuple(args), kwargs, id=job_id, queue=queue,
                max_retries=NATIVE_MAX_RETRIES, meta=meta,
            )  # fmt: skip
        return Job(name, queue, at, NATIVE_MAX_RETRIES, args, kwargs, id=job_id, meta=meta)

    # -- engine, workers, results --------------------------------------------------------

    @property
    def engine(self) -> Engine:
        """The native engine, created at first use from ``broker_url``."""
        with self._lock:
            if self._engine is None:
                from .brokers import broker_from_url

                self.conf.check_supported()
                broker = broker_from_url(self.conf.broker_url)
                engine = compat_engine(broker, self.namespace)
                engine.attach_tasks(self._native)
                self._engine = engine
        return self._engine

    @property
    def namespace(self) -> str:
        """The engine's namespace: ``spinach_namespace``, else ``main``, else 'celery'."""
        return self.conf.spinach_namespace or self.main or "celery"

    def start_worker(
        self, concurrency: int = 4, queues: Sequence[str] | None = None, block: bool = True,
        nodename: str | None = None,
    ) -> None:  # fmt: skip
        """Run the engine's workers on ``queues`` (default: every queue of the app).

        ``nodename`` (``-n``) names the worker in ``inspect()`` replies.
        """
        from .control import worker_id_for

        self.loader.import_default_modules()  # imports, include, autodiscovered tasks
        self.register_beat_schedule()
        queues = band_queues(queues or self.all_queues(), priority_steps(self.conf))
        engine = self.engine
        worker_id = engine.broker.worker_id = worker_id_for(nodename or self.hostname)
        names = sorted(n for n in self._tasks if not n.startswith("celery."))
        self.control.registry.announce(worker_id, names)
        engine.start_workers(number=concurrency, queue=queues, block=block)

    def register_beat_schedule(self) -> list[str]:
        """Make the ``beat_schedule`` entries native periodic tasks (see ``app.beat``)."""
        from .beat import register_beat_schedule

        return register_beat_schedule(self)

    def stop_worker(self) -> None:
        """Stop the workers gracefully (running tasks finish first)."""
        if self._engine is not None:
            self._engine.stop_workers()
            self.control.registry.forget(self._engine.broker.worker_id)

    def all_queues(self, bands: bool = False) -> list[str]:
        """task_default_queue, then task_queues, then the queues of registered tasks.

        With ``bands``, the native queues they stand for, priority bands included, in
        consuming order (see ``spinach_compat.app.priority``).
        """
        names = [self.conf.task_default_queue]
        for queue in self.conf.task_queues or ():
            names.append(getattr(queue, "name", queue))
        names += [self.queue_of(task) for task in self._tasks.values()]
        names = list(dict.fromkeys(names))
        return band_queues(names, priority_steps(self.conf)) if bands else names

    @property
    def rate_limits(self) -> RateLimits:
        """The ``rate_limit`` limiters of this worker process, by task name."""
        with self._lock:
            if self._rate_limits is None:
                self._rate_limits = RateLimits()
        return self._rate_limits

    @property
    def control(self) -> Any:
        """``app.control``: revoke, inspect, purge (see ``spinach_compat.app.control``)."""
        with self._lock:
            if self._control is None:
                from .control import Control

                self._control = Control(self)
        return self._control

    @property
    def backend(self) -> Any:
        """The result backend of ``result_backend``, created at first use."""
        with self._lock:
            if self._backend is None:
                from ..backends import backend_from_url

                self._backend = backend_from_url(self, self.conf.result_backend)
        return self._backend

    def AsyncResult(self, task_id: str, **kwargs: Any) -> AsyncResult:
        """The result of ``task_id``."""
        from ..result import AsyncResult

        return AsyncResult(task_id, app=self, **kwargs)

    def uuid(self) -> str:
        return str(uuid.uuid4())

    def __repr__(self) -> str:
        return f"<Celery {self.main or '__main__'} at {id(self):#x}>"

    def __reduce__(self) -> Any:
        raise TypeError("apps are not pickled by spinach_compat")


def _entry_point(task: Task) -> Callable:
    """The native function of ``task``: runs one job through ``trace.run_job``."""
    from .trace import run_job

    def entry(*args: Any, **kwargs: Any) -> Any:
        return run_job(task, list(args), kwargs)

    entry.__qualname__ = entry.__name__ = f"celery_task[{task.name}]"
    entry.__module__ = __name__
    return entry


def _load_object(obj: Any) -> Any:
    if not isinstance(obj, str):
        return obj
    module_name, _, attr = obj.partition(":")
    if not attr and "." in module_name:
        try:
            return importlib.import_module(module_name)
        except ModuleNotFoundError:
            module_name, _, attr = module_name.rpartition(".")
    module = importlib.import_module(module_name)
    return getattr(module, attr) if attr else module
