"""The Celery app: configuration, task registry, publishing, and its native engine."""

from __future__ import annotations

import functools
import importlib
import os
import socket
import sys
import threading
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta, timezone, tzinfo
from typing import TYPE_CHECKING, Any, NoReturn

from spinach import Engine, Tasks, ThreadWorkers
from spinach.const import UNLIMITED_RETRIES
from spinach.job import Job
from spinach.task import Task as NativeTask
from spinach.worker_process.worker import CONNECTION_HEADROOM
from spinach.workers import Workers

from .. import _state, platforms
from ..canvas import Signature, maybe_signature
from ..exceptions import ImproperlyConfigured, UnsupportedFeature
from ..result import AsyncResult, GroupResult, ResultSet
from ..shim import check_task_base
from ..surface import refuse_missing, refuse_overrides
from ..utils.time import LocalTimezone
from . import lifecycle, routes
from .bootsteps import Steps
from .brokers import broker_from_url
from .connections import broker_connection, connection_or_acquire
from .control import Control, worker_id_for
from .defaults import Settings, check_old_and_new, from_object
from .engine import UnknownTaskReporter, compat_engine
from .loader import Loader, autodiscover, django_task_cls
from .priority import band_queues, priority_steps
from .publish import publish
from .ratelimit import RateLimits, apply_global_rate_limits
from .retry import add_autoretry
from .task import Task
from .trace import run_job

if TYPE_CHECKING:
    from ..backends.base import Backend
    from ..signals import Signal

#: The task class, for annotations inside ``Celery``, where ``Task`` is the app's property.
TaskClass = Task

#: max_retries of native jobs: Celery's own check in ``Task.retry`` decides instead.
NATIVE_MAX_RETRIES = UNLIMITED_RETRIES

#: Celery's own loader, by the names it is given: ``app.loader`` does what it does.
CELERY_LOADERS = frozenset({"app", "celery.loaders.app:AppLoader", "celery.loaders.app.AppLoader"})

#: Celery's Django fix-up: ``app.loader`` sets Django up as it does (see ``app.loader``).
DJANGO_FIXUP = "celery.fixups.django:fixup"

#: Celery's app attributes naming the classes of its machinery: an app class setting one is
#: refused when declared, as the constructor's arguments replacing them are.
APP_MACHINERY = (
    "amqp_cls", "backend_cls", "control_cls", "events_cls", "loader_cls", "log_cls",
    "registry_cls", "builtin_fixups", "user_options", "Pickler",
)  # fmt: skip


