"""Signatures: a task with its arguments and options, to call later; and the canvas.

``group`` sends its members in one native round trip and returns a ``GroupResult``;
``chain`` (or ``a | b``) sends its first task with the next ones as nested ``link``
callbacks; ``chord`` sends its header as a group whose tasks count their completion in the
result backend, the last one sending the body (``spinach_compat.app.chords``).
``xmap``/``xstarmap`` send one ``celery.map``/``celery.starmap`` task calling the task on
each item in turn; ``chunks`` sends a group of ``xstarmap``, one per ``n`` items (the
built-in tasks: ``spinach_compat.app.builtins``).
"""

from __future__ import annotations

import collections
import copy
import itertools
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar, overload

from ._state import get_current_worker_task
from .app import stamps
from .app.call_options import check_options
from .app.publish import batch
from .app.stamps import StampingVisitor as StampingVisitor  # Celery's canvas has it
from .result import allow_join_result
from .surface import module_getattr, refuse_missing

if TYPE_CHECKING:
    from .app.base import Celery

_Sig = TypeVar("_Sig", bound="Signature")

__all__ = [
    "Signature", "chain", "chord", "chunks", "group", "maybe_signature", "signature", "xmap",
    "xstarmap",
]  # fmt: skip


def _option_property(option: str, doc: str) -> property:
    """An attribute reading (and setting) ``option`` of a signature's options."""

    def read(sig: Signature) -> Any:
        return sig["options"].get(option)

    def write(sig: Signature, value: Any) -> None:
        sig["options"][option] = value

    return property(read, write, doc=doc)


