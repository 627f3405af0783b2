"""The Task base class: what ``@app.task`` builds and ``self`` is in a bound task."""

from __future__ import annotations

import functools
import inspect
import threading
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any, NoReturn

from spinach.history import given_reprs

from .. import exceptions
from .._state import app_of, pop_task, push_task
from ..canvas import Signature
from ..exceptions import MaxRetriesExceededError, Retry, UnsupportedFeature
from ..result import denied_join_result
from ..surface import refuse_missing, refuse_overrides
from . import codec, links, stamps
from .call_options import check_options
from .context import Context, JobContext
from .eager import apply_eagerly
from .ratelimit import parse_rate
from .retry import retry
from .trace import RESULT_REPR_MAXSIZE

if TYPE_CHECKING:
    from spinach.job import Job

    from ..backends.base import Backend
    from ..result import AsyncResult, EagerResult
    from .base import Celery

__all__ = ["Context", "Task"]

#: Task attributes the facade cannot honour yet: set to anything but None they raise.
UNSUPPORTED_OPTIONS: dict[str, str] = {
    "reject_on_worker_lost": "a job with retries left is always run again after a crash",
    "pydantic": "pydantic argument conversion is not supported",
    "shadow_name": "shadow names are not supported",
    "retry_on_worker_lost": (
        "a job whose worker dies is always run again while it has retries left, not retried "
        "as retry() would"
    ),
}

#: Task attributes accepted with the values that describe what the facade does, refused
#: with any other (the value each accepted tuple starts with is the default).
ACCEPTED_VALUES: dict[str, tuple[tuple, str]] = {
    "acks_on_failure_or_timeout": ((True, None), "a failed or timed-out task is not run again"),
    "acks_on_failure": ((True, None), "a failed task is not run again"),
    "acks_on_timeout": ((True, None), "a task past its hard time limit is not run again"),
}

#: Celery's Task attributes its worker reads and the facade's never does: a task class
#: setting one is refused when registered (see ``spinach_compat.surface.REFUSED``).
WORKER_ONLY = ("Strategy", "start_strategy", "from_config", "annotate")


class FromConfig:
    """A task attribute that, left to None, is the app's ``setting`` at the time it is read.

    A value set on the task (decorator option, class or instance attribute) wins, as in
    Celery; the app's later configuration (``conf.update``, ``config_from_object``) reaches
    the others.
    """

    def __init__(self, setting: str, value: Any = None) -> None:
        self.setting, self.value, self.name = setting, value, ""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, task: Task | None, owner: type) -> Any:
        value = self.explicit(task)
        if value is not None:
            return value
        app = task._get_app() if task is not None else getattr(owner, "app", None)
        return None if app is None else app.conf.get(self.setting)

    def __set__(self, task: Task, value: Any) -> None:
        task.__dict__[self.name] = value

    def explicit(self, task: Task | None) -> Any:
        """The value set on ``task`` or its class; None when left to the app's setting."""
        if task is not None and self.name in task.__dict__:
            return task.__dict__[self.name]
        return self.value


