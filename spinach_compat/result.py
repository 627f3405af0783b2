"""Task results: ``AsyncResult`` reads the result backend, ``EagerResult`` holds a value."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from spinach.context import current_job

from . import states
from ._state import get_current_app
from .exceptions import TaskRevokedError, TimeoutError, UnsupportedFeature

if TYPE_CHECKING:
    from .app.base import Celery
    from .backends.base import Backend

__all__ = [
    "AsyncResult", "EagerResult", "GroupResult", "ResultBase", "ResultSet",
    "allow_join_result", "assert_will_not_block", "denied_join_result", "result_from_tuple",
]  # fmt: skip

#: Celery's message when ``get()`` is called within a task.
E_WOULDBLOCK = """\
Never call result.get() within a task!
See https://docs.celeryq.dev/en/latest/userguide/tasks.html\
#avoid-launching-synchronous-subtasks
"""

#: Shortest wait between two checks of the parents or calls of ``on_interval``.
MIN_INTERVAL = 0.1

#: Set by ``allow_join_result``/``denied_join_result``; None: decided by the running job.
_join_will_block: ContextVar[bool | None] = ContextVar("join_will_block", default=None)


def task_join_will_block() -> bool:
    """Whether ``get()`` here would block a worker: inside a job a worker runs (an eager
    run inside it too), unless ``allow_join_result`` says otherwise."""
    forced = _join_will_block.get()
    return current_job() is not None if forced is None else forced


def assert_will_not_block() -> None:
    """Raise RuntimeError (Celery's message) when ``get()`` would block a worker."""
    if task_join_will_block():
        raise RuntimeError(E_WOULDBLOCK)


@contextmanager
def _join_policy(will_block: bool) -> Iterator[None]:
    token = _join_will_block.set(will_block)
    try:
        yield
    finally:
        _join_will_block.reset(token)


def allow_join_result() -> AbstractContextManager[None]:
    """Context manager: ``get()`` may wait inside a task (deadlock risk: yours)."""
    return _join_policy(False)


def denied_join_result() -> AbstractContextManager[None]:
    """Context manager: ``get()`` raises RuntimeError, as inside a task."""
    return _join_policy(True)


def _once(call: Callable, *args: Any) -> Callable[[], None]:
    """``call(*args)`` at the first call only."""
    done: list[bool] = []

    def first_time() -> None:
        if not done:
            done.append(True)
            call(*args)

    return first_time


def _refuse_on_message(on_message: Any, where: str) -> None:
    if on_message is not None:
        raise UnsupportedFeature(
            f"{where}(on_message=...) is not supported: the result backends hand over the "
            "final state only, not each state message (see migration_guide/)"
        )


class ResultBase:
    """Base class of results."""

    parent = None


class AsyncResult(ResultBase):
    """The state and outcome of a task id, read from the app's result backend."""

    #: True when the task ignores its result (set by ``send_task``): ``get()`` returns None.
    ignored = False

    def __init__(
        self, id: str, backend: Backend | None = None, task_name: str | None = None,
        app: Celery | None = None, parent: Any = None,
    ):  # fmt: skip
        if id is None:
            raise ValueError(f"AsyncResult requires valid id, not {type(id)}")
        self.app = app or get_current_app()
        self.id = id
        self._backend = backend
        self._task_name = task_name
        self.parent = parent

    @property
    def task_id(self) -> str:
        return self.id

    @property
    def backend(self) -> Backend:
        return self._backend if self._backend is not None else self.app.backend

    def _meta(self) -> dict[str, Any]:
        return self.backend.get_task_meta(self.id)

    @property
    def state(self) -> str:
        """PENDING, STARTED, RETRY, SUCCESS, FAILURE, REVOKED or a custom state (read
        without decoding the result, which may be of a content type not accepted here)."""
        return self.backend.get_state(self.id)

    status = state

    @property
    def result(self) -> Any:
        """The return value, or the exception of a failed task."""
        return self._decode(self._meta())

    info = result

    @property
    def traceback(self) -> str | None:
        return self._meta().get("traceback")

    @property
    def date_done(self) -> str | None:
        return self._meta().get("date_done")

    # -- result_extended: what the stored meta tells of the request ----------------------

    @property
    def name(self) -> str | None:
        """The task's name: the one it was sent as, else the stored one."""
        return self._task_name if self._task_name is not None else self._meta().get("name")

    @name.setter
    def name(self, value: str | None) -> None:
        self._task_name = value

    @property
    def args(self) -> list | None:
        """The task's positional arguments, as stored with ``result_extended``."""
        return self._meta().get("args")

    @property
    def kwargs(self) -> dict | None:
        """The task's keyword arguments, as stored with ``result_extended``."""
        return self._meta().get("kwargs")

    @property
    def worker(self) -> str | None:
        """The hostname of the worker that ran the task (``result_extended``)."""
        return self._meta().get("worker")

    @property
    def retries(self) -> int | None:
        """How many times the task was retried (``result_extended``)."""
        return self._meta().get("retries")

    @property
    def queue(self) -> str | None:
        """The queue the task was taken from (``result_extended``)."""
        return self._meta().get("queue")

    def _decode(self, meta: dict[str, Any]) -> Any:
        if meta["status"] in states.EXCEPTION_STATES:
            return self.backend.exception_to_python(meta["result"])
        return meta["result"]

    def get(
        self, timeout: float | None = None, propagate: bool = True, interval: float = 0.5,
        no_ack: bool = True, follow_parents: bool = True, callback: Callable | None = None,
        on_message: Callable | None = None, on_interval: Callable | None = None,
        disable_sync_subtasks: bool = True,
    ) -> Any:  # fmt: skip
        """Wait for the task to be ready; its value, or raise its exception (``propagate``).

        As Celery: None at once when the task ignores its result (``ignored``); RuntimeError
        inside a task unless ``disable_sync_subtasks`` is False; a failed parent's exception
        raised while waiting (``follow_parents`` and ``propagate``); ``callback(id, value)``
        called once ready. While waiting, the parents are checked every ``interval`` seconds
        and ``on_interval()`` is called once, at the first (``on_interval(None)`` with parents
        to follow), as Celery's.
        ``on_message`` is refused (UnsupportedFeature); ``no_ack`` has no effect.
        Raises ``spinach_compat.exceptions.TimeoutError`` after ``timeout`` seconds.
        """
        if self.ignored:
            return None
        if disable_sync_subtasks:
            assert_will_not_block()
        _refuse_on_message(on_message, "AsyncResult.get")
        ticks: list[Callable[[], Any]] = []
        if follow_parents and propagate and self.parent is not None:
            self._maybe_reraise_parent_error()
            ticks.append(self._maybe_reraise_parent_error)
        if on_interval is not None:  # as Celery's: called once, after the parents, given None
            ticks.append(_once(on_interval, *((None,) if ticks else ())))
        meta = self._wait(timeout, interval, ticks)
        if ticks and self.parent is not None and follow_parents and propagate:
            self._maybe_reraise_parent_error()  # as Celery: once more after the last wait
        return self._outcome(meta, propagate, callback)

    def _wait(self, timeout: float | None, interval: float, ticks: list[Callable]) -> dict:
        """The meta once ready; with ``ticks``, waking every ``interval`` to call them."""
        if not ticks:
            return self.backend.wait_for(self.id, timeout=timeout, interval=interval)
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            step = max(interval, MIN_INTERVAL)
            if deadline is not None:
                step = max(0.0, min(step, deadline - time.monotonic()))
            try:
                return self.backend.wait_for(self.id, timeout=step, interval=interval)
            except TimeoutError:
                if deadline is not None and time.monotonic() >= deadline:
                    raise
            for tick in ticks:
                tick()

    def _outcome(self, meta: dict[str, Any], propagate: bool, callback: Callable | None) -> Any:
        """The value of ``meta``; its exception raised with ``propagate``."""
        value = self._decode(meta)
        if propagate and meta["status"] in states.PROPAGATE_STATES:
            if meta["status"] == states.REVOKED and not isinstance(value, TaskRevokedError):
                raise TaskRevokedError(str(value))
            raise value
        if callback is not None:
            callback(self.id, value)
        return value

    def maybe_throw(self, propagate: bool = True, callback: Callable | None = None) -> Any:
        """The current value, without waiting; a failure's exception raised (``propagate``)."""
        return self._outcome(self._meta(), propagate, callback)

    maybe_reraise = maybe_throw

    def _maybe_reraise_parent_error(self) -> None:
        """Raise the exception of the first failed parent, from the chain's start."""
        for node in reversed(list(self._parents())):
            node.maybe_throw()

    def _parents(self) -> Iterator[Any]:
        node = self.parent
        while node is not None:
            yield node
            node = node.parent

    wait = get

    def ready(self) -> bool:
        return self.state in states.READY_STATES

    def successful(self) -> bool:
        return self.state == states.SUCCESS

    def failed(self) -> bool:
        return self.state == states.FAILURE

    def forget(self) -> None:
        """Delete the stored result."""
        self.backend.forget(self.id)

    # -- Celery's existence check and tuples (see GroupResult.save) -----------------------

    def exists(self) -> bool:
        """Whether the backend holds a state of this task: tells a task waiting (PENDING,
        stored) from an id never sent, forgotten or expired (PENDING, not stored)."""
        return self.backend.task_result_exists(self.id)

    def as_tuple(self) -> tuple:
        """``((id, parent's as_tuple() or None), None)``: see ``result_from_tuple``."""
        parent = self.parent
        return (self.id, parent and parent.as_tuple()), None

    def as_list(self) -> list[str]:
        """This id, then its parents'."""
        return [self.id, *(self.parent.as_list() if self.parent is not None else ())]

    # -- the result tree: the tasks each task sent (stored with its result, as Celery) ---

    @property
    def children(self) -> list | None:
        """The results of the tasks this task sent while it ran (``Task.trail``): callbacks
        (a chain's next task), groups, chord bodies, ``delay`` calls; stored with its state."""
        return [result_from_tuple(child, self.app) for child in self._meta().get("children") or ()]

    def iterdeps(self, intermediate: bool = False) -> Iterator[tuple[Any, Any]]:
        """``(parent, result)`` for this result and its children, breadth first; a result
        not ready raises ``IncompleteStream`` unless ``intermediate``."""
        from .exceptions import IncompleteStream

        queue: deque[tuple[Any, Any]] = deque([(None, self)])
        while queue:
            parent, node = queue.popleft()
            yield parent, node
            if node.ready():
                queue.extend((node, child) for child in node.children or ())
            elif not intermediate:
                raise IncompleteStream()

    def collect(self, intermediate: bool = False, **kwargs: Any) -> Iterator[tuple[Any, Any]]:
        """``(result, value)`` for this result and those of the tree (``iterdeps``), each
        waited for with ``get(**kwargs)``."""
        for _, node in self.iterdeps(intermediate=intermediate):
            yield node, node.get(**kwargs)

    def get_leaf(self) -> Any:
        """The value of the last result of the tree (``iterdeps``)."""
        value = None
        for _, node in self.iterdeps():
            value = node.get()
        return value

    def build_graph(self, intermediate: bool = False, formatter: Any = None) -> Any:
        """The tree as a ``DependencyGraph``: each result, an edge to each child."""
        from .utils.graph import DependencyGraph

        graph = DependencyGraph()
        for parent, node in self.iterdeps(intermediate=intermediate):
            graph.add_arc(node)
            if parent is not None:
                graph.add_edge(parent, node)
        return graph

    @property
    def graph(self) -> Any:
        """``build_graph()``."""
        return self.build_graph()

    @property
    def supports_native_join(self) -> bool:
        """Whether the backend waits on notifications (not without a result backend)."""
        return bool(self.backend.supports_native_join)

    def revoke(
        self, connection: Any = None, terminate: bool = False, signal: Any = None,
        wait: bool = False, timeout: float | None = None,
    ) -> None:  # fmt: skip
        """Revoke the task (``app.control.revoke``): every worker discards it when fetched."""
        self.app.control.revoke(self.id, terminate=terminate, signal=signal)

    def revoke_by_stamped_headers(
        self, headers: dict, connection: Any = None, terminate: bool = False,
        signal: Any = None, wait: bool = False, timeout: float | None = None,
    ) -> None:  # fmt: skip
        """Revoke the tasks carrying one of these stamps (``app.control``'s)."""
        self.app.control.revoke_by_stamped_headers(headers, terminate=terminate, signal=signal)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, AsyncResult):
            return other.id == self.id
        if isinstance(other, str):
            return other == self.id
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.id)

    def __str__(self) -> str:
        return self.id

    def __repr__(self) -> str:
        return f"<{type(self).__name__}: {self.id}>"


