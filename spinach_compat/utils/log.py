"""Task loggers, as ``celery.utils.log``."""

from __future__ import annotations

import logging

__all__ = ["get_logger", "get_task_logger"]


def get_logger(name: str) -> logging.Logger:
    """The logger of ``name``."""
    return logging.getLogger(name)


def get_task_logger(name: str) -> logging.Logger:
    """A logger for task modules, a child of ``celery.task`` as in Celery."""
    if name in ("celery", "celery.task"):
        raise RuntimeError(f"logger name {name!r} is reserved for the task logger's parent")
    logger = logging.getLogger(name)
    logger.parent = logging.getLogger("celery.task")
    return logger