class Signature(dict):
    """A task call to make later: ``task``, ``args``, ``kwargs``, ``options``."""

    #: The signature classes by ``subtask_type``: a dict that travelled is made one of them.
    TYPES: dict[str, type[Signature]] = {}

    @classmethod
    def register_type(cls, name: str | None = None) -> Callable[[type], type]:
        """A class decorator: dicts whose ``subtask_type`` is ``name`` (the class's name by
        default) become instances of the class (its ``from_dict``), as in Celery."""

        def register(subclass: type) -> type:
            cls.TYPES[name or subclass.__name__] = subclass
            return subclass

        return register

    @classmethod
    def from_dict(cls, d: dict, app: Celery | None = None) -> Signature:
        """``d`` as a signature of its registered type (a plain ``Signature`` if none)."""
        kind = cls.TYPES.get(d.get("subtask_type") or "")
        if kind is not None and kind is not cls:
            return kind.from_dict(d, app=app)
        return Signature(d, app=app)

    def __init__(
        self, task: Any = None, args: Any = None, kwargs: Any = None, options: Any = None,
        type: Any = None, subtask_type: Any = None, immutable: bool = False,
        app: Celery | None = None, **ex: Any,
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
    def app(self) -> Celery:
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
        """A copy (a plain signature, as Celery's) with partial ``args`` prepended,
        ``kwargs`` and ``options`` merged; its options (links included) are its own."""
        if args or kwargs or options:
            args, kwargs, options = self._merge(args, kwargs, options)
        else:
            args, kwargs, options = self.args, self.kwargs, self.options
        sig = Signature(dict(self), app=self._app)
        sig._type = self._type
        sig.update(args=tuple(args), kwargs=dict(kwargs), options=copy.deepcopy(options))
        return sig

    def __deepcopy__(self, memo: dict) -> dict:
        """As Celery's: a plain dict whose options are copied (the app is not)."""
        clone = dict(self)
        memo[id(self)] = clone
        clone["options"] = copy.deepcopy(self.options, memo)
        return clone

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

    def freeze(self, _id: str | None = None, **_: Any) -> Any:
        """Give this signature its task id now (kept when sent); its ``AsyncResult``."""
        from .result import AsyncResult

        task_id = self["options"].setdefault("task_id", _id or str(uuid.uuid4()))
        return AsyncResult(task_id, app=self.app, task_name=self["task"])

    # -- stamping (see ``spinach_compat.app.stamps``) ----------------------------------

    def stamp(self, visitor: StampingVisitor | None = None, append_stamps: bool = False,
              **headers: Any) -> Any:  # fmt: skip
        """Add stamps (``headers``, and the visitor's ``on_signature``) to this signature's
        options and to its links; ``append_stamps`` gathers a repeated stamp's values in a
        list, else this signature's own value is kept."""
        self.stamp_links(visitor, append_stamps, **headers)
        found = None if visitor is None else visitor.on_signature(self, **headers) or {}
        return self.set(**stamps.headers_of(self, found, append_stamps, True, headers))

    def stamp_links(self, visitor: StampingVisitor | None, append_stamps: bool = False,
                    **headers: Any) -> None:  # fmt: skip
        """Stamp the callbacks (``on_callback``) and errbacks (``on_errback``)."""
        for option, hook in (("link", "on_callback"), ("link_error", "on_errback")):
            given = copy.deepcopy(headers)
            for link in _listed(self.options.get(option)):
                link = maybe_signature(link, app=self._app)
                found = None if visitor is None else getattr(visitor, hook)(link, **given) or {}
                given = stamps.headers_of(self, found, append_stamps, False, given)
                link.stamp(visitor, append_stamps, **given)

    def _fresh(self: _Sig) -> _Sig:
        """A copy whose options, kwargs and link lists can change without touching this one."""
        sig = type(self).__new__(type(self))
        dict.update(sig, self)
        sig.__dict__.update(self.__dict__)
        options = {**self.options}
        for key in ("link", "link_error"):
            if isinstance(options.get(key), list):
                options[key] = list(options[key])
        dict.update(sig, options=options, kwargs={**self.kwargs})
        return sig

    def __invert__(self) -> Any:
        """``~sig``: send it and wait for its value (``apply_async().get()``)."""
        return self.apply_async().get()

    def __or__(self, other: Any) -> Any:
        """``self | other``: a chain (a group then a signature: a chord)."""
        if isinstance(other, Signature):
            return chain(self, other, app=self._app)
        return NotImplemented

    def __repr__(self) -> str:
        return self.reprcall()

    # -- Celery's other accessors (the refused ones: see surface.REFUSED) -----------------

    id = _option_property("task_id", "The task id given (``freeze``, ``task_id=``), or None.")
    parent_id = _option_property("parent_id", "The parent task's id given, or None.")
    root_id = _option_property("root_id", "The root task's id given, or None.")
    subtask_type = property(
        lambda self: self.get("subtask_type"),
        lambda self, value: self.__setitem__("subtask_type", value),
        doc="'group', 'chain', 'chord', or None for a task's signature.",
    )

    partial = clone

    def replace(self, args: Any = None, kwargs: Any = None, options: Any = None) -> Signature:
        """A clone with ``args``, ``kwargs`` or ``options`` replaced (those not None)."""
        sig = self.clone()
        for key, value in (("args", args), ("kwargs", kwargs), ("options", options)):
            if value is not None:
                sig[key] = value
        return sig

    def set_immutable(self, immutable: bool) -> None:
        """Whether the signature ignores the arguments (a parent's result) it is called with."""
        self["immutable"] = immutable

    def reprcall(self, *args: Any, **kwargs: Any) -> str:
        """``task(args, kwargs)`` with these arguments merged in (immutable or not)."""
        args = (*args, *self.args)
        kwargs = {**self.kwargs, **kwargs}
        listed = [*map(repr, args), *(f"{k}={v!r}" for k, v in kwargs.items())]
        return f"{self['task']}({', '.join(listed)})"

    @property
    def AsyncResult(self) -> Any:
        """What makes this task's results: its task's ``AsyncResult``, else the app's."""
        try:
            return self.type.AsyncResult
        except KeyError:  # the task is not registered here
            return self.app.AsyncResult


_EXECUTION_ONLY = ("retries", "replaced_task_nesting", "group_index", "group_id")


def _publishable(options: dict) -> dict:
    """``options`` without the execution-only ones left unset (a group's first member
    keeps its ``group_index`` of 0)."""
    return {k: v for k, v in options.items() if k not in _EXECUTION_ONLY or v is not None}


def signature(varies: Any, *args: Any, **kwargs: Any) -> Signature:
    """A signature of a task (object or name), or a copy of a signature dict."""
    if isinstance(varies, dict) and not args and not kwargs:
        return maybe_signature(varies)
    return Signature(varies, *args, **kwargs)


@overload
def maybe_signature(d: None, app: Celery | None = None, clone: bool = False) -> None: ...
@overload
def maybe_signature(d: dict, app: Celery | None = None, clone: bool = False) -> Signature: ...
def maybe_signature(
    d: dict | None, app: Celery | None = None, clone: bool = False
) -> Signature | None:
    """``d`` as a signature: a plain dict (one that travelled) becomes one of its type."""
    if d is None:
        return None
    sig = d if isinstance(d, Signature) else Signature.from_dict(d, app=app)
    if not clone:
        return sig
    return sig._fresh() if isinstance(sig, _Canvas) else sig.clone()


def _tasks_of(tasks: tuple) -> list[Signature]:
    """``f(a, b)``, ``f([a, b])`` or ``f(generator)``: the signatures."""
    if len(tasks) == 1 and not isinstance(tasks[0], dict):
        tasks = tuple(tasks[0])
    return [maybe_signature(task) for task in tasks]


class _Canvas(Signature):
    """A signature made of signatures (``group``, ``chain``, ``chord``)."""

    def _children(self) -> list[Signature]:
        return []

    @property
    def app(self) -> Celery:
        from ._state import get_current_app

        return self._own_app() or get_current_app()

    def _own_app(self) -> Celery | None:
        """The app given to this canvas, else to one of its signatures."""
        if self._app is not None:
            return self._app
        for child in self._children():
            found = child._own_app() if isinstance(child, _Canvas) else child._app
            if found is not None:
                return found
        return None

    def _options(self, options: dict) -> dict:
        """The canvas's options with the call's, without the canvas's own id."""
        merged = {**self.options, **options}
        return {k: v for k, v in merged.items() if k not in ("task_id", "group_id")}

    def delay(self, *args: Any, **kwargs: Any) -> Any:
        return self.apply_async(args, kwargs)

    def __call__(self, *args: Any, **options: Any) -> Any:
        return self.apply_async(args, **options)

    def clone(self, args: Any = None, kwargs: Any = None, **options: Any) -> Any:
        """A copy of the same kind, its signatures copied too, with ``options`` merged.

        As Celery's, partial ``args`` are kept in the copy's ``args`` and never reach its
        tasks (only a call's arguments do); partial ``kwargs`` are ignored.
        """
        sig = self._fresh()
        dict.__setitem__(sig, "options", copy.deepcopy({**self.options, **options}))
        if args:
            dict.__setitem__(sig, "args", (*args, *self.args))
        return sig

    partial = clone

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._children()!r})"


