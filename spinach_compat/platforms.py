"""Platform constants and helpers, as ``celery.platforms``.

Exit codes, the system's name and signal names are as Celery's. Daemonizing, pid locks,
dropping privileges and Celery's signal-handler registry are refused (see
``spinach_compat.surface.REFUSED``): the worker runs in the foreground under a supervisor,
``--pidfile`` is its lock, and it installs its own SIGTERM/SIGINT handlers.
"""

from __future__ import annotations

import errno
import os
import platform
import signal
from typing import Any

from .surface import module_getattr

__all__ = [
    "EX_FAILURE",
    "EX_OK",
    "EX_UNAVAILABLE",
    "EX_USAGE",
    "IS_WINDOWS",
    "SIGMAP",
    "SYSTEM",
    "IS_macOS",
    "LockFailed",
    "get_errno_name",
    "get_fdmax",
    "isatty",
    "pyimplementation",
    "signal_name",
]

EX_OK = getattr(os, "EX_OK", 0)
EX_FAILURE = 1
EX_UNAVAILABLE = getattr(os, "EX_UNAVAILABLE", 69)
EX_USAGE = getattr(os, "EX_USAGE", 64)
EX_CANTCREAT = getattr(os, "EX_CANTCREAT", 73)

SYSTEM = platform.system()
IS_macOS = SYSTEM == "Darwin"
IS_WINDOWS = SYSTEM == "Windows"

#: Signal number -> name (``'SIGTERM'``), for the signals of this platform (for a signal with
#: two names, as SIGABRT and SIGIOT, Celery's pick varies from run to run: this is Python's).
SIGMAP: dict[int, str] = {sig: sig.name for sig in signal.Signals}


class LockFailed(Exception):
    """A pid lock could not be taken."""


def isatty(fh: Any) -> bool | None:
    """Whether ``fh`` is a terminal (None if it cannot say)."""
    try:
        return fh.isatty()
    except AttributeError:
        return None


def pyimplementation() -> str:
    """The Python implementation's name (``'CPython'``, ``'PyPy'``...)."""
    return platform.python_implementation()


def signal_name(signum: int) -> str:
    """The name of signal ``signum`` without ``SIG`` (``'TERM'``)."""
    return SIGMAP[signum][3:]


def get_errno_name(n: int | str) -> int:
    """The errno number of ``n`` (a name as ``'ENOENT'``, or a number)."""
    return getattr(errno, n) if isinstance(n, str) else n


def get_fdmax(default: int | None = None) -> int | None:
    """The highest file descriptor number plus one, ``default`` if unlimited or unknown."""
    try:
        return os.sysconf("SC_OPEN_MAX")
    except (AttributeError, ValueError, OSError):
        pass
    try:
        import resource
    except ImportError:
        return default
    limit = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    return default if limit == resource.RLIM_INFINITY else limit


__getattr__ = module_getattr(__name__)
