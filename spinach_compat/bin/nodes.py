"""The nodes of ``spinach-compat multi``: Celery's node naming and per-node options.

``multi start w1 w2 -A proj -c 2`` names nodes ``w1@<host>`` and ``w2@<host>``; ``multi
start 3`` names ``celery1@<host>`` .. ``celery3@<host>`` (``--range-prefix`` changes
``celery``); ``--hostname``/``-n`` replaces the host, ``--prefix`` and ``--suffix`` wrap
the names; ``foo@%h`` is a full node name. An option applies to every node, or, given as
``-c:1 10``, ``-c:1-3 10`` (count form only), ``-c:1,2 10`` or ``-c:w1 10``, to those nodes;
``--append=WORDS`` adds words at the end of each worker's command line (``--cmd`` is
refused: the nodes are ``spinach-compat`` workers).
As in Celery, a short option takes the next word as its value (unless it starts with
``-``) and a long one only with ``=`` (``--pidfile=/run/%n.pid``); words after ``--`` go to
every worker as they are.

Each node's worker gets ``-n <node name>``, ``--pidfile`` (default
``/var/run/celery/%n.pid``) and ``--logfile`` (default ``/var/log/celery/%n%I.log``), with
Celery's abbreviations expanded: ``%n`` the short name (``w1``), ``%h`` the node name
(``w1@host``), ``%d`` the host, ``%i`` the process index (``0``: the worker's main process)
and ``%I`` its ``-<index>`` form (empty for the main process), ``%%`` a ``%``.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field

#: The global options placed before the sub-command, as Celery's multi places them.
GLOBAL_OPTIONS = frozenset({"-A", "--app", "-b", "--broker", "--result-backend", "--workdir",
                            "-q", "--quiet"})  # fmt: skip

#: Celery's default pidfile and logfile of a node.
DEFAULT_PIDFILE = "/var/run/celery/%n.pid"
DEFAULT_LOGFILE = "/var/log/celery/%n%I.log"

_ABBREVIATION = re.compile(r"%([%\w])")


class NodeError(ValueError):
    """A bad node name, namespace or abbreviation (a usage error of ``multi``)."""


@dataclass
class ParsedArgs:
    """``multi``'s words: node names, options (``{'-c': '2'}``), per-namespace options."""

    names: list[str] = field(default_factory=list)
    options: dict[str, str | None] = field(default_factory=dict)
    namespaces: dict[str, dict[str, str | None]] = field(default_factory=dict)
    passthrough: list[str] = field(default_factory=list)
    signals: list[str] = field(default_factory=list)  # -TERM, -9: for stop, kill, restart


def parse_words(words: list[str]) -> ParsedArgs:
    """Split ``words`` into names, options and namespaced options, as Celery's multi."""
    parsed, position = ParsedArgs(), 0
    words = [word for word in words if word]
    while position < len(words):
        word = words[position]
        if word == "--":
            parsed.passthrough = words[position + 1 :]
            break
        if word.startswith("--"):
            name, _, value = word[2:].partition("=")
            _add_option(parsed, "--", name, value if "=" in word else None)
        elif word.startswith("-") and len(word) > 1:
            value = None
            if position + 1 < len(words) and not words[position + 1].startswith("-"):
                position += 1
                value = words[position]
            _add_option(parsed, "-", word[1:], value)
        else:
            parsed.names.append(word)
        position += 1
    return parsed


def _add_option(parsed: ParsedArgs, dashes: str, name: str, value: str | None) -> None:
    if dashes == "-" and value is None and signal_number(name) is not None:
        parsed.signals.append(name)  # -9, -KILL: a signal, not a worker option
        return
    name, _, namespace = name.partition(":")
    target = parsed.namespaces.setdefault(namespace, {}) if namespace else parsed.options
    target[dashes + name] = value


def signal_number(text: str) -> int | None:
    """The signal ``text`` names (``9``, ``KILL``, ``SIGKILL``), else None."""
    if text.isdigit():
        return int(text)
    name = text.upper() if text.upper().startswith("SIG") else f"SIG{text.upper()}"
    if not text.isupper() or name not in signal.Signals.__members__:
        return None
    return int(signal.Signals[name])


