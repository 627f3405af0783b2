"""Interoperation with unmodified Celery, to migrate one task at a time, either way.

- ``bridge``: a worker started with ``--celery-queues celery,emails`` also consumes the
  messages Celery clients publish on those queues (protocol 2, kombu's Redis transport),
  moving each into the native store as a native job (``message``), safely (see the
  delivery guarantee in ``bridge``); results go where Celery clients read them
  (``results``).
- ``legacy``: tasks named by ``spinach_legacy_tasks`` (or a ``task_routes`` entry with
  ``'legacy': True``) are published as Celery messages for legacy Celery workers, and
  ``AsyncResult`` reads their Celery-format results.

Celery's lists and the native keys must live on the same Redis server and db.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..app.base import Celery
    from .bridge import CeleryBridge

__all__ = ["WorkerBridge"]


class WorkerBridge:
    """A bridge of ``queues`` for a worker process: started on ``worker_ready`` (once the
    worker imported its tasks), stopped on ``worker_shutting_down`` or ``detach``."""

    def __init__(self, app: Celery, queues: Sequence[str]):
        self.app = app
        self.queues = list(queues)
        self.bridge: CeleryBridge | None = None

    def attach(self) -> WorkerBridge:
        from .. import signals

        signals.worker_ready.connect(self._start, weak=False, dispatch_uid=id(self))
        signals.worker_shutting_down.connect(self._stop, weak=False, dispatch_uid=id(self))
        return self

    def detach(self) -> None:
        from .. import signals

        self._stop()
        signals.worker_ready.disconnect(dispatch_uid=id(self))
        signals.worker_shutting_down.disconnect(dispatch_uid=id(self))

    def _start(self, sender: Any = None, **_: Any) -> None:
        from .bridge import CeleryBridge

        self.bridge = CeleryBridge(self.app, self.queues).start()

    def _stop(self, sender: Any = None, **_: Any) -> None:
        bridge, self.bridge = self.bridge, None
        if bridge is not None:
            bridge.stop()
