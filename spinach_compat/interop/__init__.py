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
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..app.base import Celery
    from .bridge import CeleryBridge

__all__ = ["WorkerBridge"]


class WorkerBridge:
    """The bridge of ``queues`` as a service of a worker process (``Worker(services=)``).

    ``prepare`` builds it once the worker imported its tasks, before the engine starts:
    a broker it cannot bridge (not Redis) or any other error stops the worker start.
    ``start`` runs its thread when the worker is ready, before ``worker_ready`` is sent
    (an error there stops the worker too); ``stop`` ends it on warm shutdown.
    """

    def __init__(self, app: Celery, queues: Sequence[str]):
        self.app = app
        self.queues = list(queues)
        self.bridge: CeleryBridge | None = None

    def prepare(self) -> None:
        """Build the bridge (raises ``UnsupportedFeature`` for a broker other than Redis)."""
        from .bridge import CeleryBridge

        if self.bridge is None:
            self.bridge = CeleryBridge(self.app, self.queues)

    def start(self) -> None:
        """Start the bridge's thread."""
        self.prepare()
        assert self.bridge is not None
        self.bridge.start()

    def stop(self) -> None:
        """Stop the thread (if it runs) and close the bridge's connection."""
        bridge, self.bridge = self.bridge, None
        if bridge is not None:
            bridge.stop()
