"""Signatures: a task with its arguments and options, to call later.

``chain``, ``group``, ``chord`` and ``|`` are not supported yet: they raise
``UnsupportedFeature`` (see ``migration_guide/``).
"""

from __future__ import annotations

import copy
from typing import Any

from .exceptions import UnsupportedFeature

__all__ = ["Signature", "chain", "chord", "group", "maybe_signature", "signature"]


class Signature(dict):
    """A task call to make later: ``task``, ``args``, ``kwargs``, ``options``."""

    def __init__(
        self, task: Any = None, args: Any = None, kwargs: Any = None, options: Any = None,
        type: Any = None, subtask_type: Any = None, immutable: bool = False,
        app: Any = None, **ex: Any,
    ):  # fmt: skip
        self._app = app
        self._type = type
        if isinstance(task, dict):
            super().__init__(task)
            return
        name = task if isinstance(task, str) else task.name
        self._type = type or (None if isinstance(task, str) else task)
        super().__init__(
            task=name, args=tuple(args or ()), kwargs=dict(kwargs or {}),
            options={**(options or {}), **ex}, subtask_type=subtask_type,
            immutable=immutable,
        )  # fmt: skip

    task = property(lambda self: self["task"])
    name = task
    args = property(lambda self: self["args"])
    kwargs = property(lambda self: self["kwargs"])
    options = property(lambda self: self["options"])
    immutable = property(lambda self: self["immutable"])

    @property
    def app(self) -> Any:
        from ._state import get_current_app

        return self._app or get_current_app()

    @property
    def type(self) -> Any:
        return self._type or self.app.tasks[self["task"]]

    def _merge(self, args: Any, kwargs: Any, options: Any) -> tuple[tuple, dict, dict]:
        options = {**self.options, **(options or {})}
        if self.immutable:
            return self.args, dict(self.kwargs), options
        return (*(args or ()), *self.args), {**self.kwargs, **(kwargs or {})}, options

    def apply_async(self, args: Any = None, kwargs: Any = None, **options: Any) -> Any:
        """Send the task with the signature's arguments (partial ones prepended)."""
        args, kwargs, options = self._merge(args, kwargs, options)
        options = {k: v for k, v in options.items() if k not in ("countdown", "eta")} | {
            k: v for k, v in options.items() if k in ("countdown", "eta") and v is not None
        }
        if self._type is not None or self["task"] in self.app.tasks:
            return self.type.apply_async(args, kwargs, **_publishable(options))
        return self.app.send_task(self["task"], args, kwargs, **_publishable(options))

    def delay(self, *args: Any, **kwargs: Any) -> Any:
        return self.apply_async(args, kwargs)

    def apply(self, args: Any = None, kwargs: Any = None, **options: Any) -> Any:
        """Run the task eagerly with the signature's arguments."""
        args, kwargs, options = self._merge(args, kwargs, options)
        return self.type.apply(args, kwargs, **options)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        args, kwargs, _ = self._merge(args, kwargs, None)
        return self.type(*args, **kwargs)

    def clone(self, args: Any = None, kwargs: Any = None, **options: Any) -> Signature:
        args, kwargs, options = self._merge(args, kwargs, options)
        sig = Signature(copy.deepcopy(dict(self)), app=self._app)
        sig._type = self._type
        sig.update(args=args, kwargs=kwargs, options=options)
        return sig

    def set(self, immutable: bool | None = None, **options: Any) -> Signature:
        if immutable is not None:
            self["immutable"] = immutable
        self["options"].update(options)
        return self

    def link(self, callback: Any) -> Any:
        """Apply ``callback`` with this task's result after it succeeds; ``callback``."""
        return self._append_to_option("link", callback)

    def link_error(self, errback: Any) -> Any:
        """Call or send ``errback`` after this task fails (see ``app.links``); ``errback``."""
        return self._append_to_option("link_error", errback)

    def on_error(self, errback: Any) -> Signature:
        """``link_error(errback)``; this signature."""
        self.link_error(errback)
        return self

    def _append_to_option(self, key: str, value: Any) -> Any:
        items = self["options"].setdefault(key, [])
        if not isinstance(items, list):
            items = self["options"][key] = [items]
        if value not in items:
            items.append(value)
        return value

    def __or__(self, other: Any) -> Any:
        raise UnsupportedFeature("chaining signatures with | is not supported yet")

    def __repr__(self) -> str:
        args = ", ".join([*map(repr, self.args), *(f"{k}={v!r}" for k, v in self.kwargs.items())])
        return f"{self['task']}({args})"


_EXECUTION_ONLY = ("retries", "replaced_task_nesting", "group_index", "group_id")


def _publishable(options: dict) -> dict:
    return {k: v for k, v in options.items() if k not in _EXECUTION_ONLY or v}


def signature(varies: Any, *args: Any, **kwargs: Any) -> Signature:
    """A signature of a task (object or name), or a copy of a signature dict."""
    if isinstance(varies, dict) and not args and not kwargs:
        return varies if isinstance(varies, Signature) else Signature(varies)
    return Signature(varies, *args, **kwargs)


def maybe_signature(d: Any, app: Any = None, clone: bool = False) -> Signature | None:
    if d is None:
        return None
    sig = d if isinstance(d, Signature) else Signature(d, app=app)
    return sig.clone() if clone else sig


def _unsupported(name: str) -> Any:
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise UnsupportedFeature(
            f"canvas primitive {name} is not supported by spinach_compat yet (see migration_guide/)"
        )

    refuse.__name__ = name
    return refuse


chain = _unsupported("chain")
group = _unsupported("group")
chord = _unsupported("chord")
chunks = _unsupported("chunks")
xmap = _unsupported("xmap")
xstarmap = _unsupported("xstarmap")
subtask = signature
