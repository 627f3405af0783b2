"""Lazy proxies, as ``celery.local``.

A ``Proxy`` stands for what its factory returns at each use (every operation is forwarded
to it); a ``PromiseProxy`` calls its factory once, at first use, and keeps the object.
"""

from __future__ import annotations

import operator
from collections import deque
from importlib import import_module
from typing import Any

from .surface import module_getattr

__all__ = ["PromiseProxy", "Proxy", "maybe_evaluate", "try_import"]


def try_import(module: str, default: Any = None) -> Any:
    """The module ``module``, or ``default`` when it cannot be imported."""
    try:
        return import_module(module)
    except ImportError:
        return default


def _forward(op: Any) -> Any:
    def method(self: Proxy, *args: Any) -> Any:
        return op(self._get_current_object(), *args)

    return method


class Proxy:
    """Forward every use to ``local(*args, **kwargs)``, called again at each use."""

    __slots__ = ("__args", "__dict__", "__kwargs", "__local")

    def __init__(self, local: Any, args: Any = None, kwargs: Any = None, name: str | None = None,
                 __doc__: str | None = None):  # fmt: skip
        object.__setattr__(self, "_Proxy__local", local)
        object.__setattr__(self, "_Proxy__args", args or ())
        object.__setattr__(self, "_Proxy__kwargs", kwargs or {})
        if name is not None:
            object.__setattr__(self, "__custom_name__", name)
        if __doc__ is not None:
            object.__setattr__(self, "__doc__", __doc__)

    def _get_current_object(self) -> Any:
        """The object proxied now."""
        local = object.__getattribute__(self, "_Proxy__local")
        args = object.__getattribute__(self, "_Proxy__args")
        kwargs = object.__getattribute__(self, "_Proxy__kwargs")
        return local(*args, **kwargs)

    @property  # type: ignore[misc]  # a proxy reports its object's class
    def __class__(self) -> type:
        return type(self._get_current_object())

    @property
    def __name__(self) -> str:
        try:
            return object.__getattribute__(self, "__custom_name__")
        except AttributeError:
            return self._get_current_object().__name__

    def __getattr__(self, name: str) -> Any:
        if name == "__members__":
            return dir(self._get_current_object())
        return getattr(self._get_current_object(), name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._get_current_object(), name, value)

    def __delattr__(self, name: str) -> None:
        delattr(self._get_current_object(), name)

    def __dir__(self) -> list[str]:
        try:
            return dir(self._get_current_object())
        except RuntimeError:
            return []

    def __repr__(self) -> str:
        try:
            obj = self._get_current_object()
        except RuntimeError:
            return f"<{type(self).__name__} unbound>"
        return repr(obj)

    def __bool__(self) -> bool:
        try:
            return bool(self._get_current_object())
        except RuntimeError:
            return False

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._get_current_object()(*args, **kwargs)

    def __hash__(self) -> int:
        return hash(self._get_current_object())

    def __enter__(self) -> Any:
        return self._get_current_object().__enter__()

    def __exit__(self, *exc_info: Any) -> Any:
        return self._get_current_object().__exit__(*exc_info)

    def __reduce__(self) -> Any:
        return self._get_current_object().__reduce__()


for _name, _op in {
    "__str__": str, "__len__": len, "__iter__": iter, "__int__": int, "__float__": float,
    "__complex__": complex, "__index__": operator.index, "__neg__": operator.neg,
    "__pos__": operator.pos, "__abs__": abs, "__invert__": operator.invert,
    "__lt__": operator.lt, "__le__": operator.le, "__eq__": operator.eq,
    "__ne__": operator.ne, "__gt__": operator.gt, "__ge__": operator.ge,
    "__getitem__": operator.getitem, "__setitem__": operator.setitem,
    "__delitem__": operator.delitem, "__add__": operator.add, "__sub__": operator.sub,
    "__mul__": operator.mul, "__floordiv__": operator.floordiv, "__mod__": operator.mod,
    "__divmod__": divmod, "__pow__": pow, "__lshift__": operator.lshift,
    "__rshift__": operator.rshift, "__and__": operator.and_, "__xor__": operator.xor,
    "__or__": operator.or_, "__truediv__": operator.truediv,
}.items():  # fmt: skip
    setattr(Proxy, _name, _forward(_op))
Proxy.__contains__ = lambda self, item: item in self._get_current_object()  # type: ignore


class PromiseProxy(Proxy):
    """A ``Proxy`` evaluated once: the first use calls the factory, later uses reuse it.

    ``__then__(fun, *args, **kwargs)`` calls ``fun`` once evaluated (at once if it is).
    """

    __slots__ = ("__weakref__",)

    def _get_current_object(self) -> Any:
        try:
            return object.__getattribute__(self, "__thing")
        except AttributeError:
            return self.__evaluate__()

    def __evaluated__(self) -> bool:
        try:
            object.__getattribute__(self, "__thing")
        except AttributeError:
            return False
        return True

    def __maybe_evaluate__(self) -> Any:
        return self._get_current_object()

    def __then__(self, fun: Any, *args: Any, **kwargs: Any) -> Any:
        if self.__evaluated__():
            return fun(*args, **kwargs)
        pending = self.__dict__.setdefault("__pending__", deque())
        pending.append((fun, args, kwargs))
        return None

    def __evaluate__(self) -> Any:
        thing = Proxy._get_current_object(self)
        object.__setattr__(self, "__thing", thing)
        pending = self.__dict__.pop("__pending__", None)
        while pending:
            fun, args, kwargs = pending.popleft()
            fun(*args, **kwargs)
        return thing


def maybe_evaluate(obj: Any) -> Any:
    """A ``PromiseProxy``'s object (evaluating it); any other object as is."""
    try:
        return obj.__maybe_evaluate__()
    except AttributeError:
        return obj


__getattr__ = module_getattr(__name__)
