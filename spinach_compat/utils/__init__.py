"""Utilities mirroring ``celery.utils``."""