class Celery:
    """A Celery-compatible app running its tasks on one native spinach ``Engine``.

    The constructor takes Celery's arguments. Keyword arguments besides them are settings
    (as ``changes``, over which they win); both win over a configuration source
    (``config_source``, ``config_from_object``), as in Celery. Arguments asking for
    Celery's machinery to be replaced (``loader``, ``amqp``, ``events``, ``log``,
    ``control``, ``tasks``, ``fixups``) or for ``autofinalize=False`` raise
    ``UnsupportedFeature``.
    """

    #: The base class of the app's tasks: a class, or its 'module:Class' name.
    task_cls: type[Task] | str = Task

    #: Tasks are registered when declared: the app is always finalized.
    finalized = True

    # The lifecycle signals and state, set by ``lifecycle.install`` (``on_configure`` may
    # be a subclass's method instead, as Celery 3 had).
    on_configure: Signal | Callable[[], Any]
    on_after_configure: Signal
    on_after_finalize: Signal
    on_after_fork: Signal
    configured: bool
    lifecycle_state: lifecycle.LifecycleState

    def __init__(
        self, main: str | None = None, loader: Any = None, backend: str | None = None,
        amqp: Any = None, events: Any = None, log: Any = None, control: Any = None,
        set_as_current: bool = True, tasks: Any = None, broker: str | None = None,
        include: Sequence[str] | None = None, changes: Mapping[str, Any] | None = None,
        config_source: Any = None, fixups: Iterable[str] | None = None,
        task_cls: type[Task] | str | None = None, autofinalize: bool = True,
        namespace: str | None = None, strict_typing: bool = True,
        config_source_silent: bool = False, **kwargs: Any,
    ):  # fmt: skip
        refuse_unsupported_arguments(
            loader=loader, amqp=amqp, events=events, log=log, control=control, tasks=tasks,
            fixups=fixups, autofinalize=autofinalize,
        )  # fmt: skip
        lifecycle.install(self)  # on_configure & co., before anything reads a setting
        self.main = main
        self.task_cls = task_cls or self._default_task_cls()
        self.strict_typing = strict_typing
        self.set_as_current = set_as_current
        self.autofinalize = autofinalize
        given = {"broker_url": broker, "result_backend": backend, "include": include}
        self._configure(changes, config_source, namespace, config_source_silent, given, kwargs)
        self._tasks: dict[str, Task] = {}
        self._native = Tasks()
        self._engine: Engine | None = None
        self._unknown_tasks: UnknownTaskReporter | None = None  # kept: connected weakly
        self._lock = threading.RLock()
        self._task_base: type[Task] | None = None
        self._backend: Backend | None = None
        self._control: Control | None = None
        self._node: Any = None  # the remote-control side of a running worker
        self._loader: Loader | None = None
        self._rate_limits: RateLimits | None = None
        self.hostname = f"celery@{socket.gethostname()}"
        if not isinstance(self.task_cls, str):
            _ = self.Task  # a class is checked now; a name is imported at first use
        if set_as_current:
            _state.set_current_app(self)
        _state.register_app(self)
        for factory in _state.shared_task_factories():
            factory(self)
        self.on_init()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """An app class setting one of ``APP_MACHINERY`` is refused: nothing would read it."""
        super().__init_subclass__(**kwargs)
        refuse_overrides(cls, Celery, APP_MACHINERY, "celery.app.base.Celery",
                         f"app class {cls.__qualname__}")  # fmt: skip

    def _configure(
        self, changes: Mapping[str, Any] | None, source: Any, namespace: str | None,
        silent: bool, *given: dict[str, Any],
    ) -> None:  # fmt: skip
        """The settings given to the constructor (but None values, as Celery); its
        configuration source, pending."""
        arguments = {
            key: value for part in given for key, value in part.items() if value is not None
        }
        if "include" in arguments:
            arguments["include"] = tuple(arguments["include"])
        self._conf = lifecycle.AppSettings.of_app(self)
        self._conf.update(changes or {})
        self._conf.update(arguments)
        self._given = set(arguments)  # left out of the old/new names check, as in Celery
        self._config_namespace = namespace
        self._pending_config: list[tuple[Any, str | None, bool]] = []
        # Celery checks the names of ``changes`` when there is no configuration source
        self._changes_to_check = set(changes or ()) - self._given if source is None else set()
        if source is not None:
            self._pending_config.append((source, namespace, silent))

    # -- configuration -------------------------------------------------------------------

    @property
    def conf(self) -> Settings:
        """The settings; pending configuration sources are read at first access (as Celery)."""
        if self._changes_to_check:
            names, self._changes_to_check = self._changes_to_check, set()
            check_old_and_new(names)
        while self._pending_config:
            self._read_source(*self._pending_config.pop(0))
        return self._conf

    def config_from_object(
        self, obj: Any, silent: bool = False, force: bool = False, namespace: str | None = None
    ) -> Settings | None:
        """Read settings from an object, mapping or 'module:attr' path: lazily, as Celery,
        unless ``force``; ``silent`` ignores a source that cannot be imported.

        ``namespace`` (e.g. 'CELERY') becomes the app's, as in Celery: settings are then
        read from ``CELERY_BROKER_URL`` and so on.
        """
        self._config_namespace = namespace or self._config_namespace
        self._pending_config.append((obj, self._config_namespace, silent))
        self._changes_to_check = set()
        return self.conf if force else None

    def _read_source(self, obj: Any, namespace: str | None, silent: bool) -> None:
        try:
            source = _load_object(obj)
        except (ImportError, AttributeError):
            if silent:
                return
            raise
        self._conf.load(from_object(source, namespace, ignore=self._given))

    def autodiscover_tasks(
        self, packages: Any = None, related_name: str = "tasks", force: bool = False, **_: Any
    ) -> None:
        """Import ``<package>.tasks`` of each package: when a worker starts (lazily, as
        Celery), or now with ``force``. Without packages, Django's installed apps."""
        if force:
            autodiscover(packages, related_name)
        else:
            self.loader.pending_autodiscover.append((packages, related_name))

    @property
    def loader(self) -> Loader:
        """``app.loader``: imports ``imports``, ``include`` and autodiscovered modules."""
        with self._lock:
            if self._loader is None:
                self._loader = Loader(self)
        return self._loader

    @property
    def timezone(self) -> tzinfo:
        """The app's timezone: the ``timezone`` setting, else UTC, or the machine's local
        time when ``enable_utc`` is off (as Celery's)."""
        name = self.conf.timezone
        if not name:
            return timezone.utc if self.conf.enable_utc else LocalTimezone()
        from zoneinfo import ZoneInfo

        return ZoneInfo(name)

    def now(self) -> datetime:
        return datetime.now(timezone.utc)

    # -- tasks ---------------------------------------------------------------------------

    @property
    def tasks(self) -> dict[str, Task]:
        """Registered tasks by name; the first access finalizes the app (see ``finalize``)."""
        lifecycle.finalize(self)
        return self._tasks

    def registered_task(self, name: str) -> Task | None:
        """The task registered under ``name``, None if none; unlike ``tasks``, does not
        finalize the app (as Celery's ``send_task``)."""
        return self._tasks.get(name)

    @property
    def Task(self) -> type[Task]:
        """The base class of the app's tasks: a subclass of ``task_cls`` bound to the app."""
        with self._lock:
            if self._task_base is None:
                self._task_base = _app_task_class(self, self.task_cls)
        return self._task_base

    @Task.setter
    def Task(self, cls: type[TaskClass]) -> None:
        self._task_base = cls

    def finalize(self, auto: bool = False) -> None:
        """Send ``on_after_finalize`` once (tasks are registered when declared: see
        ``spinach_compat.app.lifecycle`` for when it is sent)."""
        lifecycle.finalize(self)

    def task(self, *args: Any, **opts: Any) -> Any:
        """Decorator making a task of a function, with or without options; ``app.task(fun,
        **opts)`` makes one at once."""
        if len(args) > 1:
            raise TypeError(f"@task() takes exactly 1 argument ({len(args) + len(opts)} given)")
        create = self._task_decorator(**opts)
        if not args:
            return create
        if not callable(args[0]):
            raise TypeError("argument 1 to @task() must be a callable")
        return create(args[0])

    def _task_decorator(
        self, shared: bool = True, filter: Callable | None = None, lazy: bool = True,
        **opts: Any,
    ) -> Callable[[Callable], Any]:  # fmt: skip
        """What ``@app.task(**opts)`` applies; ``filter`` is applied to the task made.

        ``shared`` (the default) also makes the task in every app finalized later, as
        Celery's; ``lazy`` has no effect: tasks are made when declared.
        """

        def create(fun: Callable) -> Any:
            task = self._task_from_fun(fun, **opts)  # a refused task is shared with none
            if shared:
                _state.connect_on_app_finalize(lambda app: app._task_from_fun(fun, **opts))
            return filter(task) if filter is not None else task

        return create

    def _task_from_fun(
        self, fun: Callable, name: str | None = None, base: type | None = None,
        bind: bool = False, **options: Any,
    ) -> TaskClass:  # fmt: skip
        name = name or self.gen_task_name(fun.__name__, fun.__module__)
        if name in self._tasks:
            return self._tasks[name]
        base = base or self.Task
        check_task_base(base, name)
        attrs = {
            "app": self, "name": name, "run": fun if bind else staticmethod(fun),
            "_decorated": True, "__doc__": fun.__doc__, "__module__": fun.__module__,
            "__annotations__": getattr(fun, "__annotations__", {}),
            "__wrapped__": fun, **options,
        }  # fmt: skip
        task = type(fun.__name__, (base,), attrs)()
        return self.register_task(task)

    def register_task(self, task: TaskClass) -> TaskClass:
        """Register a task instance: with the app, and as a native spinach task."""
        if isinstance(task, type):
            task = task()
        if not task.name:
            task.name = self.gen_task_name(type(task).__name__, type(task).__module__)
        task.bind(self)
        if not self.strict_typing and not _sets_typing(type(task)):
            task.typing = False  # as Celery: a task leaving ``typing`` unset takes the app's
        add_autoretry(task)
        self._tasks[task.name] = task
        self._native.add(
            _entry_point(task), name=task.name, queue=self._declared_queue(task),
            max_retries=NATIVE_MAX_RETRIES,
        )  # fmt: skip
        if self._engine is not None:  # else applied when the engine is made
            apply_global_rate_limits(self, [task.name])
        return task

    def queue_of(
        self, task: TaskClass | None, name: str | None = None, args: Any = None,
        kwargs: Any = None, options: dict | None = None, static: bool = False,
    ) -> str:  # fmt: skip
        """The queue of a task: its own, else its route (``task_routes``, see
        ``spinach_compat.app.routes``), else ``task_default_queue``.

        ``static``: by the mapping routes only, as known before any message (routers given
        as functions need a message's arguments). Publishing asks the routes itself, once a
        message (see ``spinach_compat.app.publish``).
        """
        if task is not None and task.queue:
            return task.queue
        name = task.name if task is not None else name
        routers = routes.prepare(self.conf.task_routes)
        route = routes.route_for(routers, name or "", args, kwargs, options, task, static=static)
        return routes.queue_of(self.conf, task, route or {})

    # -- publishing ----------------------------------------------------------------------

    def send_task(
        self, name: str, args: Any = None, kwargs: Any = None, **options: Any
    ) -> AsyncResult:
        """Send a task by name; an ``AsyncResult`` of its id (see ``app.publish``: the task
        is looked up without finalizing the app, routed once with these arguments, as by
        Celery's router, which sees them too)."""
        return publish(self, name, args, kwargs, options)

    def register_native_task(
        self,
        func: Callable[..., Any],
        *,
        name: str,
        queue: str,
        periodicity: timedelta | None = None,
    ) -> NativeTask:
        """Add a native task that is no Celery task (the senders of ``beat_schedule``
        entries, see ``app.beat``), never retried; a name already registered keeps its
        task, which is returned."""
        if name not in self._native:
            self._native.add(func, name=name, queue=queue, max_retries=0, periodicity=periodicity)
        return self._native.get(name)

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
                self.conf.check_supported()
                options = self.conf.get("broker_transport_options")
                broker = broker_from_url(self.conf.broker_url, options)
                engine = compat_engine(broker, self.namespace)
                self._unknown_tasks = UnknownTaskReporter(self)
                self._unknown_tasks.connect(self.namespace)
                engine.attach_tasks(self._native)
                apply_global_rate_limits(self)
                self._engine = engine
        return self._engine

    @property
    def namespace(self) -> str:
        """The engine's namespace: ``spinach_namespace``, else ``main``, else 'celery'."""
        return self.conf.spinach_namespace or self.main or "celery"

    def start_worker(
        self, concurrency: int = 4, queues: Sequence[str] | None = None, block: bool = True,
        nodename: str | None = None, pool: str = "threads",
        on_shutdown: Callable[[], None] | None = None,
    ) -> None:  # fmt: skip
        """Run the engine's workers on ``queues`` (default: as Celery's worker, the queues
        declared in ``task_queues``, else ``task_default_queue``: see
        ``spinach_compat.worker.queues``).

        ``nodename`` (``-n``) names the worker in ``inspect()`` replies; ``pool`` is
        ``prefork`` in a child of a prefork pool (its stats say so), ``gevent`` to run the
        jobs as greenlets (the process must be patched by gevent: see
        ``spinach.workers.gevent``). The worker answers Celery's remote control
        (``spinach_compat.worker.node``) until ``stop_worker``; ``on_shutdown`` is what a
        remote ``shutdown`` does (default: ``stop_worker``).
        """
        from ..worker.node import start_node
        from ..worker.prefetch import prefetch_settings
        from ..worker.queues import worker_queues

        self.loader.import_default_modules()  # imports, include, autodiscovered tasks
        self.register_beat_schedule()
        queues = band_queues(worker_queues(self, queues), priority_steps(self.conf))
        engine = self.engine
        worker_id = engine.broker.worker_id = worker_id_for(nodename or self.hostname, pool)
        names = sorted(n for n in self._tasks if not n.startswith("celery."))
        self.control.registry.announce(worker_id, names)
        results_broker = getattr(self.backend, "broker", engine.broker)
        if results_broker is not engine.broker:  # each job stores its result through it
            results_broker.allow_connections(concurrency + CONNECTION_HEADROOM)
        workers_class: type[Workers] = ThreadWorkers
        if pool == "gevent":
            from spinach.workers.gevent import GeventWorkers

            workers_class = GeventWorkers
        engine.prefetch = prefetch_settings(self.conf, concurrency, pool)
        node = start_node(self, nodename or self.hostname, queues, pool, on_shutdown)
        self._node = node
        try:
            engine.start_workers(
                number=concurrency, queue=queues, block=block, workers_class=workers_class
            )
        except BaseException:
            self._stop_node()
            raise
        if block:
            self._stop_node()

    def register_beat_schedule(self) -> list[str]:
        """Make the ``beat_schedule`` entries native periodic tasks (see ``app.beat``)."""
        from .beat import register_beat_schedule

        self.finalize(auto=True)  # a worker starts: on_after_finalize may add entries
        return register_beat_schedule(self)

    def stop_worker(self) -> None:
        """Stop the workers gracefully (running tasks finish first)."""
        self._stop_node()
        if self._engine is not None:
            self._engine.stop_workers()
            self.control.registry.forget(self._engine.broker.worker_id)

    def _stop_node(self) -> None:
        node, self._node = self._node, None
        if node is not None:
            node.stop()

    def all_queues(self, bands: bool = False) -> list[str]:
        """task_default_queue, then task_queues, then the queues of registered tasks (their
        own, or their routes in mappings: see ``queue_of``).

        With ``bands``, the native queues they stand for, priority bands included, in
        consuming order (see ``spinach_compat.app.priority``).
        """
        names = [self.conf.task_default_queue]
        for queue in self.conf.task_queues or ():
            names.append(routes.queue_name(queue))
        names += [self.queue_of(task, static=True) for task in self._tasks.values()]
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
    def control(self) -> Control:
        """``app.control``: revoke, inspect, purge (see ``spinach_compat.app.control``)."""
        with self._lock:
            if self._control is None:
                self._control = Control(self)
        return self._control

    @functools.cached_property
    def events(self) -> Any:
        """``app.events``: Celery's event Receiver, State and Dispatcher for this app (see
        ``spinach_compat.events``)."""
        from ..events.app import AppEvents

        return AppEvents(self)

    @property
    def backend(self) -> Backend:
        """The result backend of ``result_backend``, created at first use."""
        with self._lock:
            if self._backend is None:
                from ..backends import backend_from_url

                self._backend = backend_from_url(self, self.conf.result_backend)
        return self._backend

    def AsyncResult(self, task_id: str, **kwargs: Any) -> AsyncResult:
        """The result of ``task_id``."""
        return AsyncResult(task_id, app=self, **kwargs)

    def uuid(self) -> str:
        return str(uuid.uuid4())

    # -- lifecycle, periodic tasks, task naming (see ``app.lifecycle``) -----------------

    def _default_task_cls(self) -> type[TaskClass] | str:
        """``task_cls`` when the constructor gets none: the class's, but Celery's Django
        fix-up (``DJANGO_SETTINGS_MODULE`` set) makes it ``DjangoTask`` unless a subclass
        of the app sets its own."""
        if type(self).task_cls is not Celery.task_cls:
            return type(self).task_cls
        return django_task_cls() or Celery.task_cls

    def _declared_queue(self, task: TaskClass) -> str:
        """The native queue of a task being declared: reading the routes for it does not
        configure the app (Celery reads nothing when a task is declared)."""
        with lifecycle.quiet_reads():
            return self.queue_of(task, static=True)

    def _after_fork(self) -> None:
        """In a forked child (``spinach.forks``): a parent's thread may have held the app's
        locks at the fork."""
        self._lock = threading.RLock()
        self.lifecycle_state.finalize_lock = threading.RLock()
        self._rate_limits = None  # a process's limiters: the child makes its own

    def _notify_after_fork(self) -> None:
        """In a forked child, once every lock is fresh (``spinach.forks``): send
        ``on_after_fork``."""
        self.on_after_fork.send(sender=self)

    def add_periodic_task(
        self, schedule: Any, sig: Any, args: Any = (), kwargs: Any = (),
        name: str | None = None, **opts: Any,
    ) -> str:  # fmt: skip
        """Add a ``beat_schedule`` entry running ``sig`` on ``schedule``; its key (``name``,
        else the signature's repr). Before the app is configured it waits, as in Celery."""
        from .beat import add_beat_entry, periodic_task_entry

        key, entry = periodic_task_entry(self, schedule, sig, args, kwargs, name, opts)
        if self.configured:
            add_beat_entry(self, key, entry, name)
        else:
            self.lifecycle_state.pending_periodic_tasks.append((key, entry, name))
        return key

    def gen_task_name(self, name: str, module: str | None) -> str:
        """A task's name from its module: ``module.name``, but a task of the ``__main__``
        script is ``<main>.name`` when the app has a main name, as in Celery."""
        module_name = module or "__main__"
        found = sys.modules.get(module_name)
        if found is not None:
            module_name = found.__name__
            main_file = os.environ.get("MP_MAIN_FILE")  # billiard's, when set
            if main_file and getattr(found, "__file__", None) == main_file:
                module_name = "__main__"
        if module_name == "__main__" and self.main:
            return f"{self.main}.{name}"
        return ".".join(part for part in (module_name, name) if part)

    # -- tasks running, steps -----------------------------------------------------------

    @property
    def current_task(self) -> TaskClass | None:
        """The task running in this thread (innermost, however called), or None."""
        return _state.get_current_task()

    @property
    def current_worker_task(self) -> TaskClass | None:
        """The innermost task of this thread run by a worker or ``apply``, not called
        directly as a function; None outside one."""
        return _state.get_current_worker_task()

    @functools.cached_property
    def steps(self) -> Any:
        """Celery's custom bootsteps: readable, adding one raises ``UnsupportedFeature``."""
        return Steps()

    # -- the broker connection (see ``app.connections``) ---------------------------------

    def connection_for_write(self, url: str | None = None, **kwargs: Any) -> Any:
        """A lazy ``kombu.Connection`` to ``broker_write_url`` (else ``broker_url``)."""
        conf = self.conf
        return broker_connection(self, url or conf.get("broker_write_url") or conf.broker_url,
                                 **kwargs)  # fmt: skip

    def connection_for_read(self, url: str | None = None, **kwargs: Any) -> Any:
        """A lazy ``kombu.Connection`` to ``broker_read_url`` (else ``broker_url``)."""
        conf = self.conf
        return broker_connection(self, url or conf.get("broker_read_url") or conf.broker_url,
                                 **kwargs)  # fmt: skip

    def connection(self, hostname: str | None = None, **kwargs: Any) -> Any:
        """``connection_for_write(hostname, ...)``: a ``kombu.Connection`` to the broker."""
        return self.connection_for_write(hostname, **kwargs)

    broker_connection = connection

    def connection_or_acquire(self, connection: Any = None, pool: bool = True, *_: Any,
                              **__: Any) -> Any:  # fmt: skip
        """A context giving ``connection``, else a new connection closed after."""
        return connection_or_acquire(self, connection)

    default_connection = connection_or_acquire

    # -- Celery's small helpers -----------------------------------------------------------

    SYSTEM, IS_macOS, IS_WINDOWS = platforms.SYSTEM, platforms.IS_macOS, platforms.IS_WINDOWS

    def on_init(self) -> None:
        """Called at the end of ``__init__``: a hook for subclasses, as Celery's."""

    def close(self) -> None:
        """Forget the app, as Celery's: shared tasks declared later are not added to it, and
        it can be garbage collected. Its running workers are left alone (``stop_worker``)."""
        _state.deregister_app(self)

    def __enter__(self) -> Celery:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def set_current(self) -> None:
        """Make this the current app (process-wide here, as ``set_as_current=True``)."""
        _state.set_current_app(self)

    def set_default(self) -> None:
        """Make this the default app: the current one while no app was made current."""
        _state.set_default_app(self)

    def config_from_envvar(
        self, variable_name: str, silent: bool = False, force: bool = False
    ) -> Settings | bool | None:
        """``config_from_object`` of the module named by the environment variable; unset,
        ``ImproperlyConfigured`` (``silent``: False)."""
        module_name = os.environ.get(variable_name)
        if not module_name:
            if silent:
                return False
            raise ImproperlyConfigured(
                f"The environment variable {variable_name!r} is not set, so the configuration "
                f"could not be loaded: set it to a configuration module, e.g. "
                f'{variable_name}="proj.celeryconfig"'
            )
        return self.config_from_object(module_name, silent=silent, force=force)

    def uses_utc_timezone(self) -> bool:
        """Whether the app's timezone is UTC by that name (or left to the default), as
        Celery's: ``Etc/UTC`` is not."""
        from zoneinfo import ZoneInfo

        return self.timezone in (timezone.utc, ZoneInfo("UTC"))

    def signature(self, *args: Any, **kwargs: Any) -> Any:
        """A signature bound to this app (``spinach_compat.signature``'s arguments)."""
        varies = args[0] if args else kwargs.pop("varies")
        if isinstance(varies, dict):  # a signature is cloned, a plain dict made one
            return maybe_signature(varies, app=self, clone=isinstance(varies, Signature))
        kwargs["app"] = self  # this app, even over one given, as in Celery
        return Signature(varies, *args[1:], **kwargs)

    @functools.cached_property
    def GroupResult(self) -> type:
        """``spinach_compat.result.GroupResult`` bound to this app."""
        return self._bound_class(GroupResult)

    @functools.cached_property
    def ResultSet(self) -> type:
        """``spinach_compat.result.ResultSet`` bound to this app."""
        return self._bound_class(ResultSet)

    def _bound_class(self, cls: type) -> type:
        """A subclass of ``cls`` whose ``app`` is this app."""
        attrs = {"app": self, "__module__": cls.__module__, "__doc__": cls.__doc__}
        return type(cls.__name__, (cls,), attrs)

    def __repr__(self) -> str:
        return f"<Celery {self.main or '__main__'} at {id(self):#x}>"

    def __reduce__(self) -> Any:
        raise TypeError("apps are not pickled by spinach_compat")


