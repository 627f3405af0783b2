"""``opentelemetry.instrumentation.celery`` under ``install_as_celery()``: not supported yet.

``CeleryInstrumentor().instrument()`` raises ``UnsupportedFeature``: the real instrumentor
needs Celery's ``celery.worker.request`` and billiard, and its spans were never checked
against the facade's signals.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any, NoReturn

from ..exceptions import UnsupportedFeature

MESSAGE = (
    "opentelemetry-instrumentation-celery is not supported by spinach_compat yet "
    "(OpenTelemetry support for spinach is planned): it hooks into Celery's worker "
    "internals. What works today: open and end spans in receivers of celery.signals "
    "task_prerun, task_postrun and task_failure, which the facade sends as Celery does "
    "(see migration_guide/features.md#the-celery-import-shim)"
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