class EagerResult(AsyncResult):
    """The result of a task run eagerly: already known, nothing stored."""

    def __init__(
        self, id: str, ret_value: Any, state: str, traceback: str | None = None,
        name: str | None = None,
    ):  # fmt: skip
        self.id = id
        self._result = ret_value
        self._state = state
        self._traceback = traceback
        self.name = name
        self.parent = None
        self._backend = None

    @property
    def state(self) -> str:
        return self._state

    status = state

    @property
    def result(self) -> Any:
        return self._result

    info = result

    @property
    def traceback(self) -> str | None:
        return self._traceback

    def get(  # type: ignore[override]  # Celery's EagerResult.get takes these, in this order
        self, timeout: float | None = None, propagate: bool = True,
        disable_sync_subtasks: bool = True, **_: Any,
    ) -> Any:  # fmt: skip
        """The value; a failure's exception is raised with ``propagate``.

        As Celery's: RuntimeError inside a task (unless ``disable_sync_subtasks`` is False);
        the other arguments of ``AsyncResult.get`` (``callback``...) are ignored.
        """
        if disable_sync_subtasks:
            assert_will_not_block()
        return self.maybe_throw(propagate)

    def maybe_throw(self, propagate: bool = True, callback: Callable | None = None) -> Any:
        """The value; a failure's exception is raised with ``propagate``."""
        if propagate and self.state in states.PROPAGATE_STATES:
            raise (
                self.result if isinstance(self.result, BaseException) else Exception(self.result)
            )
        if callback is not None:
            callback(self.id, self.result)
        return self.result

    maybe_reraise = maybe_throw

    wait = get  # type: ignore[assignment]  # as Celery: EagerResult.wait is its get

    def ready(self) -> bool:
        return True

    @property
    def children(self) -> None:
        """None: an eager run keeps no tree (as Celery's)."""
        return None

    #: Eager results are joined as they are: nothing to wait for.
    supports_native_join = False

    def forget(self) -> None:
        return None

    def revoke(self, *args: Any, **kwargs: Any) -> None:
        self._state = states.REVOKED


