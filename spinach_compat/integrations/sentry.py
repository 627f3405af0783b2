"""``sentry_sdk.integrations.celery`` under ``install_as_celery()``: not supported yet.

``sentry_sdk.init()`` enables ``CeleryIntegration`` on its own when ``celery`` imports: that
logs a WARNING and leaves Sentry's other integrations running. Passing
``CeleryIntegration()`` in ``integrations=`` makes ``sentry_sdk.init()`` raise
``UnsupportedFeature``.
"""

from __future__ import annotations

from typing import Any, NoReturn

from sentry_sdk.integrations import DidNotEnable, Integration

from ..exceptions import UnsupportedFeature
from . import logger

MESSAGE = (
    "sentry-sdk's CeleryIntegration is not supported by spinach_compat: it patches Celery's "
    "worker internals, which the facade does not have. Use "
    "integrations=[spinach.contrib.sentry.SpinachIntegration()] instead (pip install "
    "'spinach-queue[sentry]'): it captures each final task failure once, with Celery's "
    "celery_task_id tag, and traces each run. Pass disabled_integrations=[CeleryIntegration] "
    "to sentry_sdk.init() to silence this "
    "(see migration_guide/features.md#the-celery-import-shim)"
)


class CeleryIntegrationUnsupported(UnsupportedFeature, DidNotEnable):
    """Raised by ``setup_once``: Sentry re-raises it for an explicit ``CeleryIntegration()``
    and, as a ``DidNotEnable``, skips it when it enabled the integration on its own."""


class CeleryIntegration(Integration):
    """Sentry's ``CeleryIntegration`` name; setting it up refuses (see the module)."""

    identifier = "celery"

    def __init__(self, *args: Any, **options: Any) -> None:
        self.options = options

    @staticmethod
    def setup_once() -> NoReturn:
        logger.warning("%s", MESSAGE)
        raise CeleryIntegrationUnsupported(MESSAGE)
