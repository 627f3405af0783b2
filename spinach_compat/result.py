"""Task results: ``AsyncResult`` reads the result backend, ``EagerResult`` holds a value."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from . import states
from ._state import get_current_app
from .exceptions import TaskRevokedError, TimeoutError

if TYPE_CHECKING:
    from .app.base import Celery

__all__ = ["AsyncResult", "EagerResult", "GroupResult", "ResultBase", "ResultSet"]


class ResultBase:
    """Base class of results."""

    parent = None


class AsyncResult(ResultBase):
    """The state and outcome of a task id, read from the app's result backend."""

    def __init__(
        self, id: str, backend: Any = None, task_name: str | None = None,
        app: Celery | None = None, parent: Any = None,
    ):  # fmt: skip
        if id is None:
            raise ValueError(f"AsyncResult requires valid id, not {type(id)}")
        self.app = app or get_current_app()
        self.id = id
        self._backend = backend
        self.name = task_name
        self.parent = parent

    @property
    def task_id(self) -> str:
        return self.id

    @property
    def backend(self) -> Any:
        return self._backend if self._backend is not None else self.app.backend

    def _meta(self) -> dict[str, Any]:
        return self.backend.get_task_meta(self.id)

    @property
    def state(self) -> str:
        """PENDING, STARTED, RETRY, SUCCESS, FAILURE, REVOKED or a custom state."""
        return self._meta()["status"]

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

    def _decode(self, meta: dict[str, Any]) -> Any:
        if meta["status"] in states.EXCEPTION_STATES:
            return self.backend.exception_to_python(meta["result"])
        return meta["result"]

    def get(
        self, timeout: float | None = None, propagate: bool = True, interval: float = 0.5,
        **_: Any,
    ) -> Any:  # fmt: skip
        """Wait for the task to be ready; its value, or raise its exception (``propagate``).

        Raises ``spinach_compat.exceptions.TimeoutError`` after ``timeout`` seconds.
        """
        meta = self.backend.wait_for(self.id, timeout=timeout, interval=interval)
        value = self._decode(meta)
        if propagate and meta["status"] in states.PROPAGATE_STATES:
            if meta["status"] == states.REVOKED and not isinstance(value, TaskRevokedError):
                raise TaskRevokedError(str(value))
            raise value
        return value

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

    def revoke(
        self, connection: Any = None, terminate: bool = False, signal: Any = None,
        wait: bool = False, timeout: float | None = None,
    ) -> None:  # fmt: skip
        """Revoke the task (``app.control.revoke``): every worker discards it when fetched."""
        self.app.control.revoke(self.id, terminate=terminate, signal=signal)

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

    def get(self, timeout: float | None = None, propagate: bool = True, **_: Any) -> Any:
        """The value; a failure's exception is raised with ``propagate``."""
        if self.successful():
            return self.result
        if self.state in states.PROPAGATE_STATES:
            if propagate:
                raise (
                    self.result
                    if isinstance(self.result, BaseException)
                    else Exception(self.result)
                )
            return self.result
        return self.result

    wait = get

    def ready(self) -> bool:
        return True

    def forget(self) -> None:
        return None

    def revoke(self, *args: Any, **kwargs: Any) -> None:
        self._state = states.REVOKED


class ResultSet(ResultBase):
    """Several results, read together (in the order given)."""

    def __init__(self, results: list, app: Celery | None = None, **_: Any):
        self._app = app
        self.results = list(results)

    @property
    def app(self) -> Celery:
        return self._app or get_current_app()

    def get(
        self, timeout: float | None = None, propagate: bool = True, interval: float = 0.5,
        **_: Any,
    ) -> list:  # fmt: skip
        """Every result's value, in order; the first failure raised with ``propagate``.

        ``timeout`` bounds the whole wait (``spinach_compat.exceptions.TimeoutError``).
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        values = []
        for result in self.results:
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                raise TimeoutError("The operation timed out.")
            values.append(result.get(timeout=remaining, propagate=propagate, interval=interval))
        return values

    join = get

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

    def children(self) -> list:
        return self.results

    def __eq__(self, other: object) -> bool:
        if isinstance(other, GroupResult):
            return other.id == self.id and other.results == self.results
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.id)

    def __repr__(self) -> str:
        return f"<{type(self).__name__}: {self.id} [{', '.join(r.id for r in self.results)}]>"