class group(_Canvas):
    """Signatures sent together (one native round trip); ``apply_async`` gives a
    ``GroupResult`` of the members' results, in order."""

    def __init__(self, *tasks: Any, app: Celery | None = None, **options: Any):
        super().__init__(
            "celery.group", (), {"tasks": _tasks_of(tasks)}, options, subtask_type="group",
            app=app,
        )  # fmt: skip

    @classmethod
    def from_dict(cls, d: dict, app: Celery | None = None) -> group:
        tasks = [maybe_signature(task, app=app) for task in d["kwargs"]["tasks"]]
        return cls(tasks, app=app, **d.get("options") or {})

    tasks = property(lambda self: self["kwargs"]["tasks"])

    def _children(self) -> list[Signature]:
        return self.tasks

    def _fresh(self) -> group:
        sig = super()._fresh()
        sig["kwargs"]["tasks"] = [task._fresh() for task in self.tasks]
        return sig

    def freeze(self, _id: str | None = None, **_: Any) -> Any:
        """Give the group and its members their ids; the ``GroupResult``."""
        from .result import GroupResult

        group_id = self["options"].setdefault("task_id", _id or str(uuid.uuid4()))
        if any(isinstance(task, group) for task in self.tasks):
            self["kwargs"]["tasks"] = _unrolled(self.tasks)
        return GroupResult(group_id, [task.freeze() for task in self.tasks], app=self.app)

    def apply_async(self, args: Any = None, kwargs: Any = None, **options: Any) -> Any:
        """Send every member in one round trip (all or none); a ``GroupResult``."""
        app = self.app
        if app.conf.task_always_eager:
            return self.apply(args, kwargs, **options)
        sig = self._fresh()
        result = sig.freeze(options.get("task_id") or options.get("group_id"))
        add_to_parent = options.pop("add_to_parent", True)
        with batch(app):
            for index, task in enumerate(sig.tasks):
                member = {**sig._options(options), "group_id": result.id, "group_index": index,
                          "add_to_parent": False}  # fmt: skip
                task.apply_async(args, kwargs, **member)
        parent = get_current_worker_task()
        if add_to_parent and parent is not None:  # the group's result, as Celery
            parent.add_trail(result)
        return result

    def stamp(self, visitor: StampingVisitor | None = None, append_stamps: bool = False,
              **headers: Any) -> None:  # fmt: skip
        """Stamp every member (and the group's links) with ``on_group_start``'s stamps too."""
        found = None if visitor is None else visitor.on_group_start(self, **headers) or {}
        headers = stamps.headers_of(self, found, append_stamps, True, headers)
        self.stamp_links(visitor, append_stamps, **headers)
        for task in self.tasks:
            task.stamp(visitor, append_stamps, **headers)
        if visitor is not None:
            visitor.on_group_end(self, **headers)

    def link(self, callback: Any) -> Any:
        """As Celery's: an immutable copy of ``callback`` linked to the first member only
        (it runs once, without the values: a chord is what receives them); the copy."""
        return self.tasks[0].link(maybe_signature(callback).clone().set(immutable=True))

    def link_error(self, errback: Any) -> Any:
        """A copy of ``errback`` linked to each member (any may fail); the copies."""
        errback = maybe_signature(errback)
        return tuple(task.link_error(errback.clone()) for task in self.tasks)

    def skew(self, start: float = 1.0, stop: float | None = None, step: float = 1.0) -> group:
        """Give the members growing countdowns, ``start``, ``start + step``..., as Celery:
        once past ``stop`` (if given, not 0) the last one within it repeats; this group."""
        countdown = float(start)
        for task in self.tasks:
            if not stop or countdown <= stop:
                task.set(countdown=countdown)
                countdown += step
            else:
                task.set(countdown=countdown - step)
        return self

    def apply(self, args: Any = None, kwargs: Any = None, **options: Any) -> Any:
        """Run every member here, in order; a ``GroupResult`` of ``EagerResult``."""
        from .result import GroupResult

        sig = self._fresh()
        tasks = _flattened(sig.tasks)  # as Celery: in order (not as freeze inlines them)
        group_id = sig["options"].setdefault("task_id", options.get("task_id") or str(uuid.uuid4()))
        results = [task.apply(args, kwargs, **sig._options(options)) for task in tasks]
        return GroupResult(group_id, results, app=sig.app)

    def __or__(self, other: Any) -> Any:
        """``group | signature``: a chord; ``group | group`` too (each member of the second
        gets the list of the first's values), as Celery, except an empty second group,
        which leaves this group as is."""
        if isinstance(other, group) and not other.tasks:
            return self
        if isinstance(other, Signature):
            return chord(self, other, app=self._app)
        return NotImplemented


