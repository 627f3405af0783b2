"""Tasks: the functions jobs run, their registry, and batches of jobs to schedule."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import inspect
import logging
import operator
import weakref
from collections.abc import Callable, Iterator
from dataclasses import field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Union

from . import const
from .exc import AbortException, InvalidJobSignatureError, RetryException, UnknownTask
from .job import Job
from .priority import band, check_priority
from .rate_limit import RateLimit, check_burst, parse_rate
from .routing import check_partition_key, routing_key
from .unique import check_unique, check_unique_key, check_unique_ttl, ttl_seconds, unique_key_of

if TYPE_CHECKING:
    from .engine import Engine

__all__ = ["AbortException", "Batch", "RetryException", "Task", "TaskOptions", "Tasks"]

logger = logging.getLogger(__name__)

TaskRef = Union[str, Callable, "Task"]


def _validate_max_retries(name: str, max_retries: object) -> None:
    if not isinstance(max_retries, int) or isinstance(max_retries, bool) or max_retries < 0:
        raise ValueError(f"max_retries of task '{name}' must be an int >= 0, not {max_retries!r}")


def _validate_periodicity(name: str, periodicity: object) -> None:
    if periodicity is None:
        return
    if not isinstance(periodicity, timedelta) or periodicity <= timedelta(0):
        raise ValueError(
            f"periodicity of task '{name}' must be a positive timedelta, not {periodicity!r}"
        )


def _validate_max_concurrency(name: str, max_concurrency: object) -> None:
    if max_concurrency is None:
        return
    if (
        not isinstance(max_concurrency, int)
        or isinstance(max_concurrency, bool)
        or max_concurrency < 1
    ):
        raise ValueError(
            f"max_concurrency of task '{name}' must be None or an int >= 1, not {max_concurrency!r}"
        )


def _validate_rate_limit(name: str, rate_limit: object) -> None:
    parse_rate(name, rate_limit)


def validate_queue(queue: object) -> None:
    if not isinstance(queue, str) or not queue:
        raise ValueError(f"a queue name must be a non-empty string, not {queue!r}")
    if queue.startswith("_"):
        raise ValueError(f"queue names starting with '_' are reserved: {queue!r}")


def _about(check: Callable[[str, Any], None], job: bool) -> dict[str, Any]:
    """What a task option declares beside its default: its check (given the task name and
    the value), and whether the jobs of the task carry it (a ``Job`` field of that name)."""
    return {"check": check, "job": job}


def _check_queue(_: str, queue: object) -> None:
    validate_queue(queue)


@dataclasses.dataclass(frozen=True)
class TaskOptions:
    """The options of a task, each with its default and its check: the one declaration
    ``Task``, ``Tasks(...)`` defaults, ``Tasks.task``/``Tasks.add`` keywords and the jobs
    of a task (scheduled or periodic) derive from. Adding an option is one field here."""

    queue: str = field(default=const.DEFAULT_QUEUE, metadata=_about(_check_queue, True))
    max_retries: int = field(
        default=const.DEFAULT_MAX_RETRIES, metadata=_about(_validate_max_retries, True)
    )
    periodicity: timedelta | None = field(
        default=None, metadata=_about(_validate_periodicity, False)
    )
    max_concurrency: int | None = field(
        default=None, metadata=_about(_validate_max_concurrency, True)
    )
    #: A global rate limit, "<count>/<s|m|h>" (spinach.rate_limit), and its burst.
    rate_limit: str | None = field(default=None, metadata=_about(_validate_rate_limit, False))
    rate_burst: int = field(default=1, metadata=_about(check_burst, False))
    #: Priority within the queue (spinach.priority): 0 (first, the default) to 9 (last).
    priority: int | None = field(default=None, metadata=_about(check_priority, False))
    #: Unique jobs (spinach.unique): by arguments, or by a function of them, and for how
    #: long at most (seconds or timedelta; None: while the job lives).
    unique: bool = field(default=False, metadata=_about(check_unique, False))
    unique_key: Callable[..., str] | None = field(
        default=None, metadata=_about(check_unique_key, False)
    )
    unique_ttl: float | timedelta | None = field(
        default=None, metadata=_about(check_unique_ttl, False)
    )
    #: Jobs with one partition key stay on one partition, in order, in a partitioned Redis
    #: namespace (spinach.routing); None: spread round-robin.
    partition_key: str | None = field(default=None, metadata=_about(check_partition_key, False))

    def validate(self, task_name: str) -> None:
        """Raise ``ValueError`` naming the task and the first invalid option."""
        for option in OPTIONS:
            option.metadata["check"](task_name, getattr(self, option.name))


#: The task options, in declaration order (the positional order of ``Task`` after the
#: function and the name, and of ``Tasks``).
OPTIONS: tuple[dataclasses.Field, ...] = dataclasses.fields(TaskOptions)
OPTION_NAMES: tuple[str, ...] = tuple(option.name for option in OPTIONS)
#: The options the jobs of a task carry.
JOB_OPTIONS: tuple[str, ...] = tuple(o.name for o in OPTIONS if o.metadata["job"])


_carried_options = operator.attrgetter(*JOB_OPTIONS)


class Task:
    """A function jobs run, with how its jobs are queued, retried and limited.

    Its options (``TaskOptions``: queue, max_retries, periodicity, max_concurrency,
    rate_limit, rate_burst, priority, unique, unique_key, unique_ttl, partition_key) are
    given after the name, positionally or by keyword, and are attributes of the task.
    """

    # The options as attributes, typed for mypy (tests/test_tasks.py checks they are
    # exactly TaskOptions' fields).
    queue: str
    max_retries: int
    periodicity: timedelta | None
    max_concurrency: int | None
    rate_limit: str | None
    rate_burst: int
    priority: int | None
    unique: bool
    unique_key: Callable[..., str] | None
    unique_ttl: float | timedelta | None
    partition_key: str | None

    def __init__(self, func: Callable, name: str, *args: Any, **kwargs: Any):
        _validate_name(name)
        options = TaskOptions(*args, **kwargs)
        options.validate(name)
        self.func = func
        self.name = name
        self.options = options
        for option in OPTION_NAMES:
            setattr(self, option, getattr(options, option))
        self.is_coroutine = inspect.iscoroutinefunction(func)
        if options.periodicity is not None:
            self._check_periodic_arguments()

    @property
    def task_name(self) -> str:
        """The task's name, as on the functions ``Tasks.task`` decorates."""
        return self.name

    def new_job(
        self,
        at: float,
        args: tuple | list = (),
        kwargs: dict | None = None,
        *,
        id: str | None = None,
        meta: dict | None = None,
        **overrides: Any,
    ) -> Job:
        """A job of this task due at timestamp ``at``, carrying the task's options
        (``overrides``: the options set otherwise for this job only)."""
        carried = dict(zip(JOB_OPTIONS, _carried_options(self), strict=True))
        level = overrides.pop("priority", self.priority)
        partition_key = overrides.pop("partition_key", self.partition_key)
        if overrides:
            carried.update(overrides)
        job = Job(task_name=self.name, at=at, task_args=args, task_kwargs=kwargs,
                  id=id, meta=meta, **carried)  # fmt: skip
        if level:
            job.queue = band(job.queue, level)
        if self.unique or self.unique_key is not None:
            job.unique_key = unique_key_of(self.name, self.unique, self.unique_key, args, kwargs)
            job.unique_ttl = ttl_seconds(self.unique_ttl)
        job.partition_key = partition_key
        job.partition_key = routing_key(job, limited=self.rate_limit is not None)
        return job

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.func(*args, **kwargs)

    @property
    def rate(self) -> RateLimit | None:
        """The parsed global rate limit of the task (``rate_limit``, ``rate_burst``)."""
        return parse_rate(self.name, self.rate_limit, self.rate_burst)

    @functools.cached_property
    def _signature(self) -> inspect.Signature | None:
        try:
            return inspect.signature(self.func)
        except (TypeError, ValueError):  # some builtins have none
            return None

    @functools.cached_property
    def _positional_range(self) -> tuple[float, float] | None:
        """How many positional arguments alone make a valid call (min, max); None when
        none do (a required keyword-only parameter) or the signature is unknown."""
        if self._signature is None:
            return None
        low, high = 0, 0.0
        for parameter in self._signature.parameters.values():
            if parameter.kind is inspect.Parameter.VAR_POSITIONAL:
                high = float("inf")
            elif parameter.kind in (parameter.POSITIONAL_ONLY, parameter.POSITIONAL_OR_KEYWORD):
                high += 1
                low += parameter.default is parameter.empty
            elif parameter.kind is parameter.KEYWORD_ONLY and parameter.default is parameter.empty:
                return None
        return low, high

    def check_arguments(self, args: tuple, kwargs: dict) -> None:
        """Raise ``InvalidJobSignatureError`` if a call with these arguments cannot work."""
        signature = self._signature
        if signature is None:
            return
        fits = self._positional_range
        if not kwargs and fits is not None and fits[0] <= len(args) <= fits[1]:
            return  # the fast path of a call with positional arguments only
        try:
            signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise InvalidJobSignatureError(
                f"arguments do not fit task '{self.name}' {self.name}{signature}: {exc}"
            ) from None

    def _check_periodic_arguments(self) -> None:
        try:
            self.check_arguments((), {})
        except InvalidJobSignatureError:
            raise ValueError(
                f"periodic task '{self.name}' is run without arguments, "
                "so its function must not require any"
            ) from None

    def __repr__(self) -> str:
        options = ", ".join(f"{name}={getattr(self, name)!r}" for name in OPTION_NAMES)
        return f"Task({self.func!r}, name={self.name!r}, {options})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Task):
            return NotImplemented
        return all(getattr(self, a) == getattr(other, a) for a in _COMPARED_ATTRIBUTES)

    __hash__ = object.__hash__


