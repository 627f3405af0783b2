"""Functional helpers, as ``celery.utils.functional``.

``LRUCache``, ``dictfilter``, ``is_list``, ``lazy``, ``maybe_evaluate``, ``maybe_list`` and
``memoize`` are kombu's, as in Celery (which takes them from kombu too).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from itertools import islice
from typing import Any

from kombu.utils.functional import (
    LRUCache,
    dictfilter,
    is_list,
    lazy,
    maybe_evaluate,
    maybe_list,
    memoize,
)

from ..surface import module_getattr

__all__ = [
    "LRUCache",
    "chunks",
    "dictfilter",
    "first",
    "firstmethod",
    "fun_accepts_kwargs",
    "is_list",
    "lazy",
    "mattrgetter",
    "maybe",
    "maybe_evaluate",
    "maybe_list",
    "memoize",
    "mlazy",
    "noop",
    "padlist",
    "uniq",
]


class mlazy(lazy):
    """A ``lazy`` evaluated once: later calls return the first value."""

    #: True once evaluated.
    evaluated = False
    _value = None

    def evaluate(self) -> Any:
        if not self.evaluated:
            self._value = super().evaluate()
            self.evaluated = True
        return self._value


def noop(*args: Any, **kwargs: Any) -> None:
    """Take any arguments and do nothing."""


def first(predicate: Callable[[Any], Any] | None, it: Iterable) -> Any:
    """The first item of ``it`` ``predicate`` accepts (not None, without a predicate)."""
    for value in it:
        if predicate(value) if predicate is not None else value is not None:
            return value
    return None


def firstmethod(method: str, on_call: Callable | None = None) -> Callable[..., Any]:
    """A function calling ``method`` on each object of a list until one returns non-None."""

    def matcher(it: Iterable, *args: Any, **kwargs: Any) -> Any:
        for obj in it:
            try:
                meth = getattr(maybe_evaluate(obj), method)
            except AttributeError:
                continue
            reply = on_call(meth, *args, **kwargs) if on_call else meth(*args, **kwargs)
            if reply is not None:
                return reply
        return None

    return matcher


def chunks(it: Iterator, n: int) -> Iterator[list]:
    """Lists of ``n`` items of the iterator ``it`` (the last one shorter).

    As in Celery, ``it`` must be an iterator: a list gives repeated items.
    """
    for item in it:
        yield [item, *islice(it, n - 1)]


def padlist(container: Iterable, size: int, default: Any = None) -> list:
    """The first ``size`` items of ``container``, padded with ``default``."""
    items = list(container)
    return items[:size] + [default] * (size - len(items))


def mattrgetter(*attrs: str) -> Callable[[Any], dict[str, Any]]:
    """A function returning ``{attr: value}`` of an object (None for a missing attribute)."""
    return lambda obj: {attr: getattr(obj, attr, None) for attr in attrs}


def uniq(it: Iterable) -> Iterator:
    """The items of ``it`` without repeats, in order."""
    seen: set = set()
    for obj in it:
        if obj not in seen:
            seen.add(obj)
            yield obj


def maybe(typ: Callable[[Any], Any], val: Any) -> Any:
    """``typ(val)``, or None when ``val`` is None."""
    return typ(val) if val is not None else val


def fun_accepts_kwargs(fun: Callable) -> bool:
    """Whether ``fun`` takes ``**kwargs``."""
    import inspect

    code = getattr(fun, "__code__", None)
    if code is not None:
        return bool(code.co_flags & inspect.CO_VARKEYWORDS)
    parameters = inspect.signature(fun).parameters.values()
    return any(p.kind is p.VAR_KEYWORD for p in parameters)


__getattr__ = module_getattr(__name__)
