"""``worker --metrics-port``: Prometheus metrics of a facade worker (a worker service).

The native metrics (``spinach.contrib.prometheus``: needs ``spinach-queue[prometheus]``) of
the app's namespace, plus the revoked count: a revoked or expired task is discarded by the
facade, which the engine sees as a success, so ``task_revoked`` counts it as revoked instead.

- ``-P threads`` / ``solo`` (one process): the worker serves them itself;
- ``-P prefork``: each child records its own, and the parent serves their sum
  (``prefork.run_parent`` with ``metrics_port``; see ``MultiprocessMetrics``).
"""

from __future__ import annotations

import os
from typing import Any

from spinach.context import current_job
from spinach.supervisor import METRICS_DIR_VARIABLE

from .. import signals


class MetricsService:
    """Counts the jobs of ``namespace`` from ``prepare`` to ``stop``; serves them on ``port``
    (None: for the prefork parent, which serves the sum of its children)."""

    def __init__(self, namespace: str, port: int | None):
        self.namespace = namespace
        self.port = port
        self._metrics: Any = None
        self._server: Any = None

    @staticmethod
    def wanted(port: int | None, role: str) -> bool:
        """Whether a worker of ``role`` records metrics (a child: when its parent serves)."""
        if role == "child":
            return bool(os.environ.get(METRICS_DIR_VARIABLE))
        return port is not None and role == "main"

    def prepare(self) -> None:
        from spinach.contrib import prometheus

        self._metrics = metrics = prometheus.JobMetrics(self.namespace).connect()
        if self.port is not None:
            try:
                self._server = prometheus.MetricsServer(metrics.registry, self.port)
            except BaseException:
                metrics.disconnect()
                raise
        signals.task_revoked.connect(self._revoked, weak=False)

    def start(self) -> None:
        """Nothing more: counting began in ``prepare``, before the engine starts."""

    def stop(self) -> None:
        signals.task_revoked.disconnect(self._revoked)
        if self._server is not None:
            self._server.close()
            self._server = None
        if self._metrics is not None:
            self._metrics.disconnect()
            self._metrics = None

    def _revoked(self, sender: Any = None, **kwargs: Any) -> None:
        job, metrics = current_job(), self._metrics
        if job is not None and metrics is not None:
            metrics.job_revoked(self.namespace, job)