_COMPARED_ATTRIBUTES = ("func", "name", *OPTION_NAMES)


class Tasks:
    """A registry of tasks, with defaults for the tasks added to it.

    Tasks can be declared before any engine exists, then attached to engines with
    ``Engine.attach_tasks``: each engine runs them in its own namespace, tasks added later
    reach every one, and scheduling through the registry goes to the last one attached.
    """

    def __init__(self, *args: Any, **kwargs: Any):
        defaults = _bind(_DEFAULTS_SIGNATURE, "Tasks", args, kwargs)
        self._tasks: dict[str, Task] = {}
        self._by_func: dict[int, str] = {}  # id of a registered function -> its task name
        for option in OPTION_NAMES:
            setattr(self, option, defaults[option])
        self._engine: Engine | None = None  # the last engine attached: schedule() uses it
        self._engines: weakref.WeakSet[Engine] = weakref.WeakSet()

    @property
    def names(self) -> list[str]:
        """Names of the registered tasks."""
        return list(self._tasks)

    @property
    def tasks(self) -> dict[str, Task]:
        """Registered tasks by name (a copy)."""
        return dict(self._tasks)

    def __iter__(self) -> Iterator[Task]:
        return iter(list(self._tasks.values()))

    def __len__(self) -> int:
        return len(self._tasks)

    def __contains__(self, item: object) -> bool:
        return (self._by_func.get(id(item)) or _name_of(item)) in self._tasks

    def get(self, ref: TaskRef) -> Task:
        """The task of a name, a function or a ``Task``; ``UnknownTask`` if not registered."""
        name = self._by_func.get(id(ref)) or _name_of(ref)
        try:
            return self._tasks[name]
        except KeyError:
            known = ", ".join(sorted(self._tasks)) or "none"
            raise UnknownTask(f"unknown task '{name}' (registered tasks: {known})") from None

    def task(self, *args: Any, **kwargs: Any) -> Callable:
        """Decorator registering a function as a task, used with or without arguments:
        ``task(func=None, name=None, queue=None, max_retries=None, periodicity=None,
        max_concurrency=None, rate_limit=None, rate_burst=None, priority=None, unique=None,
        unique_key=None, unique_ttl=None, partition_key=None)``, the options of
        ``TaskOptions``.

        The decorated function is returned, still callable directly, with a ``task_name``
        attribute (as upstream Spinach): ``spin.schedule(func)`` and ``func.task_name`` work.
        """
        options = _bind(_TASK_SIGNATURE, "task", args, kwargs)
        func = options.pop("func")
        if func is not None:
            return _named(func, self.add(func, **options))

        def register(f: Callable) -> Callable:
            return _named(f, self.add(f, **options))

        return register

    def add(self, *args: Any, **kwargs: Any) -> Task:
        """Register ``func`` as a task: ``add(func, name=None, queue=None, max_retries=None,
        periodicity=None, max_concurrency=None, rate_limit=None, rate_burst=None,
        priority=None, unique=None, unique_key=None, unique_ttl=None, partition_key=None)``;
        options left out (None) take the registry's defaults, then those of
        ``TaskOptions``."""
        given = _bind(_ADD_SIGNATURE, "add", args, kwargs)
        func, name = given.pop("func"), given.pop("name")
        options = {
            option.name: _first(given[option.name], getattr(self, option.name), option.default)
            for option in OPTIONS
        }
        task = Task(func, name if name is not None else _default_name(func), **options)
        self._register(task)
        return task

    def update(self, tasks: Tasks) -> None:
        """Register every task of another registry."""
        for task in tasks:
            self._register(task)

    def _register(self, task: Task) -> None:
        existing = self._tasks.get(task.name)
        if existing is not None and existing != task:
            raise ValueError(f"a task named '{task.name}' is already registered")
        self._tasks[task.name] = task
        self._by_func[id(task.func)] = task.name
        for engine in list(self._engines):
            engine.attach_tasks(_single(task))

    def _attach(self, engine: Engine) -> None:
        """Attach to ``engine`` too; it becomes the one ``schedule`` goes through."""
        if self._engine is not None and self._engine is not engine:
            logger.warning(
                "Tasks already attached to a different Engine: %r, now also attached to %r "
                "(scheduling through the tasks goes to the latter)", self._engine, engine,
            )  # fmt: skip
        self._engine = engine
        self._engines.add(engine)

    def _attached_engine(self) -> Engine:
        if self._engine is None:
            raise RuntimeError(
                "these tasks are not attached to an engine: call engine.attach_tasks(tasks) "
                "before scheduling through them"
            )
        return self._engine

    def schedule(self, task: TaskRef, *args: Any, **kwargs: Any) -> Job:
        """Schedule a job as soon as possible, through the attached engine."""
        return self._attached_engine().schedule(task, *args, **kwargs)

    def schedule_at(self, task: TaskRef, at: datetime, *args: Any, **kwargs: Any) -> Job:
        """Schedule a job at ``at``, through the attached engine."""
        return self._attached_engine().schedule_at(task, at, *args, **kwargs)

    def schedule_batch(self, batch: Batch) -> list[Job]:
        """Schedule every job of a batch at once, through the attached engine."""
        return self._attached_engine().schedule_batch(batch)


