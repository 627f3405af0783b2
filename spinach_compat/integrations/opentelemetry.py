"""``opentelemetry.instrumentation.celery`` under ``install_as_celery()``: refused.

``CeleryInstrumentor().instrument()`` raises ``UnsupportedFeature``: the real instrumentor
needs Celery's ``celery.worker.request`` and billiard. Tracing is
``spinach.contrib.otel.instrument()``: its spans continue the traces of Celery producers
instrumented with the real package (same W3C headers), under other span names.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any, NoReturn

from ..exceptions import UnsupportedFeature

MESSAGE = (
    "opentelemetry-instrumentation-celery is not supported by spinach_compat: it hooks into "
    "Celery's worker internals. Call spinach.contrib.otel.instrument() instead (pip install "
    "'spinach-queue[otel]'), in the producers and the workers: spans 'send <task>' and "
    "'process <task>' in one trace, continuing the traces of Celery producers instrumented "
    "with it (see docs/operations.md)"
)


class CeleryInstrumentor:
    """The instrumentor's name; ``instrument()`` refuses (see the module)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.is_instrumented_by_opentelemetry = False

    def instrumentation_dependencies(self) -> Collection[str]:
        return ("celery >= 4.0, < 6.0",)

    def instrument(self, **kwargs: Any) -> NoReturn:
        raise UnsupportedFeature(MESSAGE)

    def uninstrument(self, **kwargs: Any) -> None:
        """Nothing was instrumented."""