@dataclass
class Node:
    """One worker of ``multi``: its node name and its command line."""

    name: str  # w1@host
    options: dict[str, str | None]
    passthrough: list[str] = field(default_factory=list)

    @property
    def shortname(self) -> str:
        return self.name.partition("@")[0]

    def expand(self, text: str, final: bool = True) -> str:
        """``text`` with ``%n``, ``%h``, ``%d``, ``%N``, ``%p``, ``%%`` expanded, and ``%i``,
        ``%I`` as the worker's main process (``final``) or left for it (as ``expand``)."""
        host = self.name.partition("@")[2]
        keys = {"n": self.shortname, "N": self.shortname, "h": self.name, "p": self.name,
                "d": host, "i": "0" if final else "%i", "I": "" if final else "%I",
                "%": "%"}  # fmt: skip
        return _format(text, keys)

    @property
    def pidfile(self) -> str:
        return os.path.expanduser(self.expand(_option(self.options, "--pidfile", "-p") or ""))

    @property
    def logfile(self) -> str:
        return os.path.expanduser(self.expand(_option(self.options, "--logfile", "-f") or ""))

    @property
    def executable(self) -> str:
        return self.options.get("--executable") or sys.executable

    def argv(self) -> list[str]:
        """The worker's command line, without the executable."""
        before: list[str] = []
        after = ["-n", self.name, f"--pidfile={self.pidfile}", f"--logfile={self.logfile}"]
        for option, value in self.options.items():
            if option in ("-n", "--pidfile", "-p", "--logfile", "-f", "--executable"):
                continue
            words = _format_option(option, None if value is None else self.expand(value))
            (before if option in GLOBAL_OPTIONS else after).extend(words)
        return ["-m", "spinach_compat", *before, "worker", *after, *self.passthrough]


def _option(options: dict[str, str | None], *names: str) -> str | None:
    return next((options[name] for name in names if options.get(name)), None)


def _format_option(option: str, value: str | None) -> list[str]:
    if value is None:
        return [option]
    return [f"{option}={value}"] if option.startswith("--") else [option, value]


def _format(text: str, keys: dict[str, str]) -> str:
    def resolve(match: re.Match[str]) -> str:
        key = match.group(1)
        if key not in keys:
            raise NodeError(f"unknown format %{key} in {text!r}")
        return keys[key]

    return _ABBREVIATION.sub(resolve, text)


def build_nodes(parsed: ParsedArgs) -> list[Node]:
    """The nodes of ``parsed``, named and optioned as Celery's multi."""
    options = dict(parsed.options)
    host = options.pop("--hostname", None) or options.pop("-n", None) or socket.gethostname()
    prefix = options.pop("--prefix", None) or ""
    suffix = options.pop("--suffix", None) or host
    suffix = "" if suffix in ('""', "''") else suffix
    range_prefix = options.pop("--range-prefix", None) or "celery"
    if "--cmd" in options:
        raise NodeError("multi --cmd is not supported: the nodes run spinach-compat workers")
    append = (options.pop("--append", None) or "").split()
    names, counted = parsed.names, False
    if len(names) == 1 and names[0].isdigit():
        names, prefix, counted = [str(n) for n in range(1, int(names[0]) + 1)], range_prefix, True
    namespaces = _namespaces_by_name(parsed.namespaces, names, counted)
    nodes = []
    for name in names:
        nodename, shortname = _nodename(name, prefix, suffix)
        own = namespaces.get(nodename, namespaces.get(shortname if "@" in name else name, {}))
        merged = {**options, **own}
        merged.setdefault("--pidfile", merged.pop("-p", None) or DEFAULT_PIDFILE)
        merged.setdefault("--logfile", merged.pop("-f", None) or DEFAULT_LOGFILE)
        nodes.append(Node(nodename, merged, [*parsed.passthrough, *append]))
    return nodes


def _nodename(name: str, prefix: str, suffix: str) -> tuple[str, str]:
    """``(node name, short name)``: ``w1`` -> ``w1@suffix``; ``w1@%h`` -> ``w1@<host>``."""
    host = socket.gethostname()
    keys = {"h": host, "n": host.partition(".")[0], "d": host.partition(".")[2], "%": "%"}
    if "@" in name:
        nodename = _format(name, keys)
        return nodename, nodename.partition("@")[0]
    shortname = f"{prefix}{name}"
    return _format(f"{shortname}@{suffix}", {**keys, "n": shortname}), shortname


def _namespaces_by_name(
    namespaces: dict[str, dict[str, str | None]], names: list[str], counted: bool
) -> dict[str, dict[str, str | None]]:
    """Namespaced options keyed by node name: ``1`` is the first name, ``1,2`` and (count
    form) ``1-3`` several."""
    by_name: dict[str, dict[str, str | None]] = {}
    for key, values in namespaces.items():
        for one in _expand_namespace(key, counted):
            if one.isdigit() and not counted:
                index = int(one) - 1
                if not 0 <= index < len(names):
                    raise NodeError(f"no node at index {one!r} (indexes start at 1)")
                one = names[index]
            by_name.setdefault(one, {}).update(values)
    return by_name


def _expand_namespace(key: str, counted: bool) -> Iterator[str]:
    for part in key.split(","):
        start, dash, stop = part.partition("-")
        if counted and dash and start.isdigit() and stop.isdigit():
            yield from (str(n) for n in range(int(start), int(stop) + 1))
        else:
            yield part
