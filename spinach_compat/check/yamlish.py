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
    """``(line number, value)`` of each scalar, flow list or block list of ``text``."""
    lines = text.splitlines()
    index = 0
    while index < len(lines):
        match = LINE.match(lines[index])
        if match is None or lines[index].lstrip().startswith("#"):
            index += 1
            continue
        indent = len(match.group("indent")) + len(match.group("dash") or "")
        value = match.group("value").strip()
        end = _block_end(lines, index, indent)
        if BLOCK_SCALAR.match(value):
            body = [line.strip() for line in lines[index + 1 : end]]
            sep = " " if value.startswith(">") else "\n"
            yield index + 2, sep.join(body)
        elif not value and match.group("key"):
            items = _block_list(lines[index + 1 : end])
            if items:
                yield index + 2, shlex.join(items)
            end = index + 1 if not items else end
        else:
            folded = [value] + [line.strip() for line in lines[index + 1 : end]]
            yield index + 1, _scalar(" ".join(folded) if _plain(value) else value)
            end = end if _plain(value) else index + 1
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
