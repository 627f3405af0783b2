"""``app.events``: Celery's event classes bound to an app.

``app.events.Receiver(connection, handlers=...)``, ``app.events.State()``,
``app.events.Dispatcher(connection, hostname=...)`` and ``app.events.default_dispatcher()``,
as in Celery, so that a project's own event consumers (and senders of custom events) run
on the facade.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from .dispatcher import EventDispatcher
from .receiver import EventReceiver
from .state import State

if TYPE_CHECKING:
    from ..app.base import Celery


class AppEvents:
    """What ``app.events`` gives (see the module docstring)."""

    def __init__(self, app: Celery):
        self.app = app

    def Receiver(self, channel: Any, handlers: Any = None, **options: Any) -> EventReceiver:
        """A receiver of the events of ``channel`` (a kombu connection or channel)."""
        return EventReceiver(channel, handlers, app=self.app, **options)

    def Dispatcher(self, connection: Any = None, hostname: str | None = None,
                   enabled: bool = True, **options: Any) -> EventDispatcher:  # fmt: skip
        """A dispatcher publishing in the caller's thread (close it, or use ``with``)."""
        return EventDispatcher(connection, hostname, enabled, app=self.app, **options)

    def State(self, **options: Any) -> State:
        """An empty ``State`` to feed with events."""
        return State(**options)

    @contextlib.contextmanager
    def default_dispatcher(
        self, hostname: str | None = None, enabled: bool = True, **_: Any
    ) -> Iterator[EventDispatcher]:
        """A dispatcher on a connection of its own, closed on exit."""
        connection = self.app.connection_for_write()
        with connection, self.Dispatcher(connection, hostname, enabled) as dispatcher:
            yield dispatcher
