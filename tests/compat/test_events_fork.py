"""The events' module-level lock is free in a forked child (see ``tests/test_forks.py``)."""

from __future__ import annotations

import os

import pytest

from spinach_compat.events import sent
from tests.test_forks import child_can_take, held

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")


def test_the_task_sent_dispatchers_lock_is_free_in_a_forked_child() -> None:
    """A ``delay()`` of another thread held the lock at the fork: the child's is free."""
    with held(lambda: sent._lock):
        assert child_can_take(lambda: sent._lock)