class Batch:
    """Jobs to schedule together, in one round trip to the broker, all or none."""

    def __init__(self) -> None:
        self.jobs_to_create: list[tuple[TaskRef, datetime | None, tuple, dict]] = []

    def schedule(self, task: TaskRef, *args: Any, **kwargs: Any) -> None:
        """Add a job to run as soon as possible."""
        self.jobs_to_create.append((task, None, args, kwargs))

    def schedule_at(self, task: TaskRef, at: datetime, *args: Any, **kwargs: Any) -> None:
        """Add a job to run at ``at`` (a naive datetime is UTC)."""
        self.jobs_to_create.append((task, at, args, kwargs))

    def __len__(self) -> int:
        return len(self.jobs_to_create)


def _signature(*leading: inspect.Parameter) -> inspect.Signature:
    """A signature: ``leading`` parameters, then every task option, defaulting to None."""
    kind = inspect.Parameter.POSITIONAL_OR_KEYWORD
    options = [inspect.Parameter(name, kind, default=None) for name in OPTION_NAMES]
    return inspect.Signature([*leading, *options])


def _bind(signature: inspect.Signature, where: str, args: tuple, kwargs: dict) -> dict:
    """The arguments of a call by name, defaults included; a ``TypeError`` as Python's
    for a call that does not fit."""
    try:
        bound = signature.bind(*args, **kwargs)
    except TypeError as exc:
        raise TypeError(f"{where}() {exc}") from None
    bound.apply_defaults()
    return dict(bound.arguments)