refuse_missing(Celery, "celery.app.base.Celery")  # the rest of Celery's app: see surface.REFUSED


def refuse_unsupported_arguments(
    loader: Any, fixups: Iterable[str] | None, autofinalize: bool, **replaced: Any
) -> None:
    """Raise ``UnsupportedFeature`` for a constructor argument the facade cannot honour."""
    if loader is not None and loader not in CELERY_LOADERS:
        _refuse(f"loader={loader!r}", "app.loader is the only loader")
    for argument, value in replaced.items():
        if value is not None:
            _refuse(f"{argument}={value!r}", f"Celery's {argument} cannot be replaced")
    if fixups is not None:
        fixups = set(fixups)
        if fixups - {DJANGO_FIXUP}:
            _refuse(f"fixups={sorted(fixups)!r}", f"the only fix-up is {DJANGO_FIXUP!r}")
        if DJANGO_FIXUP not in fixups and os.environ.get("DJANGO_SETTINGS_MODULE"):
            why = "Django is always set up when DJANGO_SETTINGS_MODULE is set"
            _refuse("fixups without the Django fix-up", why)
    if not autofinalize:
        _refuse("autofinalize=False", "tasks are registered when declared")


def _refuse(what: str, why: str) -> NoReturn:
    message = f"Celery({what}) is not supported by spinach_compat: {why} (see migration_guide/)"
    raise UnsupportedFeature(message)


def _app_task_class(app: Celery, task_cls: type[Task] | str) -> type[Task]:
    """The base class of ``app``'s tasks: a subclass of ``task_cls`` bound to it."""
    base = _load_object(task_cls) if isinstance(task_cls, str) else task_cls
    if not (isinstance(base, type) and issubclass(base, Task)):
        _refuse(f"task_cls={task_cls!r}", "the base of tasks must subclass spinach_compat.Task")
    attrs = {"app": app, "__module__": base.__module__, "__doc__": base.__doc__}
    return type("Task", (base,), attrs)


def _sets_typing(cls: type) -> bool:
    """Whether a task class sets ``typing`` (else it takes the app's ``strict_typing``)."""
    return any("typing" in vars(klass) for klass in cls.__mro__ if klass is not Task)


def _entry_point(task: Task) -> Callable:
    """The native function of ``task``: runs one job through ``trace.run_job``."""

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
