"""``saferepr``: a repr cut to a length and a nesting depth, as ``celery.utils.saferepr``
makes it. Celery's producers send it as the default ``argsrepr``/``kwargsrepr`` headers
(1,024 characters, ``task_repr_maxlevels`` levels), which its workers, events and Flower
show; the facade makes the same text for the messages it sends to Celery workers.

The text differs from ``repr`` as Celery's does: strings are always in single quotes with
only ``'`` escaped, bytes are shown decoded (or in hex), numbers with ``str``, subclasses of
tuple, list and dict as the base type, containers below ``maxlevels`` as ``[...]``. Past
``maxlen`` characters, a string or a scalar's text is cut (at a space when it has one, with
``...``), then ``, ...`` ends the text and the open containers are closed.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from numbers import Number
from typing import Any, NamedTuple

__all__ = ["ARGS_REPR_MAXSIZE", "REPR_MAXLEVELS", "args_reprs", "saferepr"]

#: Characters of the default argsrepr/kwargsrepr headers (Celery's ``argsrepr_maxsize``):
#: longer shows more of the arguments, at the cost of bigger messages and events.
ARGS_REPR_MAXSIZE = 1024
#: Nesting levels shown (Celery's ``task_repr_maxlevels`` default): deeper shows more.
REPR_MAXLEVELS = 3


class _Open(NamedTuple):
    text: str
    close: str


class _Close(NamedTuple):
    text: str


class _Key(NamedTuple):
    value: Any


class _Quoted(NamedTuple):
    value: str | bytes


class _Whole(NamedTuple):
    """Text never cut: separators, and a container below the depth shown."""

    text: str


_Token = _Open | _Close | _Key | _Quoted | _Whole | str
_ITEMS, _KEY_VALUE = _Whole(", "), _Whole(": ")
#: The text of None and of empty containers, the commonest values (every job's result and
#: arguments when a task takes and returns none): written without the tokenizer.
_EMPTY_TEXT: dict[type, str] = {type(None): "None", tuple: "()", list: "[]", dict: "{}"}


def saferepr(o: Any, maxlen: int | None = None, maxlevels: int = 3, seen: Any = None) -> str:
    """The text of ``o``, at most about ``maxlen`` characters (None: all), containers
    nested deeper than ``maxlevels`` (0: any depth) shown as ``[...]``. ``seen`` is
    accepted for Celery's signature and unused."""
    if o is None or (type(o) in _EMPTY_TEXT and not o):  # a no-op job's result, no arguments
        text = _EMPTY_TEXT[type(o)]
        if maxlen is None or len(text) < maxlen:  # as Celery: "None..." at maxlen 4
            return text
    return "".join(_cut(_tokens(o, 0, maxlevels, set()), maxlen, maxlevels))


def args_reprs(args: Any, kwargs: Any) -> tuple[str, str]:
    """The ``argsrepr`` and ``kwargsrepr`` Celery's producers send by default."""
    return (
        saferepr(args, ARGS_REPR_MAXSIZE, REPR_MAXLEVELS),
        saferepr(kwargs, ARGS_REPR_MAXSIZE, REPR_MAXLEVELS),
    )


def _cut(tokens: Iterator[_Token], room: int | None, maxlevels: int) -> Iterator[str]:
    """The texts of ``tokens`` until ``room`` runs out, then ``, ...`` and the closes of
    the containers still open (a close right at the limit is kept)."""
    closes: list[str] = []
    for token in tokens:
        if room is not None and room <= 0:
            if isinstance(token, _Close):
                closes.pop()
                yield token.text
                continue
            yield ", ..."
            yield from reversed(closes)
            return
        if isinstance(token, _Open):
            closes.append(token.close)
        elif isinstance(token, _Close):
            closes.pop()
        text = _text(token, room, maxlevels)
        yield text
        if room is not None:
            room -= len(text)


def _text(token: _Token, room: int | None, maxlevels: int) -> str:
    """One token's text, a string or scalar cut to ``room``."""
    if isinstance(token, _Open | _Close | _Whole):
        return token.text
    if isinstance(token, _Key):
        return saferepr(token.value, room, maxlevels)
    if isinstance(token, _Quoted):
        return _quoted(token.value, room)
    return _shorten(token, room)


def _shorten(text: str, room: int | None) -> str:
    """``text`` when shorter than ``room``, else its first ``room`` characters up to their
    last space, then ``...``."""
    if not room or len(text) < room:
        return text
    head = text[:room]
    return head[: head.rfind(" ")] + "..." if " " in head else head + "..."


def _quoted(value: str | bytes, room: int | None) -> str:
    if isinstance(value, str):
        return "'" + _shorten(value, room).replace("'", "\\'") + "'"
    cut = bool(room) and len(value) > (room or 0)
    shown = value[:room] if cut else value
    try:
        text = shown.decode("utf-8")
    except UnicodeDecodeError:
        text = shown.hex()
    return f"b'{text}{'...' if cut else ''}'"


def _tokens(o: Any, level: int, maxlevels: int, path: set[int]) -> Iterator[_Token]:
    """The tokens of ``o`` at depth ``level``; ``path``: ids of the containers around it."""
    if isinstance(o, Decimal):
        yield _safe(o)
    elif isinstance(o, Number):
        yield str(o)
    elif isinstance(o, str | bytes):
        yield _Quoted(o)
    elif isinstance(o, frozenset | set) and not o:
        yield f"{type(o).__name__}()"
    elif (shape := _shape(o)) is None:
        yield _safe(o)
    elif maxlevels and level >= maxlevels:
        yield _Whole(f"{shape[0]}...{shape[1]}")
    elif id(o) in path:
        yield f"<Recursion on {type(o).__name__} with id={id(o)}>"
    else:
        path.add(id(o))
        yield _Open(*shape)
        yield from _members(o, level + 1, maxlevels, path)
        path.discard(id(o))
        yield _Close(shape[1])


def _members(o: Any, level: int, maxlevels: int, path: set[int]) -> Iterator[_Token]:
    """The tokens of a container's members, with their separators."""
    for index, member in enumerate(o.items() if isinstance(o, dict) else o):
        if index:
            yield _ITEMS
        if isinstance(o, dict):
            yield _Key(member[0])
            yield _KEY_VALUE
            member = member[1]
        yield from _tokens(member, level, maxlevels, path)


def _shape(o: Any) -> tuple[str, str] | None:
    """The opening and closing text of a container shown member by member, else None."""
    if isinstance(o, frozenset | set):
        name = type(o).__name__
        return ("{", "}") if type(o) is set else (f"{name}({{", "})")
    if isinstance(o, tuple):
        return ("(", ",)") if len(o) == 1 else ("(", ")")
    if isinstance(o, dict):
        return ("{", "}")
    if isinstance(o, list):
        return ("[", "]")
    return None


def _safe(o: Any) -> str:
    """``repr(o)``, or a placeholder naming its type and the error when it raises."""
    try:
        return repr(o)
    except Exception as exc:
        return f"<Unrepresentable {type(o)!r}{id(o):#x}: {exc!r}>"
