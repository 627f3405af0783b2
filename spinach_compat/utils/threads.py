"""Thread helpers, as ``celery.utils.threads``: a per-thread stack, the thread id."""

from __future__ import annotations

import os
import socket
import sys
import threading
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Generic, TypeVar

from ..local import Proxy
from ..surface import module_getattr

__all__ = ["LocalStack", "bgThread", "default_socket_timeout", "get_ident"]

T = TypeVar("T")
get_ident = threading.get_ident


@contextmanager
def default_socket_timeout(timeout: float | None) -> Iterator[None]:
    """Set ``socket``'s default timeout for the block, then restore it."""
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(timeout)
    try:
        yield
    finally:
        socket.setdefaulttimeout(previous)


class bgThread(threading.Thread):
    """A daemon thread calling ``body()`` in a loop until ``stop()``, as Celery's.

    If ``body`` raises, ``on_crash`` reports it and the whole process exits with status 1
    at once (``os._exit``), as in Celery: a dead service thread must not go unnoticed.
    """

    def __init__(self, name: str | None = None, **kwargs: Any):
        super().__init__(daemon=True, name=name or type(self).__name__)
        self._is_shutdown = threading.Event()
        self._is_stopped = threading.Event()

    def body(self) -> None:
        raise NotImplementedError()

    def on_crash(self, msg: str, *fmt: Any, **kwargs: Any) -> None:
        print(msg.format(*fmt), file=sys.stderr)
        traceback.print_exc(None, sys.stderr)

    def run(self) -> None:
        try:
            while not self._is_shutdown.is_set():
                try:
                    self.body()
                except Exception as exc:
                    try:
                        self.on_crash("{0!r} crashed: {1!r}", self.name, exc)
                        self._is_stopped.set()
                    finally:
                        sys.stderr.flush()
                        os._exit(1)
        finally:
            self._is_stopped.set()

    def stop(self) -> None:
        """Ask the loop to end after the current ``body()``, and wait for it."""
        self._is_shutdown.set()
        self._is_stopped.wait()
        if self.is_alive():
            self.join()


class LocalStack(Generic[T]):
    """A stack per thread: ``push``, ``pop``, ``top`` (None when empty), ``len()``.

    Calling it returns a ``Proxy`` of the top item (``RuntimeError`` when the stack is
    empty), as Celery's.
    """

    def __init__(self) -> None:
        self._local = threading.local()

    def push(self, obj: T) -> list[T]:
        """Push ``obj``; the stack."""
        stack = self._local.__dict__.setdefault("stack", [])
        stack.append(obj)
        return stack

    def pop(self) -> T | None:
        """Remove and return the top item; None when the stack is empty."""
        stack = getattr(self._local, "stack", None)
        if not stack:
            return None
        return stack.pop()

    @property
    def stack(self) -> list[T]:
        """This thread's items, bottom first."""
        return getattr(self._local, "stack", [])

    @property
    def top(self) -> T | None:
        """The top item, None when the stack is empty."""
        stack = getattr(self._local, "stack", None)
        return stack[-1] if stack else None

    def __len__(self) -> int:
        return len(self.stack)

    def __call__(self) -> Any:
        def lookup() -> T:
            top = self.top
            if top is None:
                raise RuntimeError("object unbound")
            return top

        return Proxy(lookup)


__getattr__ = module_getattr(__name__)
