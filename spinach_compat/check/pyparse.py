"""Parse a Python file whatever the Python version it was written for.

``ast`` parses with the running Python's grammar. Where a newer grammar only adds syntax
that older ones can spell another way, the file is rewritten before it is parsed, so the
checker reads it the same under every Python it runs on: Python 3.14's unparenthesized
``except A, B:`` (PEP 758) becomes ``except (A, B):``; Python 3.12's type parameters
(PEP 695: ``def f[T](``, ``class C[T]:``, ``type X = int``) are dropped (``X = int``), as
the checker never reads them. Any other syntax error is raised: the caller reports the file
as not parsed.
"""

from __future__ import annotations

import ast
import io
import re
import tokenize
import warnings

#: Repairs tried on one file before giving up (each fixes one clause).
MAX_REPAIRS = 200
EXCEPT_TYPES = "multiple exception types must be parenthesized"
GENERIC = re.compile(r"^\s*(?:async\s+)?(?:def|class)\s+\w+\s*\[")
TYPE_ALIAS = re.compile(r"^\s*(?P<keyword>type)\s+(?P<name>\w+)\s*(?P<params>\[)?")


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
    """``text`` with the statement ``exc`` is about rewritten, or None."""
    if not exc.lineno:
        return None
    if exc.msg == EXCEPT_TYPES:
        return _parenthesize_except(text, exc.lineno)
    return _drop_type_parameters(text, exc.lineno)


def _drop_type_parameters(text: str, lineno: int) -> str | None:
    """Python 3.12's type parameters (PEP 695) dropped: ``def f[T](`` -> ``def f(``,
    ``class C[T]:`` -> ``class C:``, ``type X[T] = ...`` -> ``X = ...``."""
    lines = _lines(text)
    start = sum(len(line) for line in lines[: lineno - 1])
    line = lines[lineno - 1]
    alias = TYPE_ALIAS.match(line)
    if alias:
        end = _matching(text, start + alias.end("name")) if alias.group("params") else None
        cut = end + 1 if end is not None else start + alias.end("name")
        rest = text[cut:].lstrip()
        return text[: start + alias.start("keyword")] + alias.group("name") + " " + rest
    generic = GENERIC.match(line)
    if generic is None:
        return None
    bracket = start + generic.end() - 1
    end = _matching(text, bracket)
    return None if end is None else text[:bracket] + text[end + 1 :]


def _lines(text: str) -> list[str]:
    """The lines of ``text`` with their ends, numbered as the tokenizer does (on ``\\n``)."""
    return re.findall(r"[^\n]*\n|[^\n]+$", text)


def _matching(text: str, bracket: int) -> int | None:
    """The index of the ``]`` closing the ``[`` at ``bracket``."""
    depth = 0
    for index in range(bracket, len(text)):
        depth += {"[": 1, "(": 1, "]": -1, ")": -1}.get(text[index], 0)
        if depth == 0:
            return index
    return None


def _parenthesize_except(text: str, lineno: int) -> str | None:
    """Python 3.14's ``except A, B:`` (PEP 758) -> ``except (A, B):``."""
    lines = _lines(text)
    line = lines[lineno - 1]
    start = line.find("except")
    colon = _clause_end(line, start)
    if start < 0 or colon is None:
        return None
    head = start + len("except*") if line.startswith("except*", start) else start + len("except")
    types = line[head:colon].strip()
    lines[lineno - 1] = f"{line[:head]} ({types}){line[colon:]}"
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
