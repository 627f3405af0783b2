"""Django integration: add ``"spinach.contrib.spinachd"`` to ``INSTALLED_APPS``.

Needs Django (``pip install 'spinach-queue[django]'``). Settings, read when Django sets up:

- ``SPINACH_BROKER`` (required): a ``Broker``, or a URL (``redis://``, ``rediss://``,
  ``unix://``, ``redis+cluster://``, ``memory://``);
- ``SPINACH_NAMESPACE``: the engine's namespace, ``spinach`` by default;
- ``SPINACH_ACTUAL_EMAIL_BACKEND``: what ``BackgroundEmailBackend``'s job sends through,
  Django's SMTP backend by default;
- ``SPINACH_CLEAR_SESSIONS_PERIODICITY``: a ``timedelta`` to clear expired sessions that
  often (a periodic task), None (the default) not to.

The ``tasks`` registry of every installed app's ``tasks.py`` is attached to the engine,
``spin`` (``from spinach.contrib.spinachd import spin``); ``python manage.py spinach`` runs
its workers; each job runs between two ``close_old_connections()``, as a request does.
"""

from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:
    if name == "spin":  # built from the settings: only once Django is set up
        from .apps import spin

        return spin
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
