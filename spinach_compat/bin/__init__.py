"""Command-line entry points (``spinach-compat``), mirroring ``celery.bin``."""