def _native_meta(result: AsyncResult) -> dict[str, Any]:
    """The stored meta of an ended task, a failure's result rebuilt as an exception."""
    meta = dict(result.backend.get_task_meta(result.id))
    stored = meta.get("result")
    if meta.get("status") in states.EXCEPTION_STATES and not isinstance(stored, BaseException):
        meta["result"] = result.backend.exception_to_python(stored)
    return meta


class ResultSet(ResultBase):
    """Several results, read together (in the order given)."""

    def __init__(self, results: list, app: Celery | None = None, **_: Any):
        self._app = app
        self.results = list(results)

    @property
    def app(self) -> Celery:
        return self._app or get_current_app()

    @property
    def backend(self) -> Backend:
        """The app's result backend."""
        return self.app.backend

    def get(
        self, timeout: float | None = None, propagate: bool = True, interval: float = 0.5,
        callback: Callable | None = None, no_ack: bool = True, on_message: Callable | None = None,
        disable_sync_subtasks: bool = True, on_interval: Callable | None = None,
    ) -> list | None:  # fmt: skip
        """``join``; None with a ``callback`` (as Celery's ``join_native``, Redis)."""
        values = self.join(
            timeout, propagate, interval, callback, no_ack, on_message,
            disable_sync_subtasks, on_interval,
        )  # fmt: skip
        return None if callback is not None else values

    def join(
        self, timeout: float | None = None, propagate: bool = True, interval: float = 0.5,
        callback: Callable | None = None, no_ack: bool = True, on_message: Callable | None = None,
        disable_sync_subtasks: bool = True, on_interval: Callable | None = None,
    ) -> list:  # fmt: skip
        """Every result's value, in order; the first failure raised with ``propagate``.

        ``timeout`` bounds the whole wait (``spinach_compat.exceptions.TimeoutError``); once
        spent, each result left is read once. With a ``callback``, it gets ``(id, value)``
        of each result and the list is empty. The other arguments as ``AsyncResult.get``.
        """
        if disable_sync_subtasks:
            assert_will_not_block()
        _refuse_on_message(on_message, f"{type(self).__name__}.join")
        deadline = None if timeout is None else time.monotonic() + timeout
        values = []
        for result in self.results:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            value = result.get(
                timeout=remaining, propagate=propagate, interval=interval,
                on_interval=on_interval, disable_sync_subtasks=disable_sync_subtasks,
            )  # fmt: skip
            if callback is not None:
                callback(result.id, value)
            else:
                values.append(value)
        return values

    def join_native(
        self, timeout: float | None = None, propagate: bool = True, interval: float = 0.5,
        callback: Callable | None = None, no_ack: bool = True, on_message: Callable | None = None,
        on_interval: Callable | None = None, disable_sync_subtasks: bool = True,
    ) -> list:  # fmt: skip
        """``join`` (the backends wait on notifications already), in Celery's argument
        order."""
        return self.join(
            timeout, propagate, interval, callback, no_ack, on_message,
            disable_sync_subtasks, on_interval,
        )  # fmt: skip

    def iter_native(
        self, timeout: float | None = None, interval: float = 0.5, no_ack: bool = True,
        on_message: Callable | None = None, on_interval: Callable | None = None,
    ) -> Iterator[tuple[str | None, Any]]:  # fmt: skip
        """``(task_id, meta)`` of each task as it ends (the stored meta, a failure's result
        an exception), as Celery's Redis backend; a nested group first, as ``(group_id,
        its results)``. ``timeout`` bounds the whole wait (``TimeoutError``)."""
        _refuse_on_message(on_message, f"{type(self).__name__}.iter_native")
        pending = []
        for result in self.results:
            if isinstance(result, ResultSet):
                yield getattr(result, "id", None), result.results
            else:
                pending.append(result)
        deadline = None if timeout is None else time.monotonic() + timeout
        while pending:
            for result in [result for result in pending if result.ready()]:
                pending.remove(result)
                yield result.id, _native_meta(result)
            if pending:
                remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
                pending[0].get(timeout=remaining, propagate=False, interval=interval,
                               on_interval=on_interval, disable_sync_subtasks=False)  # fmt: skip

    @property
    def supports_native_join(self) -> bool:
        """Whether the first result's backend waits on notifications (False if empty)."""
        return bool(self.results) and self.results[0].supports_native_join

    def maybe_throw(self, callback: Callable | None = None, propagate: bool = True) -> None:
        """Raise the first failure of the results read now (``propagate``)."""
        for result in self.results:
            result.maybe_throw(callback=callback, propagate=propagate)

    maybe_reraise = maybe_throw

    def ready(self) -> bool:
        """Whether every task ended."""
        return all(result.ready() for result in self.results)

    def successful(self) -> bool:
        """Whether every task succeeded."""
        return all(result.successful() for result in self.results)

    def failed(self) -> bool:
        """Whether a task failed."""
        return any(result.failed() for result in self.results)

    def waiting(self) -> bool:
        """Whether a task has not ended yet."""
        return not self.ready()

    def completed_count(self) -> int:
        """How many tasks succeeded."""
        return sum(int(result.successful()) for result in self.results)

    def revoke(self, terminate: bool = False, signal: Any = None, **_: Any) -> None:
        """Revoke every task."""
        for result in self.results:
            result.revoke(terminate=terminate, signal=signal)

    def forget(self) -> None:
        for result in self.results:
            result.forget()

    def __iter__(self) -> Any:
        return iter(self.results)

    def __getitem__(self, index: int) -> Any:
        return self.results[index]

    def __len__(self) -> int:
        return len(self.results)


