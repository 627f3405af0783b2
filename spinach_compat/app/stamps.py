"""Stamping, as Celery 5.3+: headers set on the signatures of a canvas (``sig.stamp``, a
``StampingVisitor``) that travel with each task sent and are seen by the worker as
``self.request.stamps`` / ``self.request.stamped_headers``.

A stamped signature holds its stamps among its options, named by its ``stamped_headers``
option (Celery's layout, so ``sig.options[name]`` reads one). Publishing takes them out of
the options into the job's meta (``stamped_headers`` and ``stamps``, as Celery's message
headers). ``revoke_by_stamped_headers`` remembers ``header=value`` pairs in the shared
revoked set (``app.control``): a worker discards a task carrying one when it fetches it.
"""

from __future__ import annotations

import json
from abc import ABCMeta, abstractmethod
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..canvas import Signature, chord, group

#: The prefix of a revoked stamp in the shared revoked set (task ids never start so).
REVOKED_STAMP = "stamp:"


class StampingVisitor(metaclass=ABCMeta):
    """Decides the stamps of each part of a canvas: each ``on_*`` method returns the
    headers to add (``on_signature`` must be defined; the others add none by default)."""

    def on_group_start(self, group: group, **headers: Any) -> dict:
        return {}

    def on_group_end(self, group: group, **headers: Any) -> None:  # noqa: B027 (a hook)
        """Called once the group's members are stamped."""

    def on_chain_start(self, chain: Any, **headers: Any) -> dict:
        return {}

    def on_chain_end(self, chain: Any, **headers: Any) -> None:  # noqa: B027 (a hook)
        """Called once the chain's tasks are stamped."""

    @abstractmethod
    def on_signature(self, sig: Signature, **headers: Any) -> dict:
        """The stamps of a task's signature."""

    def on_chord_header_start(self, sig: chord, **header: Any) -> dict:
        """By default, what ``on_group_start`` gives for the header."""
        return self.on_group_start(sig.tasks, **header)

    def on_chord_header_end(self, sig: chord, **header: Any) -> None:
        self.on_group_end(sig.tasks, **header)

    def on_chord_body(self, sig: chord, **header: Any) -> dict:
        return {}

    def on_callback(self, callback: Signature, **header: Any) -> dict:
        return {}

    def on_errback(self, errback: Signature, **header: Any) -> dict:
        return {}


def merge(into: dict, other: dict | None, aggregate: bool) -> None:
    """Merge ``other`` into ``into`` (Celery's rule): nested dicts are merged; for a key in
    both, two lists are joined, and with ``aggregate`` the values are gathered in a list
    (``into``'s first); without it ``into``'s value is kept."""
    for key, theirs in (other or {}).items():
        if key not in into:
            into[key] = theirs
            continue
        mine = into[key]
        if isinstance(mine, dict):
            merge(mine, theirs, aggregate)
            continue
        if aggregate and isinstance(mine, (int, float, str)):
            mine = [mine]
        if isinstance(mine, list) and isinstance(theirs, list):
            into[key] = [*mine, *theirs]
        elif aggregate:
            into[key] = [*(mine if mine is not None else ()), theirs]


def headers_of(
    sig: Signature, visitor_headers: dict | None, append: bool, own: bool, headers: dict
) -> dict:
    """The stamps for ``sig``: ``headers``, with the visitor's merged in, and (``own``)
    those ``sig`` holds already; ``stamped_headers`` names them all."""
    headers = dict(headers)
    headers.setdefault("stamped_headers", list(headers))
    if visitor_headers is not None:
        visitor_headers = dict(visitor_headers)
        visitor_headers.setdefault("stamped_headers", list(visitor_headers))
        merge(headers, visitor_headers, append)
        headers["stamped_headers"] = _unique(headers["stamped_headers"])
    if own:
        names = _unique([*headers["stamped_headers"], *sig.options.get("stamped_headers", [])])
        headers["stamped_headers"] = names
        merge(headers, {k: v for k, v in sig.options.items() if k in names}, append)
        headers["stamped_headers"] = _unique(headers["stamped_headers"])
    return headers


def _unique(names: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(names))


def split(options: dict) -> tuple[dict, list[str] | None, dict | None]:
    """A call's options without its stamps; the stamped header names and the stamps."""
    names = options.get("stamped_headers")
    if not names:
        return options, None, None
    names = [names] if isinstance(names, str) else list(names)
    rest = {k: v for k, v in options.items() if k not in names and k != "stamped_headers"}
    return rest, names, {name: options.get(name) for name in names}


def revoked_keys(headers: dict) -> list[str]:
    """The shared revoked set's entries for ``{header: value or values}``."""
    keys = []
    for header, values in headers.items():
        for value in values if isinstance(values, (list, tuple, set)) else [values]:
            keys.append(f"{REVOKED_STAMP}{header}={json.dumps(value, sort_keys=True)}")
    return keys


def carried_keys(stamps: dict | None) -> list[str]:
    """The revoked-set entries a task's ``stamps`` would match (a list value: each item)."""
    return revoked_keys(stamps or {})
