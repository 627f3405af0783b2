"""Upstream Spinach's Datadog integration is not provided: this import says so."""

raise ImportError(
    "spinach.contrib.datadog (upstream Spinach's Datadog tracing) is not provided: use "
    "spinach.contrib.otel, OpenTelemetry tracing, which Datadog ingests "
    "(see migration_guide/upstream-spinach.md)"
)
