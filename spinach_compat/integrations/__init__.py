"""Stand-ins for integrations that patch Celery's internals, served under their own module
names by ``spinach_compat.install_as_celery()`` (see ``spinach_compat.shim``).

sentry-sdk's ``CeleryIntegration`` and ``opentelemetry-instrumentation-celery`` wrap
Celery's tracer, its ``Task.apply_async`` and its kombu producer, which the facade does not
have: run as they are on the facade, they would either crash or silently report nothing.
Their stand-ins keep the names they export and say what works instead; explicit use fails
with ``UnsupportedFeature``, Sentry's automatic enabling logs a warning.
"""

import logging

logger = logging.getLogger("spinach_compat.integrations")