def _unrolled(tasks: list[Signature]) -> list[Signature]:
    """The tasks of a group, those of its groups (nested too) inlined in the order
    Celery's ``group.freeze`` gives them: each inner group's tasks reversed."""
    stack, flat = collections.deque(tasks), []
    while stack:
        task = stack.popleft()
        if isinstance(task, group):
            stack.extendleft(task.tasks)
        else:
            flat.append(task)
    return flat


def _flattened(tasks: list[Signature]) -> list[Signature]:
    """The tasks of a group, those of its groups (nested too) inlined in order."""
    flat: list[Signature] = []
    for task in tasks:
        flat.extend(_flattened(task.tasks) if isinstance(task, group) else [task])
    return flat


class chain(_Canvas):
    """Tasks run one after the other, each result passed to the next (``a | b``).

    ``apply_async`` sends the first task with the next ones as nested ``link`` callbacks
    and returns the last task's ``AsyncResult`` (``.parent`` leads back to the first).
    """

    def __init__(self, *tasks: Any, app: Celery | None = None, **options: Any):
        flat: list[Signature] = []
        for task in _tasks_of(tasks):
            inlined = isinstance(task, chain) and not task.options
            flat.extend(task.tasks if isinstance(task, chain) and inlined else [task])
        super().__init__(
            "celery.chain", (), {"tasks": flat}, options, subtask_type="chain", app=app
        )

    @classmethod
    def from_dict(cls, d: dict, app: Celery | None = None) -> chain:
        tasks = [maybe_signature(task, app=app) for task in d["kwargs"]["tasks"]]
        return cls(tasks, app=app, **d.get("options") or {})

    tasks = property(lambda self: self["kwargs"]["tasks"])

    def _children(self) -> list[Signature]:
        return self.tasks

    def _fresh(self) -> chain:
        sig = super()._fresh()
        sig["kwargs"]["tasks"] = [task._fresh() for task in self.tasks]
        return sig

    def stamp(self, visitor: StampingVisitor | None = None, append_stamps: bool = False,
              **headers: Any) -> None:  # fmt: skip
        """Stamp every task (and the chain's links) with ``on_chain_start``'s stamps too."""
        found = None if visitor is None else visitor.on_chain_start(self, **headers) or {}
        headers = stamps.headers_of(self, found, append_stamps, True, headers)
        self.stamp_links(visitor, **headers)  # as Celery: its links never append stamps
        for task in self.tasks:
            task.stamp(visitor, append_stamps, **headers)
        if visitor is not None:
            visitor.on_chain_end(self, **headers)

    def _steps(self) -> list[Signature]:
        """The tasks to run in turn: a group followed by a task becomes a chord."""
        tasks, steps = list(self.tasks), []
        while tasks:
            task = tasks.pop(0)
            if isinstance(task, group) and tasks:
                task = chord(task, tasks.pop(0), app=self._app)
            steps.append(task)
        return steps

    def freeze(self, _id: str | None = None, **_: Any) -> Any:
        """Give every task its id; the last one's result, ``.parent`` leading back."""
        steps = self._steps()
        previous = None
        for index, step in enumerate(steps):
            result = step.freeze(_id if index == len(steps) - 1 else None)
            if result.parent is None:
                result.parent = previous
            previous = result
        return previous

    def apply_async(self, args: Any = None, kwargs: Any = None, **options: Any) -> Any:
        """Send the first task, linked to the next ones; the last task's result."""
        if self.app.conf.task_always_eager:
            with allow_join_result():  # as Celery: each step may join the one before
                return self.apply(args, kwargs, **options)
        sig = self._fresh()
        options = {**sig.options, **options}
        link_error = options.pop("link_error", None)
        link = options.pop("link", None)
        member_of = options.pop("spinach_chord", None)  # the last task ends the chain
        if not sig.tasks:
            return None
        result = sig.freeze(options.pop("task_id", None))
        steps = sig._steps()
        if member_of is not None:
            steps[-1].set(spinach_chord=member_of, ignore_result=False)
        for step in steps[1:]:  # now, not when the step before sends it from a worker
            _check_sendable(step)
        _link_last(steps[-1], link)
        for step in steps:
            for errback in _listed(link_error):
                step.link_error(errback)
        for step, after in reversed(list(itertools.pairwise(steps))):
            step.link(after)
        steps[0].apply_async(args, kwargs, **_step_options(options))
        return result

    def apply(self, args: Any = None, kwargs: Any = None, **options: Any) -> Any:
        """Run the tasks here in turn; the last one's ``EagerResult`` (a failure raises).

        As Celery: the chain's ``link`` (its own or the call's) is linked to its last task
        only; every other option, ``link_error`` included, goes to every task.
        """
        options = _step_options({**self.options, **options})
        link = options.pop("link", None)
        steps, previous = self._fresh().tasks, None
        for index, step in enumerate(steps):
            if index == len(steps) - 1:
                _link_last(step, link)
            if previous is None:
                result = step.apply(args, kwargs, **options)
            else:
                result = step.apply((previous.get(),), **options)
            result.parent = previous
            previous = result
        return previous


