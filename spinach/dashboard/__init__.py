"""The web dashboard: ``spinach dashboard APP`` (or ``spinach-compat -A proj dashboard``).

Needs the optional dependencies of ``pip install 'spinach-queue[dashboard]'`` (Starlette,
uvicorn, Jinja2); nothing imports this package but the command, so the engine never needs
them. ``serve`` runs it in the calling thread, ``DashboardServer`` in a thread of its own
(an application on the in-process ``MemoryBroker`` serves its own dashboard so).
"""

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .app import Options
    from .server import DashboardServer, dashboard_source, serve

__all__ = ["DashboardServer", "Options", "dashboard_source", "serve"]


def __getattr__(name: str) -> Any:
    if name in __all__:  # lazily: importing spinach.dashboard.options needs no Starlette
        from . import app, server

        return getattr(app if name == "Options" else server, name)
    raise AttributeError(f"module 'spinach.dashboard' has no attribute {name!r}")