class Task:
    """A Celery-style task: a singleton per name, whose ``run`` is the user's function.

    ``acks_late`` is accepted for compatibility: a native job with retries left is always run
    again when its worker dies, so tasks are at least once whatever its value.
    """

    name: str | None = None
    app: Celery | None = None
    typing = True
    max_retries: int | None = 3
    default_retry_delay = 180
    ignore_result = FromConfig("task_ignore_result")
    store_errors_even_if_ignored = FromConfig("task_store_errors_even_if_ignored")
    track_started = FromConfig("task_track_started")
    acks_late = FromConfig("task_acks_late")
    acks_on_failure_or_timeout = True
    acks_on_failure = True  # Celery's default: acks_on_failure_or_timeout's (see ACCEPTED_VALUES)
    acks_on_timeout = True
    #: False: a worker sends no task events for this task even with ``-E``.
    send_events = True
    #: Whether the results of the tasks sent while this task runs are stored with its own
    #: (``AsyncResult.children``), as Celery.
    trail = True
    #: Characters of a result in the success log line (``trace.RESULT_REPR_MAXSIZE``).
    resultrepr_maxsize = 1024
    serializer = FromConfig("task_serializer")
    expires: float | datetime | None = None
    queue: str | None = None
    throws: tuple = ()
    autoretry_for: tuple = ()
    dont_autoretry_for: tuple = ()
    retry_kwargs: dict = {}
    retry_backoff: bool | float = False
    retry_backoff_max = 600
    retry_jitter = True
    time_limit = None
    soft_time_limit = None
    rate_limit = FromConfig("task_default_rate_limit")
    reject_on_worker_lost = None
    priority = FromConfig("task_default_priority")
    compression = None
    pydantic = None
    shadow_name = None
    abstract = False  # Celery 3 compat attribute

    # Set on the instance only, when they apply (``hasattr`` tells): by ``retry``
    # (``max_retries=`` given) and by ``autoretry_for`` (the run it wraps).
    override_max_retries: int | None
    _orig_run: Callable[..., Any]

    MaxRetriesExceededError = MaxRetriesExceededError
    OperationalError = exceptions.CeleryError
    Request = Context

    def __init__(self) -> None:
        self._requests = threading.local()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """A subclass setting an attribute of ``FROM_CONFIG`` keeps it (None: the app's)."""
        super().__init_subclass__(**kwargs)
        for attr, setting in FROM_CONFIG:
            value = cls.__dict__.get(attr)
            if attr in cls.__dict__ and not hasattr(value, "__get__"):  # a property stays
                descriptor = FromConfig(setting, value)
                descriptor.__set_name__(cls, attr)
                setattr(cls, attr, descriptor)

    # -- binding -------------------------------------------------------------------------

    def bind(self, app: Celery) -> Task:
        """Attach to ``app``: attributes left to None follow its settings when read; then
        ``on_bound(app)``, as Celery."""
        self.app = app
        self.check_supported()
        type(self).on_bound(app)
        return self

    @classmethod
    def on_bound(cls, app: Celery) -> None:
        """Called when the task is bound to ``app`` (registered): a hook for subclasses."""

    def _explicit(self, attr: str) -> Any:
        """The value of a ``FROM_CONFIG`` attribute set on the task, None if left to the app."""
        found = inspect.getattr_static(type(self), attr, None)
        return found.explicit(self) if isinstance(found, FromConfig) else getattr(self, attr)

    def check_supported(self) -> None:
        """Raise ``UnsupportedFeature`` for an option the facade cannot honour."""
        for option, why in UNSUPPORTED_OPTIONS.items():
            if getattr(self, option, None) is not None:
                self._refuse_option(option, why)
        for option, (accepted, why) in ACCEPTED_VALUES.items():
            if getattr(self, option) not in accepted:
                self._refuse_option(option, why)
        self._check_worker_only()

        try:
            parse_rate(self._explicit("rate_limit"))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"task {self.name!r}: {exc}") from None
        where = f"task {self.name!r}: option"  # the app's: see Settings.check_supported
        codec.check_serializer(self._explicit("serializer"), f"{where} serializer")
        codec.check_compression(self.compression, f"{where} compression")

    def _refuse_option(self, option: str, why: str) -> NoReturn:
        raise UnsupportedFeature(
            f"task {self.name!r}: option {option}={getattr(self, option)!r} is not "
            f"supported by spinach_compat: {why} (see migration_guide/)"
        )

    def _check_worker_only(self) -> None:
        """Refuse what Celery's worker would read and the facade's never does: a custom
        ``Request``, ``Strategy``, ``from_config``, a different ``resultrepr_maxsize``."""
        from ..worker.request import check_task_request

        check_task_request(type(self))
        refuse_overrides(type(self), Task, WORKER_ONLY, "celery.app.task.Task",
                         f"task {self.name!r}")  # fmt: skip
        if self.resultrepr_maxsize != RESULT_REPR_MAXSIZE:
            why = f"the success log line always shows {RESULT_REPR_MAXSIZE} characters"
            self._refuse_option("resultrepr_maxsize", why)

    @property
    def backend(self) -> Backend:
        """The result backend of the app."""
        return self._get_app().backend

    def _get_app(self) -> Celery:
        return app_of(self)

    # -- requests ------------------------------------------------------------------------

    @property
    def request_stack(self) -> list[Context]:
        stack = getattr(self._requests, "stack", None)
        if stack is None:
            stack = self._requests.stack = []
        return stack

    def push_request(self, request: Context | None = None, **kwargs: Any) -> None:
        self.request_stack.append(request if request is not None else Context(**kwargs))

    def pop_request(self) -> None:
        self.request_stack.pop()

    @property
    def request(self) -> Context:
        """The request being run in this thread (a default one outside any run)."""
        stack = self.request_stack
        return stack[-1] if stack else Context()

    def request_from_job(self, job: Job, args: list, kwargs: dict) -> Context:
        """The request of a native job: its id, retries, and the headers in its meta.

        ``argsrepr``/``kwargsrepr``: the message's (a header added by the caller or
        ``before_task_publish`` over the ``apply_async`` option, as Celery's), else made from
        the arguments when first read (``JobContext``)."""
        meta = job.meta or {}
        headers = meta.get("headers") or {}
        task_id = meta.get("task_id") or job.id  # a replacing task's job has its own id
        request = JobContext(
            headers,
            id=task_id, task=self.name, args=args, kwargs=kwargs, retries=job.retries,
            eta=meta.get("eta"), expires=meta.get("expires"), called_directly=False,
            is_eager=False, hostname=self._get_app().hostname, headers=meta.get("headers"),
            ignore_result=meta.get("ignore_result"), root_id=meta.get("root_id") or task_id,
            parent_id=meta.get("parent_id"), origin=meta.get("origin"), reply_to=None,
            group=meta.get("group"), group_index=meta.get("group_index"),
            correlation_id=task_id, timelimit=meta.get("timelimit"),
            replaced_task_nesting=meta.get("replaced_task_nesting") or 0,
            delivery_info=_delivery_info(meta.get("routing_key") or job.queue, meta),
            callbacks=links.decode(meta.get("callbacks")),
            errbacks=links.decode(meta.get("errbacks")), chord=meta.get("chord"),
            stamped_headers=meta.get("stamped_headers"), stamps=meta.get("stamps") or {},
        )  # fmt: skip
        request.argsrepr, request.kwargsrepr = given_reprs(meta)
        return request

    # -- calling -------------------------------------------------------------------------

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Run the task here and now, as a plain function call (``called_directly``)."""
        push_task(self)
        self.push_request(args=args, kwargs=kwargs)
        try:
            return self.run(*args, **kwargs)
        finally:
            self.pop_request()
            pop_task()

    def run(self, *args: Any, **kwargs: Any) -> Any:
        """The body of the task."""
        raise NotImplementedError("Tasks must define the run method.")

    def delay(self, *args: Any, **kwargs: Any) -> AsyncResult:
        """``apply_async(args, kwargs)``."""
        return self.apply_async(args, kwargs)

    def apply_async(
        self,
        args: tuple | list | None = None,
        kwargs: dict | None = None,
        task_id: str | None = None,
        **options: Any,
    ) -> AsyncResult:
        """Send the task to a worker (or run it now in eager mode); options as Celery's."""
        self.check_arguments(args, kwargs)
        app = self._get_app()
        options.setdefault("ignore_result", self.ignore_result)
        if app.conf.task_always_eager:
            # as publish: an eager suite validates
            check_options(stamps.split(options)[0], self.name)
            serializer = options.get("serializer") or self.serializer
            args, kwargs = codec.roundtrip(args, kwargs, serializer)
            with denied_join_result():  # as Celery: the task must not wait on a result
                return self.apply(args, kwargs, task_id=task_id or uuid.uuid4().hex, **options)
        if self.name is None:
            raise TypeError(
                f"task {type(self).__qualname__} has no name: declare it with @app.task, or "
                "register it with app.register_task, before sending it"
            )
        return app.send_task(self.name, args, kwargs, task_id=task_id, task_type=self, **options)

    def check_arguments(self, args: Any, kwargs: Any) -> None:
        """With ``typing`` (the default), a TypeError if the arguments do not fit ``run``."""
        if not self.typing or self._run_signature is None:
            return
        try:
            self._run_signature.bind(*(args or ()), **(kwargs or {}))
        except TypeError as exc:
            raise TypeError(f"{self.name}: {exc}") from None

    @functools.cached_property
    def _run_signature(self) -> inspect.Signature | None:
        """The signature of ``run``, looked up once per task (it is costly)."""
        try:
            return inspect.signature(self.run)
        except (TypeError, ValueError):
            return None

    def apply(
        self,
        args: tuple | list | None = None,
        kwargs: dict | None = None,
        task_id: str | None = None,
        retries: int | None = None,
        throw: bool | None = None,
        headers: dict | None = None,
        **options: Any,
    ) -> EagerResult:
        """Run the task here, blocking, as a worker would (``is_eager``); an EagerResult."""
        return apply_eagerly(
            self, args or (), kwargs or {}, task_id or uuid.uuid4().hex,
            retries or 0, throw, headers, options,
        )  # fmt: skip

    def AsyncResult(self, task_id: str, **kwargs: Any) -> AsyncResult:
        """The result of ``task_id``."""
        return self._get_app().AsyncResult(task_id, task_name=self.name, **kwargs)

    # -- canvas --------------------------------------------------------------------------

    def signature(self, args: Any = None, *starargs: Any, **starkwargs: Any) -> Signature:
        """A signature of this task with these arguments and options."""
        starkwargs.setdefault("app", self._get_app())  # an app given wins, as in Celery
        return Signature(self, args, *starargs, **starkwargs)

    subtask = signature

    def s(self, *args: Any, **kwargs: Any) -> Signature:
        """``signature(args, kwargs)``."""
        return self.signature(args, kwargs)

    def si(self, *args: Any, **kwargs: Any) -> Signature:
        """An immutable signature."""
        return self.signature(args, kwargs, immutable=True)

    def map(self, it: Any) -> Any:
        """An ``xmap``: this task called with each item of ``it``, in one worker."""
        from ..canvas import xmap

        return xmap(self.s(), it, app=self._get_app())

    def starmap(self, it: Any) -> Any:
        """An ``xstarmap``: this task called with each item of ``it`` as arguments."""
        from ..canvas import xstarmap

        return xstarmap(self.s(), it, app=self._get_app())

    def chunks(self, it: Any, n: int) -> Any:
        """A ``chunks``: the items of ``it`` in parts of ``n``, one ``xstarmap`` each."""
        from ..canvas import chunks

        return chunks(self.s(), it, n, app=self._get_app())

    def add_trail(self, result: Any) -> Any:
        """Record ``result`` as a child of the running request (with ``trail``); ``result``."""
        if self.trail:
            self.request.children.append(result)
        return result

    def replace(self, sig: Signature) -> Any:
        """End this run, handing its id, callbacks and chord place to ``sig`` (see
        ``app.replace``); raises ``Ignore`` in a worker, returns ``sig``'s value eagerly."""
        from .replace import replace

        return replace(self, sig)

    def add_to_chord(self, sig: Signature, lazy: bool = False) -> Any:
        """Make ``sig`` (a task's signature) a member of the chord this header task is in:
        the body waits for it too and gets its value after this task's (see
        ``app.chords``); sends it and returns its result, or returns ``sig`` unsent with
        ``lazy`` (then call ``sig.delay()``). Outside a chord: ``ValueError``."""
        from . import chords

        return chords.add(self, sig, lazy)

    def on_replace(self, sig: Signature) -> Any:
        """Called by ``replace`` with the prepared signature: it sends it (overrides must
        return ``super().on_replace(sig)``)."""
        from .replace import send_replacement

        return send_replacement(self, sig)

    # -- retry and states ----------------------------------------------------------------

    def retry(
        self,
        args: Any = None,
        kwargs: Any = None,
        exc: BaseException | None = None,
        throw: bool = True,
        eta: datetime | None = None,
        countdown: float | None = None,
        max_retries: int | None = None,
        **options: Any,
    ) -> Retry:
        """Retry this run: same id, retries + 1; past ``max_retries`` raise ``exc``."""
        return retry(self, args, kwargs, exc, throw, eta, countdown, max_retries, options)

    def update_state(
        self, task_id: str | None = None, state: str | None = None, meta: Any = None, **kw: Any
    ) -> None:
        """Store a custom state (and its meta) for ``task_id``, this run's by default."""
        if task_id is None:
            task_id = self.request.id
        if task_id is None:
            raise ValueError("update_state() outside a running task needs task_id=")
        # state None is stored as given, as Celery does (its signature defaults it so)
        self.backend.store_result(task_id, meta, state, request=self.request, **kw)  # type: ignore[arg-type]

    def send_event(self, type_: str, retry: bool = True, retry_policy: Any = None,
                   **fields: Any) -> None:  # fmt: skip
        """Send a custom event ``type_`` about this run (``uuid``: its id), as Celery: even
        without ``-E``, under the worker's name, best effort (see ``spinach_compat.events``)."""
        from ..events.sent import dispatcher_of

        request = self.request
        dispatcher_of(self._get_app(), request.hostname).send(type_, uuid=request.id, **fields)

    def signature_from_request(
        self, request: Context | None = None, args: Any = None, kwargs: Any = None, **opts: Any
    ) -> Signature:
        """A signature running the request again (what ``retry`` sends)."""
        request = self.request if request is None else request
        args = request.args if args is None else args
        kwargs = request.kwargs if kwargs is None else kwargs
        options = {**request.as_execution_options(), **opts}
        return self.signature(args, kwargs, options)

    # -- hooks ---------------------------------------------------------------------------

    def before_start(self, task_id: str, args: Any, kwargs: Any) -> None:
        """Called before the task runs in a worker (or eagerly)."""

    def on_success(self, retval: Any, task_id: str, args: Any, kwargs: Any) -> None:
        """Called after the task succeeded."""

    def on_failure(
        self, exc: BaseException, task_id: str, args: Any, kwargs: Any, einfo: Any
    ) -> None:
        """Called after the task failed."""

    def on_retry(
        self, exc: BaseException | None, task_id: str, args: Any, kwargs: Any, einfo: Any
    ) -> None:
        """Called when the task is to be retried."""

    def after_return(
        self, status: str, retval: Any, task_id: str, args: Any, kwargs: Any, einfo: Any
    ) -> None:
        """Called after the task returned (success or failure, not retry)."""

    def __repr__(self) -> str:
        return f"<@task: {self.name} of {self.app.main if self.app else None}>"


refuse_missing(Task, "celery.app.task.Task")  # the rest of Celery's Task: see surface.REFUSED

#: Task attributes taking the app's setting when left to None, with that setting.
FROM_CONFIG = tuple(
    (attr, found.setting) for attr, found in vars(Task).items() if isinstance(found, FromConfig)
)


def _delivery_info(queue: str, meta: dict) -> dict:
    priority = meta.get("priority")
    return {"exchange": "", "routing_key": queue, "priority": priority, "redelivered": False}


def run_signature(task: Task) -> inspect.Signature | None:
    """The signature of ``task.run`` (looked up once per task), None when it has none."""
    return task._run_signature
