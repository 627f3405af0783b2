"""Stands for the ``opentelemetry`` namespace (not installed in the test venv): the shim
serves its own ``opentelemetry.instrumentation.celery`` under it."""
