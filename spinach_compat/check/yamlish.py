"""The scalar values of a YAML file, as the command lines they may hold.

Just enough YAML for command lines (docker-compose, Kubernetes, CI files) without a YAML
library: quoted and plain scalars (folded over more-indented lines), flow lists
(``["celery", "-A", "proj", "worker"]``), block lists of words, and block scalars
(``|``, ``>``). Each value comes with the number of the line it starts on.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Iterator

LINE = re.compile(
    r"^(?P<indent>\s*)(?P<dash>-\s+)?(?:(?P<key>[\w.-]+)\s*:(?:\s+|$))?(?P<value>.*)$"
)
BLOCK_SCALAR = re.compile(r"^[|>][-+]?\d*$")


def yaml_values(text: str) -> Iterator[tuple[int, str]]:
    """``(line number, value)`` of each scalar, flow list or block list of ``text``; a
    Kubernetes-style ``command:`` followed by ``args:`` also as one command line."""
    previous: tuple[int, str, str] = (0, "", "")
    for line, key, value in _entries(text):
        yield line, value
        if key == "args" and previous[1] in ("command", "entrypoint"):
            yield previous[0], f"{previous[2]} {value}"
        previous = (line, key, value)


def _entries(text: str) -> Iterator[tuple[int, str, str]]:
    """``(line number, key, value)`` of each value of ``text`` (key "" in a list)."""
    lines = text.splitlines()
    index = 0
    while index < len(lines):
        match = LINE.match(lines[index])
        if match is None or lines[index].lstrip().startswith("#"):
            index += 1
            continue
        key, value = match.group("key") or "", match.group("value").strip()
        indent = len(match.group("indent")) + len(match.group("dash") or "")
        end = _block_end(lines, index, indent)
        if BLOCK_SCALAR.match(value):  # its lines are indented deeper than its parent
            end = _block_end(lines, index, len(match.group("indent")))
            body = [line.strip() for line in lines[index + 1 : end]]
            if value.startswith(">"):
                yield index + 2, key, " ".join(body)
            else:  # literal: a script, one command a line
                for number, line in logical_lines("\n".join(body)):
                    yield index + 1 + number, key, line
        elif not value and key:
            items = _block_list(lines[index + 1 : end])
            if items:
                yield index + 2, key, shlex.join(items)
            end = end if items else index + 1
        else:
            plain = _plain(value)
            folded = [value] + [line.strip() for line in lines[index + 1 : end]] if plain else []
            yield index + 1, key, _scalar(" ".join(folded) if plain else value)
            end = end if plain else index + 1
        index = max(end, index + 1)


def _block_end(lines: list[str], index: int, indent: int) -> int:
    """The first line after ``index`` not indented deeper than ``indent`` (blank lines kept)."""
    end = index + 1
    while end < len(lines) and (
        not lines[end].strip() or len(lines[end]) - len(lines[end].lstrip()) > indent
    ):
        end += 1
    return end


def _block_list(lines: list[str]) -> list[str]:
    """The words of a block list of scalars (``- celery``), else nothing."""
    items = []
    for line in (line.strip() for line in lines if line.strip()):
        if not line.startswith("- ") or LINE.match(line[2:]).group("key"):  # type: ignore[union-attr]
            return []
        items.append(_scalar(line[2:].strip()))
    return items


def _plain(value: str) -> bool:
    return bool(value) and value[0] not in "\"'[{"


def _scalar(value: str) -> str:
    """A scalar's text: quotes removed, a flow list's words joined as a command line."""
    if value.startswith("[") and value.endswith("]"):
        return shlex.join(_flow_items(value[1:-1]))
    if len(value) > 1 and value[0] == value[-1] == '"':
        try:
            return str(json.loads(value))
        except ValueError:
            return value[1:-1]
    if len(value) > 1 and value[0] == value[-1] == "'":
        return value[1:-1].replace("''", "'")
    return re.sub(r"\s+#.*$", "", value)


def _flow_items(text: str) -> list[str]:
    """The items of a flow list's body, each unquoted."""
    items = re.findall(r"\"(?:[^\"\\]|\\.)*\"|'(?:[^']|'')*'|[^,]+", text)
    return [_scalar(item.strip()) for item in items if item.strip()]


def logical_lines(text: str) -> Iterator[tuple[int, str]]:
    """Lines joined at trailing backslashes, numbered by their first physical line."""
    pending, start = "", 0
    for number, line in enumerate(text.splitlines(), 1):
        if not pending:
            start = number
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        yield start, pending + line
        pending = ""
    if pending:
        yield start, pending