_POSITIONAL = inspect.Parameter.POSITIONAL_OR_KEYWORD
_DEFAULTS_SIGNATURE = _signature()
_TASK_SIGNATURE = _signature(
    inspect.Parameter("func", _POSITIONAL, default=None),
    inspect.Parameter("name", _POSITIONAL, default=None),
)
_ADD_SIGNATURE = _signature(
    inspect.Parameter("func", _POSITIONAL),
    inspect.Parameter("name", _POSITIONAL, default=None),
)
_SELF = inspect.Parameter("self", _POSITIONAL)
# What help() and inspect show of the methods taking the options:
Tasks.__init__.__signature__ = _signature(_SELF)  # type: ignore[attr-defined]
Tasks.task.__signature__ = _TASK_SIGNATURE.replace(  # type: ignore[attr-defined]
    parameters=[_SELF, *_TASK_SIGNATURE.parameters.values()]
)
Tasks.add.__signature__ = _ADD_SIGNATURE.replace(  # type: ignore[attr-defined]
    parameters=[_SELF, *_ADD_SIGNATURE.parameters.values()]
)


def _single(task: Task) -> Tasks:
    tasks = Tasks()
    tasks._register(task)
    return tasks


def _named(func: Callable, task: Task) -> Callable:
    """``func`` with the ``task_name`` attribute of upstream Spinach, when it takes one."""
    # a bound method or a builtin takes none: it is found by its id instead
    with contextlib.suppress(AttributeError, TypeError):
        func.task_name = task.name  # type: ignore[attr-defined]
    return func


def _first(*values: Any) -> Any:
    return next((v for v in values if v is not None), None)


def _name_of(ref: object) -> str:
    if isinstance(ref, str):
        return ref
    if isinstance(ref, Task):
        return ref.name
    if callable(ref):
        name = getattr(ref, "task_name", None)  # decorated by another registry
        return name if isinstance(name, str) else _default_name(ref)
    raise TypeError(f"a task is named by a string, a function or a Task, not {ref!r}")


def _default_name(func: Callable) -> str:
    qualname = getattr(func, "__qualname__", None)
    if not qualname or "<lambda>" in qualname:
        raise ValueError(f"{func!r} has no usable name: give the task one with name='...'")
    return f"{func.__module__}.{qualname}"


def _validate_name(name: object) -> None:
    if not isinstance(name, str) or not name:
        raise ValueError(f"a task name must be a non-empty string, not {name!r}")