def _link_last(step: Signature, link: Any) -> None:
    """Link a chain's callbacks to its last step: each member of a last group gets them,
    with its value, as Celery's chain passes them in the group's options."""
    for callback in _listed(link):
        if isinstance(step, group):
            step._append_to_option("link", callback)
        else:
            step.link(callback)


def _listed(value: Any) -> list:
    if value is None:
        return []
    return [value] if isinstance(value, dict) else list(value)


def _step_options(options: dict) -> dict:
    return {k: v for k, v in options.items() if k not in ("task_id", "group_id")}


class chord(_Canvas):
    """A header group whose results, once every task ended, go to the body as a list."""

    def __init__(self, header: Any, body: Any = None, app: Celery | None = None, **options: Any):
        header = header if isinstance(header, group) else group(header, app=app)
        body = maybe_signature(body, app=app)
        super().__init__(
            "celery.chord", (), {"header": header, "body": body}, options,
            subtask_type="chord", app=app,
        )  # fmt: skip

    @classmethod
    def from_dict(cls, d: dict, app: Celery | None = None) -> chord:
        kwargs = d["kwargs"]
        header = maybe_signature(kwargs["header"], app=app)
        return cls(header, kwargs.get("body"), app=app, **d.get("options") or {})

    header = property(lambda self: self["kwargs"]["header"])
    body = property(lambda self: self["kwargs"]["body"])
    tasks = header  #: Celery's name of the header (what a stamping visitor reads)

    def link(self, callback: Any) -> Any:
        """Link ``callback`` to the body (a chord's callbacks are its body's); ``callback``."""
        self.body.link(callback)
        return callback

    def link_error(self, errback: Any) -> Any:
        """Link ``errback`` to the body only (Celery's default); ``errback``."""
        self.body.link_error(errback)
        return errback

    def stamp(self, visitor: StampingVisitor | None = None, append_stamps: bool = False,
              **headers: Any) -> None:  # fmt: skip
        """Stamp the header's tasks (``on_chord_header_start``'s stamps too) and, with a
        visitor, the body (``on_chord_body``'s), as Celery's."""
        found = None if visitor is None else visitor.on_chord_header_start(self, **headers) or {}
        headers = stamps.headers_of(self, found, append_stamps, True, headers)
        self.stamp_links(visitor, append_stamps, **headers)
        for task in self.header.tasks:
            task.stamp(visitor, append_stamps, **dict(headers))
        if visitor is None:
            return
        visitor.on_chord_header_end(self, **headers)
        if self.body is not None:
            found = visitor.on_chord_body(self, **headers) or {}
            headers = stamps.headers_of(self, found, append_stamps, True, headers)
            self.body.stamp(visitor, append_stamps, **headers)

    def _children(self) -> list[Signature]:
        return [self.header, *([self.body] if self.body is not None else [])]

    def _fresh(self) -> chord:
        sig = super()._fresh()
        sig["kwargs"]["header"] = self.header._fresh()
        sig["kwargs"]["body"] = self.body._fresh() if self.body is not None else None
        return sig

    def freeze(self, _id: str | None = None, **_: Any) -> Any:
        """Give the header and the body their ids; the body's result (``.parent``: header)."""
        result = self.body.freeze(_id)
        result.parent = self.header.freeze()
        return result

    def __call__(self, body: Any = None, **options: Any) -> Any:
        return self.apply_async((), {"body": body} if body else {}, **options)

    def apply_async(self, args: Any = None, kwargs: Any = None, **options: Any) -> Any:
        """Send the header; its last task to end sends the body. The body's result."""
        kwargs = dict(kwargs or {})
        sig = self._fresh()
        body = kwargs.pop("body", None)
        if body is not None:
            sig["kwargs"]["body"] = maybe_signature(body)._fresh()
        if sig.body is None:
            raise ValueError("a chord needs a body")
        _check_sendable(sig.body)  # now, not when the header's last task sends it
        if sig.app.conf.task_always_eager:
            with allow_join_result():  # as Celery: the body joins the header's results
                return sig.apply(args, kwargs, **options)
        return sig._send(args, kwargs, options)

    def _callbacks_to_body(self, options: dict) -> dict:
        """The chord's options and ``options`` less ``link``/``link_error`` (and the
        membership of an outer chord), given to the body instead (a chord's callbacks are
        its body's, as Celery)."""
        options = {**self.options, **options}
        for key in ("link", "link_error"):
            for callback in _listed(options.pop(key, None)):
                getattr(self.body, key)(callback)
        member_of = options.pop("spinach_chord", None)  # an outer chord's: the body ends it
        if member_of is not None:
            self.body.set(spinach_chord=member_of, ignore_result=False)
        return options

    def _send(self, args: Any, kwargs: dict, options: dict) -> Any:
        from .app import chords, links

        app, body, header = self.app, self.body, self.header
        options = self._callbacks_to_body(options)
        result = self.freeze(options.pop("task_id", None))
        if not header.tasks:
            body.apply_async(([],), **_step_options(options))
            return result
        chords.requires_backend(app)
        chord_id = result.parent.id
        chords.start(app, chord_id, [member.id for member in result.parent.results])
        descriptor = {"id": chord_id, "size": len(header.tasks), "body": links.encode_one(body)}
        member = {**_step_options(options), "spinach_chord": descriptor, "ignore_result": False}
        header.apply_async(args, kwargs, **member)
        return result

    def apply(self, args: Any = None, kwargs: Any = None, **options: Any) -> Any:
        """Run the header here, then the body with its values (a failure raises); the
        chord's ``link``/``link_error`` are the body's."""
        sig = self._fresh()
        options = _step_options(sig._callbacks_to_body(options))
        values = sig.header.apply(args, kwargs, **options).get()
        return sig.body.apply((values,), **options)


