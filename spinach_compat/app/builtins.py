"""Celery's built-in tasks that the canvas sends: ``celery.map``, ``celery.starmap``,
``celery.chunks`` (for ``xmap``, ``xstarmap`` and ``chunks``, see ``spinach_compat.canvas``)
and ``celery.accumulate`` (for ``Task.replace`` with a group, see ``app.replace``).

They are registered when the app is finalized (``app.lifecycle.finalize``), as Celery's: a
worker always has them, and ``app.tasks`` lists them under their ``celery.`` names.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .base import Celery


def register(app: Celery) -> None:
    """Register the built-in canvas tasks with ``app`` (a name taken already is kept)."""
    from ..canvas import chunks, signature

    @app.task(name="celery.map", shared=False, lazy=False)
    def xmap(task: Any, it: Any) -> list:
        """Call ``task`` here with each item of ``it``, in turn (not in parallel)."""
        run = signature(task, app=app).type
        return [run(item) for item in it]

    @app.task(name="celery.starmap", shared=False, lazy=False)
    def xstarmap(task: Any, it: Any) -> list:
        """Call ``task`` here with each item of ``it`` as its arguments, in turn."""
        run = signature(task, app=app).type
        return [run(*item) for item in it]

    @app.task(name="celery.chunks", shared=False, lazy=False)
    def send_chunks(task: Any, it: Any, n: int) -> Any:
        """Send the group of ``xstarmap`` a ``chunks`` signature stands for."""
        return chunks.apply_chunks(task, it, n, app=app)

    @app.task(bind=True, name="celery.accumulate", shared=False, lazy=False)
    def accumulate(self: Any, *args: Any, **kwargs: Any) -> Any:
        """The values it is given (one of them with ``index=``): a replacing group's."""
        index = kwargs.get("index")
        return args[index] if index is not None else args