class GroupResult(ResultSet):
    """The results of a group's tasks, under the group's id."""

    def __init__(
        self, id: str | None = None, results: list | None = None, parent: Any = None,
        app: Celery | None = None, **kwargs: Any,
    ):  # fmt: skip
        super().__init__(results or [], app=app, **kwargs)
        self.id = id
        self.parent = parent

    @property
    def children(self) -> list:
        """The group's results (a property, as Celery's)."""
        return self.results

    def __eq__(self, other: object) -> bool:
        if isinstance(other, GroupResult):
            return other.id == self.id and other.results == self.results
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.id)

    def __repr__(self) -> str:
        return f"<{type(self).__name__}: {self.id} [{', '.join(r.id for r in self.results)}]>"

    # -- saved groups, as Celery's (``celery-taskset-meta-<id>`` in the backend) ------------

    def save(self, backend: Backend | None = None) -> GroupResult:
        """Save the group's ids in the backend (for ``result_expires``), to ``restore`` it."""
        return (backend or self.app.backend).save_group(self._saved_id(), self)

    def delete(self, backend: Backend | None = None) -> None:
        """Remove the saved group."""
        (backend or self.app.backend).delete_group(self._saved_id())

    def _saved_id(self) -> str:
        if self.id is None:
            raise ValueError("a GroupResult without an id cannot be saved, deleted or restored")
        return self.id

    @classmethod
    def restore(
        cls, id: str, backend: Backend | None = None, app: Celery | None = None
    ) -> GroupResult | None:
        """The group saved under ``id`` (``save``), or None."""
        if app is None:
            own: Any = cls.app  # a bound class's app, else the property (read on the class)
            app = own if not isinstance(own, property) else get_current_app()
        return (backend or app.backend).restore_group(id)

    def as_tuple(self) -> tuple:
        """``((id, parent's as_tuple() or None), [each result's as_tuple()])``."""
        parent = self.parent
        return (self.id, parent and parent.as_tuple()), [r.as_tuple() for r in self.results]


def result_from_tuple(r: Any, app: Celery | None = None) -> Any:
    """The result ``as_tuple`` gave (a list once through JSON); a result stays itself."""
    if isinstance(r, ResultBase):
        return r
    app = app or get_current_app()
    head, nodes = r
    id, parent = head if isinstance(head, (list, tuple)) else (head, None)
    parent = result_from_tuple(parent, app) if parent else None
    if nodes is not None:
        return app.GroupResult(id, [result_from_tuple(child, app) for child in nodes],
                               parent=parent)  # fmt: skip
    return app.AsyncResult(id, parent=parent)


from .surface import module_getattr, refuse_missing  # noqa: E402  (see surface.REFUSED)

refuse_missing(AsyncResult, "celery.result.AsyncResult")
refuse_missing(GroupResult, "celery.result.GroupResult")
__getattr__ = module_getattr(__name__)
