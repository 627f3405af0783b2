"""Objects that must start afresh in a forked child (connections, id series).

``os.register_at_fork`` keeps every hook for the life of the process, so each object
registering its own would pile hooks up; objects register here instead, weakly, and one
hook resets those still alive.
"""

from __future__ import annotations

import os
import weakref
from typing import Protocol


class ResetAfterFork(Protocol):
    def _after_fork(self) -> None:
        """Drop what belongs to the parent process; called in the child only."""


_registered: weakref.WeakValueDictionary[int, ResetAfterFork] = weakref.WeakValueDictionary()


def reset_after_fork(obj: ResetAfterFork) -> None:
    """Call ``obj._after_fork()`` in every forked child, for as long as ``obj`` lives."""
    _registered[id(obj)] = obj


def _reset_all() -> None:
    for obj in list(_registered.values()):
        obj._after_fork()


os.register_at_fork(after_in_child=_reset_all)
