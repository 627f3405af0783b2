"""Tasks a caller can ask to stop, as ``celery.contrib.abortable``.

``AbortableAsyncResult.abort()`` stores the state ``ABORTED`` in the result backend; an
``AbortableTask`` checks ``self.is_aborted()`` now and then and stops when it is true.
Aborting is cooperative, as in Celery: a task that never checks runs to its end, and its
outcome (SUCCESS or FAILURE) then replaces ``ABORTED``. It needs a result backend.
"""

from __future__ import annotations

from typing import Any

from ..app.task import Task
from ..result import AsyncResult
from ..surface import module_getattr

__all__ = ["AbortableAsyncResult", "AbortableTask"]

ABORTED = "ABORTED"


class AbortableAsyncResult(AsyncResult):
    """An ``AsyncResult`` with ``abort()``: asks its task to stop."""

    def is_aborted(self) -> bool:
        """Whether ``abort()`` was called (and the task has not finished since)."""
        return self.state == ABORTED

    def abort(self) -> Any:
        """Store ``ABORTED`` for the task; it stops when it next checks ``is_aborted()``."""
        return self.backend.store_result(self.id, result=None, state=ABORTED, traceback=None)


class AbortableTask(Task):
    """A task that can be aborted: its body calls ``self.is_aborted()`` now and then."""

    abstract = True

    def AsyncResult(self, task_id: str, **kwargs: Any) -> AbortableAsyncResult:
        """The ``AbortableAsyncResult`` of ``task_id``."""
        return AbortableAsyncResult(task_id, backend=self.backend, app=self._get_app(),
                                    task_name=self.name)  # fmt: skip

    def apply_async(self, *args: Any, **kwargs: Any) -> Any:
        """As ``Task.apply_async``; sent (not eager), its result is an ``AbortableAsyncResult``."""
        result = super().apply_async(*args, **kwargs)
        if type(result) is not AsyncResult:  # an eager run's EagerResult, as in Celery
            return result
        abortable = self.AsyncResult(result.id)
        abortable.ignored = result.ignored
        return abortable

    def is_aborted(self, **kwargs: Any) -> bool:
        """Whether the running task (or ``task_id=``) was aborted; reads the backend."""
        task_id = kwargs.get("task_id", self.request.id)
        if task_id is None:
            raise ValueError("is_aborted() outside a running task needs task_id=")
        return self.AsyncResult(task_id).is_aborted()


__getattr__ = module_getattr(__name__)
