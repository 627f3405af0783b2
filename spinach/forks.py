"""Objects that must start afresh in a forked child (connections, id series, locks).

``os.register_at_fork`` keeps every hook for the life of the process, so each object
registering its own would pile hooks up; objects register here instead, weakly, and one
hook resets those still alive. Modules register a function (``at_fork_in_child``) for
their own state, such as a module-level lock: a thread of the parent may hold it at the
fork, and that thread does not exist in the child, so the copy would never be released.
Objects that tell others of the fork (the facade's ``on_after_fork`` signal) register with
``notify_after_fork``: they run once every reset did, so their receivers find fresh locks.
"""

from __future__ import annotations

import os
import weakref
from collections.abc import Callable
from typing import Protocol


class ResetAfterFork(Protocol):
    def _after_fork(self) -> None:
        """Drop what belongs to the parent process; called in the child only."""


class NotifyAfterFork(Protocol):
    def _notify_after_fork(self) -> None:
        """Tell others of the fork; called in the child only, after every reset."""


_registered: weakref.WeakValueDictionary[int, ResetAfterFork] = weakref.WeakValueDictionary()
_notified: weakref.WeakValueDictionary[int, NotifyAfterFork] = weakref.WeakValueDictionary()
_functions: list[Callable[[], None]] = []


def reset_after_fork(obj: ResetAfterFork) -> None:
    """Call ``obj._after_fork()`` in every forked child, for as long as ``obj`` lives."""
    _registered[id(obj)] = obj


def at_fork_in_child(function: Callable[[], None]) -> Callable[[], None]:
    """Call ``function()`` in every forked child (a module's reset); usable as a decorator."""
    _functions.append(function)
    return function


def notify_after_fork(obj: NotifyAfterFork) -> None:
    """Call ``obj._notify_after_fork()`` in every forked child once every reset ran, for as
    long as ``obj`` lives."""
    _notified[id(obj)] = obj


def _reset_all() -> None:
    for function in list(_functions):
        function()
    for obj in list(_registered.values()):
        obj._after_fork()
    for notifier in list(_notified.values()):
        notifier._notify_after_fork()


os.register_at_fork(after_in_child=_reset_all)
