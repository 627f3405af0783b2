"""Parse a Python file whatever the Python version it was written for.

``ast`` parses with the running Python's grammar. Where a newer grammar only adds syntax
that a parenthesis spells in older ones, the file is rewritten before it is parsed, so the
checker reads it the same under every Python it runs on: Python 3.14's unparenthesized
``except A, B:`` (PEP 758) becomes ``except (A, B):``. Any other syntax error is raised:
the caller reports the file as not parsed.
"""

from __future__ import annotations

import ast
import io
import tokenize
import warnings

#: Repairs tried on one file before giving up (each fixes one clause).
MAX_REPAIRS = 200
EXCEPT_TYPES = "multiple exception types must be parenthesized"


def parse(source: bytes, filename: str) -> ast.Module:
    """The module's tree; ``SyntaxError`` when it cannot be read even after repairs."""
    text = _decode(source)
    first_error: SyntaxError | None = None
    for _ in range(MAX_REPAIRS):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", SyntaxWarning)
                return ast.parse(text, filename=filename)
        except SyntaxError as exc:
            first_error = first_error or exc
            repaired = _repair(text, exc)
            if repaired is None:
                raise first_error from None
            text = repaired
    raise first_error  # type: ignore[misc]


def _decode(source: bytes) -> str:
    encoding, _ = tokenize.detect_encoding(io.BytesIO(source).readline)
    return source.decode(encoding)


def _repair(text: str, exc: SyntaxError) -> str | None:
    """``text`` with the clause ``exc`` is about rewritten, or None."""
    if exc.msg != EXCEPT_TYPES or not exc.lineno:
        return None
    lines = text.splitlines(keepends=True)
    line = lines[exc.lineno - 1]
    start = line.find("except")
    colon = _clause_end(line, start)
    if start < 0 or colon is None:
        return None
    head = start + len("except*") if line.startswith("except*", start) else start + len("except")
    types = line[head:colon].strip()
    lines[exc.lineno - 1] = f"{line[:head]} ({types}){line[colon:]}"
    return "".join(lines)


def _clause_end(line: str, start: int) -> int | None:
    """The index of the ``:`` ending the except clause starting at ``start``."""
    depth = 0
    for index in range(start, len(line)):
        char = line[index]
        if char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
        elif char == ":" and depth == 0:
            return index
        elif char == "#":
            return None
    return None
