"""Upstream Spinach's module name for the Sentry integration: ``spinach.contrib.sentry``."""

from .sentry import SpinachIntegration

__all__ = ["SpinachIntegration"]
