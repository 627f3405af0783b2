"""The project's declared dependencies that are built on Celery (``thirdparty.PACKAGES``).

Read from requirements*.txt (and requirements/*.txt), pyproject.toml (PEP 621 and Poetry),
setup.cfg and setup.py (``install_requires``, ``extras_require``) and Pipfile.
"""

from __future__ import annotations

import ast
import configparser
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

from .report import Report
from .thirdparty import package, verdict

REQUIREMENT = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


def is_requirements_file(path: Path) -> bool:
    """Whether the checker reads ``path`` for dependencies."""
    name = path.name
    if name in ("pyproject.toml", "setup.cfg", "setup.py", "Pipfile"):
        return True
    in_dir = path.parent.name.startswith("requirements") and name.endswith((".txt", ".in"))
    return in_dir or (name.startswith("requirements") and name.endswith((".txt", ".in")))


def scan_requirements(report: Report, path: Path, shown: str) -> None:
    """Report each dependency of ``path`` that the table of packages built on Celery has."""
    try:
        text = path.read_text(errors="replace")
        found = list(_dependencies(path.name, text))
    except (OSError, ValueError, SyntaxError, configparser.Error) as exc:
        report.skipped.append(f"{shown}: {exc}")
        return
    for line, requirement in found:
        match = REQUIREMENT.match(requirement)
        entry = package(match.group(1)) if match else None
        if entry:
            report.add_verdict(shown, line, f"requires {entry[0]}", verdict(*entry))


def _dependencies(name: str, text: str) -> Iterator[tuple[int, str]]:
    """``(line, requirement)`` of each dependency a file declares."""
    if name == "pyproject.toml":
        yield from _located(text, _pyproject(tomllib.loads(text)))
    elif name == "Pipfile":
        data = tomllib.loads(text)
        names = [*data.get("packages", {}), *data.get("dev-packages", {})]
        yield from _located(text, names)
    elif name == "setup.cfg":
        yield from _located(text, _setup_cfg(text))
    elif name == "setup.py":
        yield from _located(text, _setup_py(text))
    else:
        for number, line in enumerate(text.splitlines(), 1):
            if not line.lstrip().startswith(("#", "-")):
                yield number, line


def _pyproject(data: dict[str, Any]) -> list[str]:
    project = data.get("project", {})
    found = list(project.get("dependencies", []))
    for extra in project.get("optional-dependencies", {}).values():
        found += extra
    poetry = data.get("tool", {}).get("poetry", {})
    found += list(poetry.get("dependencies", {}))
    for group in poetry.get("group", {}).values():
        found += list(group.get("dependencies", {}))
    return found


def _setup_cfg(text: str) -> list[str]:
    parser = configparser.ConfigParser()
    parser.read_string(text)
    found = parser.get("options", "install_requires", fallback="").splitlines()
    if parser.has_section("options.extras_require"):
        for _, value in parser.items("options.extras_require"):
            found += value.splitlines()
    return [line for line in found if line.strip()]


def _setup_py(text: str) -> list[str]:
    found: list[str] = []
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.keyword) and node.arg in ("install_requires", "extras_require"):
            found += [
                c.value for c in ast.walk(node.value)
                if isinstance(c, ast.Constant) and isinstance(c.value, str)
            ]  # fmt: skip
    return found


def _located(text: str, requirements: list[str]) -> Iterator[tuple[int, str]]:
    """Each requirement with the first line of ``text`` naming it (else line 1)."""
    lines = text.splitlines()
    for requirement in requirements:
        match = REQUIREMENT.match(requirement)
        name = match.group(1) if match else requirement
        line = next((i for i, text in enumerate(lines, 1) if name in text), 1)
        yield line, requirement
