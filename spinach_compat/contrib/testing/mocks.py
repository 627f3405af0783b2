"""Mocks for unit tests (``celery.contrib.testing.mocks``).

``ContextMock`` is a ``Mock`` usable in a ``with`` statement. Celery's task message mocks
(``TaskMessage``, ``TaskMessage1``, ``task_message_from_sig``) are refused: they feed
Celery's worker internals (its Request and execution strategies), which the facade does not
have (see ``spinach_compat.surface.REFUSED``).
"""

from __future__ import annotations

from typing import Any
from unittest.mock import Mock


class _ContextMock(Mock):
    """A Mock whose class has ``__enter__`` and ``__exit__`` (``with`` looks them up on
    the class)."""

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        return None


def ContextMock(*args: Any, **kwargs: Any) -> Mock:
    """A Mock for a context manager: entering gives the mock itself, exiting lets an
    exception through; both are mocks a test can assert on."""
    mock = _ContextMock(*args, **kwargs)
    enter, exit_ = _ContextMock(), _ContextMock()
    mock.attach_mock(enter, "__enter__")
    mock.attach_mock(exit_, "__exit__")
    enter.return_value = mock
    exit_.return_value = None  # a true value would swallow the exception
    return mock


from ...surface import module_getattr  # noqa: E402  (Celery names refused: see surface)

__getattr__ = module_getattr(__name__)