def _task_name(task: Any) -> str:
    """The name of a task given as a signature, a dict, a task or a name."""
    if isinstance(task, dict):
        return task["task"]
    return task if isinstance(task, str) else task.name


def _truncated(text: str, size: int = 100) -> str:
    """``text`` cut at a word before ``size`` characters (with ``...``), as Celery's reprs."""
    return text if len(text) <= size else text[:size].rsplit(" ", 1)[0] + "..."


class _basemap(Signature):
    """One built-in task calling ``task`` with each item of ``it``, in turn, in the worker
    that runs it (not a parallel group): its value is the list of the calls' values."""

    _task_name = ""

    def __init__(self, task: Any, it: Any, app: Celery | None = None, **options: Any):
        super().__init__(
            self._task_name, (), {"task": task, "it": list(it)}, options, immutable=True,
            app=app,
        )  # fmt: skip

    def apply_async(self, args: Any = None, kwargs: Any = None, **options: Any) -> Any:
        """Send the built-in task, routed as ``task`` is (Celery's ``route_name``); the
        arguments given are ignored, as Celery does."""
        given = {key: value for key, value in options.items() if value is not None}
        route_name = given.pop("route_name", None) or _task_name(self.kwargs["task"])
        return super().apply_async(route_name=route_name, **given)

    def _repr_of(self, call: str) -> str:
        it = _truncated(repr(self.kwargs["it"]))
        return f"[{_task_name(self.kwargs['task'])}({call}) for x in {it}]"


