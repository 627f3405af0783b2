"""Loggers and logging helpers, as ``celery.utils.log``."""

from __future__ import annotations

import logging
import numbers
import sys
import threading
from collections.abc import Iterable
from typing import Any

from kombu.log import LOG_LEVELS

__all__ = [
    "LOG_LEVELS",
    "ColorFormatter",
    "LoggingProxy",
    "base_logger",
    "get_logger",
    "get_multiprocessing_logger",
    "get_task_logger",
    "in_sighandler",
    "mlevel",
    "reset_multiprocessing_logger",
    "set_in_sighandler",
]

#: The parent of Celery's loggers, as in Celery.
base_logger = logging.getLogger("celery")
_in_sighandler = False


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


def mlevel(level: Any) -> Any:
    """A level name (``'info'``, ``'INFO'``) as its number; a number as is."""
    if level and not isinstance(level, numbers.Integral):
        return LOG_LEVELS[level.upper()]
    return level


def set_in_sighandler(value: bool) -> None:
    """Say whether a signal handler runs: ``LoggingProxy`` then writes to ``sys.__stderr__``."""
    global _in_sighandler
    _in_sighandler = value


def in_sighandler() -> bool:
    """Whether ``set_in_sighandler(True)`` is in effect."""
    return _in_sighandler


def get_multiprocessing_logger() -> None:
    """None: the facade's workers run tasks in threads, with no multiprocessing logger."""
    return None


def reset_multiprocessing_logger() -> None:
    """Nothing to reset: there is no multiprocessing logger (see above)."""


class ColorFormatter(logging.Formatter):
    """A formatter colouring a record by its level (ANSI codes) when ``use_color``."""

    #: Level name -> ANSI colour code (bold blue, yellow, red, magenta), as Celery's.
    colors = {"DEBUG": "1;34", "WARNING": "1;33", "ERROR": "1;31", "CRITICAL": "1;35"}

    def __init__(self, fmt: str | None = None, use_color: bool = True, datefmt: str | None = None):
        super().__init__(fmt, datefmt)
        self.use_color = use_color

    def format(self, record: logging.LogRecord) -> str:
        message = super().format(record)
        color = self.colors.get(record.levelname)
        if color and self.use_color:
            return f"\x1b[{color}m{message}\x1b[0m"
        return message


class LoggingProxy:
    """A file-like object writing each line to ``logger`` at ``loglevel``.

    What Celery puts in place of ``sys.stdout``/``sys.stderr`` to log what tasks print:
    empty writes and trailing newlines are dropped, a write the logger's own handlers make
    back into it is dropped (no recursion), and after ``close()`` nothing is written.
    """

    mode = "w"
    name = None
    closed = False
    loglevel = logging.ERROR
    _thread = threading.local()

    def __init__(self, logger: logging.Logger, loglevel: int | str | None = None):
        self.logger = logger
        self.loglevel = mlevel(loglevel or self.logger.level or self.loglevel)

    def write(self, data: str) -> int:
        """Log ``data`` (without its trailing newlines); the number of characters logged."""
        if _in_sighandler:
            print(data, file=sys.__stderr__)
            return len(data)
        if getattr(self._thread, "recurse_protection", False) or not data or self.closed:
            return 0
        self._thread.recurse_protection = True
        try:
            text = str(data).rstrip("\n")
            if text:
                self.logger.log(self.loglevel, text)
            return len(text)
        finally:
            self._thread.recurse_protection = False

    def writelines(self, sequence: Iterable[str]) -> None:
        for part in sequence:
            self.write(part)

    def flush(self) -> None:
        """Nothing to flush: every write is logged at once."""

    def close(self) -> None:
        self.closed = True

    def isatty(self) -> bool:
        return False
