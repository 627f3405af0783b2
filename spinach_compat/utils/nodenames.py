"""Worker node names (``name@host``), as ``celery.utils.nodenames``."""

from __future__ import annotations

import os
import re
import socket
from functools import lru_cache
from typing import Any

from ..surface import module_getattr

__all__ = [
    "anon_nodename",
    "default_nodename",
    "gethostname",
    "host_format",
    "node_format",
    "nodename",
    "nodesplit",
]

NODENAME_SEP = "@"
NODENAME_DEFAULT = "celery"
_FORMAT = re.compile(r"%([%\w])")


@lru_cache(maxsize=1)
def gethostname() -> str:
    """The host's name, read once per process as Celery does."""
    return socket.gethostname()


def nodename(name: str, hostname: str) -> str:
    """``name@hostname``."""
    return NODENAME_SEP.join((name, hostname))


def nodesplit(name: str) -> tuple[str | None, str] | list[str]:
    """``(name, host)`` of ``name@host``; ``(None, host)`` without ``@``."""
    parts = name.split(NODENAME_SEP, 1)
    if len(parts) == 1:
        return None, parts[0]
    return parts


def anon_nodename(hostname: str | None = None, prefix: str = "gen") -> str:
    """The node name of a process that is not a worker: ``gen<pid>@host``."""
    return nodename(f"{prefix}{os.getpid()}", hostname or gethostname())


def default_nodename(hostname: str | None, default_name: str = NODENAME_DEFAULT) -> str:
    """``hostname`` completed: ``default_name`` for a missing name, this host for a missing host."""
    name, host = nodesplit(hostname or "")
    return nodename(name or default_name, host or gethostname())


def node_format(s: str, name: str, **extra: Any) -> str:
    """``s`` with ``%h``, ``%n``, ``%d`` (and ``%p``: ``name``) of the node ``name``."""
    shortname, host = nodesplit(name)
    return host_format(s, host, shortname or NODENAME_DEFAULT, p=name, **extra)


def host_format(s: str, host: str | None = None, name: str | None = None, **extra: Any) -> str:
    """``s`` with ``%h`` (host), ``%n`` (name, else the short host), ``%d`` (domain).

    ``%i`` and ``%I`` (a pool process's index) are ``0`` and empty: tasks run in threads of
    one process. ``extra`` adds keys (``p='...'`` for ``%p``); ``%%`` is a percent sign.
    """
    host = host or gethostname()
    short, _, domain = host.partition(".")
    keys = {"h": host, "n": name or short, "d": domain, "i": "0", "I": "", **extra}
    return _expand(s, keys)


def _expand(s: str, keys: dict[str, Any]) -> str:
    """``%x`` replaced by ``keys['x']`` (called if callable); ValueError for an unknown key."""

    def resolve(match: re.Match) -> str:
        key = match.group(1)
        if key == "%":
            return "%"
        if key not in keys:
            raise ValueError(f"unknown format %{key} in {s!r} (write %% for a percent sign)")
        value = keys[key]
        return str(value() if callable(value) else value)

    return _FORMAT.sub(resolve, s) if s else s


__getattr__ = module_getattr(__name__)