class xmap(_basemap):
    """``task.map(it)``: ``[task(x) for x in it]`` in one worker."""

    _task_name = "celery.map"

    def __repr__(self) -> str:
        return self._repr_of("x")


class xstarmap(_basemap):
    """``task.starmap(it)``: ``[task(*x) for x in it]`` in one worker."""

    _task_name = "celery.starmap"

    def __repr__(self) -> str:
        return self._repr_of("*x")


class chunks(Signature):
    """``task.chunks(it, n)``: the items of ``it`` in parts of ``n``, each part one
    ``xstarmap`` task; sent as a group of them (``group()``), whose value is the list of
    the parts' lists."""

    def __init__(self, task: Any, it: Any, n: int, app: Celery | None = None, **options: Any):
        super().__init__(
            "celery.chunks", (), {"task": task, "it": list(it), "n": n}, options,
            immutable=True, app=app,
        )  # fmt: skip

    def __call__(self, **options: Any) -> Any:
        return self.apply_async(**options)

    def apply_async(self, args: Any = None, kwargs: Any = None, **options: Any) -> Any:
        """Send ``group()``; its ``GroupResult``."""
        route_name = _task_name(self.kwargs["task"])
        return self.group().apply_async(args, kwargs, route_name=route_name, **options)

    def group(self) -> group:
        """The group of ``xstarmap`` signatures, one per part of ``n`` items."""
        from .utils.functional import chunks as parts

        task, it, n = self.kwargs["task"], self.kwargs["it"], self.kwargs["n"]
        maps = (xstarmap(task, part, app=self._app) for part in parts(iter(it), n))
        return group(maps, app=self._app)

    @classmethod
    def apply_chunks(cls, task: Any, it: Any, n: int, app: Celery | None = None) -> Any:
        """Send ``chunks(task, it, n)`` at once; its ``GroupResult``."""
        return cls(task, it, n, app=app)()


def _check_sendable(sig: Signature) -> None:
    """Raise ``UnsupportedFeature`` now for an option ``sig`` (or a signature inside it)
    holds that sending it would refuse."""
    check_options(stamps.split(_publishable(sig.options))[0])
    for child in sig._children() if isinstance(sig, _Canvas) else ():
        _check_sendable(child)


Signature.TYPES.update(group=group, chain=chain, chord=chord)
subtask = signature
refuse_missing(Signature, "celery.canvas.Signature")  # the rest: see surface.REFUSED
__getattr__ = module_getattr(__name__)
