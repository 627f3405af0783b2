"""The app's lifecycle signals, sent where Celery sends them as far as the facade's app
allows: ``app.on_configure``, ``app.on_after_configure``, ``app.on_after_finalize`` and
``app.on_after_fork`` (receivers connect with ``@app.on_after_finalize.connect`` and are
called with ``sender=app``).

- ``on_configure`` then ``on_after_configure`` (with ``source=app.conf``): at the first read
  of a setting, as Celery's lazy configuration. Setting values (``app.conf.update``,
  ``app.conf.x = ...``) and ``config_from_object`` do not read; declaring a task does not
  count either (the facade reads the routes then, where Celery waits until the task is
  used), so a receiver connected after ``@app.task`` still fires. Unlike Celery, the
  configuration sources are already read when ``on_configure`` is sent.
- ``on_after_finalize``: at finalize, once: the first access to ``app.tasks``, an explicit
  ``app.finalize()``, or a worker starting (after its task modules are imported, before its
  beat entries are registered). Tasks are registered when declared, so ``app.finalized``
  is always True; the signal keeps Celery's lazy moment, so a receiver connected at import
  time fires once, when the worker starts. One connected after that moment never fires, as
  in Celery. ``app.send_task`` of a name looks it up in the raw registry and does not
  finalize, as Celery's.
- ``on_after_fork``: in every forked child process of a process holding the app (see
  ``spinach.forks``); Celery sends it in the children of its prefork pool.
"""

from __future__ import annotations

import contextlib
import threading
import weakref
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .. import _state
from ..signals import Signal
from . import builtins
from .defaults import DEFAULTS, Settings

if TYPE_CHECKING:
    from .base import Celery


@dataclass
class LifecycleState:
    """What the lifecycle keeps of one app (``app.lifecycle_state``, set by ``install``)."""

    finalize_lock: threading.RLock = field(default_factory=threading.RLock)
    finalize_sent: bool = False  #: ``on_after_finalize`` is being sent, or was
    finalize_done: bool = False  #: its receivers have run
    #: ``add_periodic_task`` entries waiting for the app's configuration.
    pending_periodic_tasks: list[tuple[str, dict[str, Any], str | None]] = field(
        default_factory=list
    )


class _QuietReads(threading.local):
    """Per thread: how many ``quiet_reads`` blocks are open."""

    depth = 0


_quiet = _QuietReads()


class AppSettings(Settings):
    """The app's settings: the first read of a setting configures the app (``configure``)."""

    @classmethod
    def of_app(cls, app: Celery) -> AppSettings:
        settings = cls(DEFAULTS)
        settings.__dict__["_unconfigured_app"] = weakref.ref(app)
        return settings

    def _reading(self) -> None:
        if "_unconfigured_app" not in self.__dict__ or _quiet.depth:
            return  # configured already (the usual case, checked first), or declaring
        ref = self.__dict__.pop("_unconfigured_app", None)
        app = ref() if ref is not None else None
        if app is not None:
            configure(app)

    def __getitem__(self, key: str) -> Any:
        self._reading()
        return super().__getitem__(key)

    def __contains__(self, key: object) -> bool:
        self._reading()
        return super().__contains__(key)

    def __iter__(self) -> Iterator[str]:
        self._reading()
        return super().__iter__()

    def __len__(self) -> int:
        self._reading()
        return super().__len__()

    def keys(self) -> Any:
        self._reading()
        return super().keys()

    def values(self) -> Any:
        self._reading()
        return super().values()

    def items(self) -> Any:
        self._reading()
        return super().items()


@contextlib.contextmanager
def quiet_reads() -> Iterator[None]:
    """Reads of settings in this thread that do not configure the app (task declaration)."""
    _quiet.depth += 1
    try:
        yield
    finally:
        _quiet.depth -= 1


def install(app: Celery) -> None:
    """Give ``app`` its lifecycle signals and state (called by its constructor)."""
    from spinach.forks import notify_after_fork, reset_after_fork

    if getattr(type(app), "on_configure", None) is None:  # else Celery 3's method, kept
        app.on_configure = Signal("app.on_configure")
    app.on_after_configure = Signal("app.on_after_configure", providing_args={"source"})
    app.on_after_finalize = Signal("app.on_after_finalize")
    app.on_after_fork = Signal("app.on_after_fork")
    app.configured = False
    app.lifecycle_state = LifecycleState()
    reset_after_fork(app)
    notify_after_fork(app)


def configure(app: Celery) -> None:
    """The first read of a setting: ``on_configure``, the pending ``add_periodic_task``
    entries, ``on_after_configure``."""
    app.configured = True
    if isinstance(app.on_configure, Signal):
        app.on_configure.send(sender=app)
    else:
        app.on_configure()
    from .beat import add_beat_entry

    conf = app.conf
    pending = app.lifecycle_state.pending_periodic_tasks
    while pending:
        add_beat_entry(app, *pending.pop(0))
    app.on_after_configure.send(sender=app, source=conf)


def finalize(app: Celery) -> None:
    """Send ``on_after_finalize``, once; another thread finalizing meanwhile waits for its
    receivers, as in Celery."""
    state = app.lifecycle_state
    if state.finalize_done:
        return
    with state.finalize_lock:
        if state.finalize_sent:  # done, or being sent by this thread (a receiver's app.tasks)
            return
        state.finalize_sent = True
        try:
            for factory in _state.finalize_factories():  # other apps' shared tasks
                factory(app)
            builtins.register(app)  # Celery's canvas tasks, as its finalize adds them
            app.on_after_finalize.send(sender=app)
        finally:
            state.finalize_done = True
