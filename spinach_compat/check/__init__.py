"""``spinach-compat check PATH``: which Celery APIs a codebase uses, and how they migrate.

The checker reads a codebase (it never imports or runs it): its Python files, its
deployment files (Procfile, shell scripts, Dockerfiles, YAML, systemd units, supervisord
and Makefiles) for ``celery`` command lines, and its declared dependencies for packages
built on Celery. Each use is listed with its file and line, marked ``supported``,
``different`` (works, with a difference to know), ``check`` (a value the checker cannot see:
look at it) or ``unsupported`` (with the way out), and the section of ``migration_guide/``.

A Celery name is judged by resolving it against the installed facade (``facade``), never
by a table alone; ``RULES`` (``rules``) judges settings, options and flags on their values.
Exit status: 1 when something unsupported is used or a Python file cannot be parsed, 0
otherwise (``check`` findings do not fail it), 2 for a usage error.
"""

from __future__ import annotations

import argparse
import ast
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from . import commands, pyparse, requirements
from .commands import COMMAND_FILES, scan_command_line
from .project import Project, module_name
from .python import Visitor
from .report import (
    EXIT_OK,
    EXIT_UNSUPPORTED,
    EXIT_USAGE,
    Finding,
    Report,
    format_json,
    format_text,
)
from .rules import CHECK, DIFFERENT, GUIDE, RULES, SUPPORTED, UNSUPPORTED, Rule, rule_for
from .settings import config_sources, literal

__all__ = [
    "CHECK", "DIFFERENT", "EXIT_OK", "EXIT_UNSUPPORTED", "EXIT_USAGE", "GUIDE", "RULES",
    "SUPPORTED", "UNSUPPORTED", "Finding", "Report", "Rule", "check_path", "literal", "main",
    "rule_for", "scan_command_line",
]  # fmt: skip

SKIPPED_DIRS = frozenset({
    ".git", ".hg", ".venv", "venv", "env", "node_modules", "__pycache__", "site-packages",
    "build", "dist", ".tox", ".nox", ".mypy_cache", ".ruff_cache", ".pytest_cache",
})  # fmt: skip
#: Passes learning what each module defines before the reporting one: each more pass
#: follows one more level of re-exports (``from .celery import app`` in ``__init__``).
LEARNING_PASSES = 2

#: Files read between two progress lines of ``check`` on a terminal (stderr): a large tree
#: shows it is moving; more often is noisier.
PROGRESS_EVERY = 500


def iter_files(root: Path) -> Iterator[Path]:
    """Every file under ``root`` (or ``root`` itself), skipping virtualenvs and caches."""
    if root.is_file():
        yield root
        return
    for directory, subdirs, files in os.walk(root):
        subdirs[:] = sorted(d for d in subdirs if d not in SKIPPED_DIRS)
        for name in sorted(files):
            path = Path(directory, name)
            if path.is_file():  # not a broken symbolic link
                yield path


def check_path(root: str | Path, progress: Callable[[int], None] | None = None) -> Report:
    """Check every Python, deployment and requirements file under ``root``; ``progress``
    is called with the number of files read every ``PROGRESS_EVERY`` files."""
    root = Path(root)
    report = Report(str(root))
    trees: list[tuple[str, ast.Module]] = []
    for count, path in enumerate(iter_files(root), 1):
        if progress is not None and count % PROGRESS_EVERY == 0:
            progress(count)
        shown = str(path.relative_to(root)) if path != root else path.name
        if path.suffix == ".py":
            tree = _parse(report, path, shown)
            trees += [(shown, tree)] if tree is not None else []
        if requirements.is_requirements_file(path):
            requirements.scan_requirements(report, path, shown)
        if COMMAND_FILES.search(path.name):
            _scan_text(report, path, shown)
    _scan_python(report, trees, _prefix(root))
    report.files = len(trees)
    report.findings.sort(key=lambda f: (f.file, f.line))
    return report


def _prefix(root: Path) -> str:
    """The package name of ``root`` when it is a package (its modules are ``root.x``)."""
    return f"{root.name}/" if root.is_dir() and (root / "__init__.py").is_file() else ""


def _scan_python(report: Report, trees: list[tuple[str, ast.Module]], prefix: str) -> None:
    project = Project()
    named = [(shown, module_name(prefix + shown), tree) for shown, tree in trees]
    for shown, module, tree in named:
        project.modules.add(module)
        if shown.endswith("__init__.py"):
            project.packages.add(module)
        for kind, value in config_sources(tree):
            (project.namespaces if kind == "namespace" else project.configs).add(value)
    for learning in [*[True] * LEARNING_PASSES, False]:
        for shown, module, tree in named:
            visitor = Visitor(None if learning else report, shown, module, project)
            visitor.visit(tree)
            project.globals[module] = visitor.finish()


def _parse(report: Report, path: Path, shown: str) -> ast.Module | None:
    """The module's tree; a file that cannot be parsed is recorded as a failure."""
    try:
        return pyparse.parse(path.read_bytes(), shown)
    except SyntaxError as exc:
        report.skipped.append(f"{shown}:{exc.lineno}: {exc.msg}")
    except (ValueError, OSError) as exc:
        report.skipped.append(f"{shown}: {exc}")
    return None


def _scan_text(report: Report, path: Path, shown: str) -> None:
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        report.skipped.append(f"{shown}: {exc}")
        return
    commands.scan_file(report, shown, text)


def main(argv: Sequence[str] | None = None) -> int:
    """``spinach-compat check PATH [--json]``; the exit status."""
    parser = argparse.ArgumentParser(
        prog="spinach-compat check",
        description="List the Celery APIs a codebase uses and how they migrate to "
        "spinach_compat (reads the files, never imports them).",
    )
    parser.add_argument("path", help="a directory (or one file) to check")
    parser.add_argument("--json", action="store_true", help="print JSON for tools")
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return EXIT_USAGE if exc.code else EXIT_OK
    if not os.path.exists(args.path):
        print(f"Error: no such file or directory: {args.path}", file=sys.stderr)
        return EXIT_USAGE
    report = check_path(args.path, _print_progress if sys.stderr.isatty() else None)
    print(format_json(report) if args.json else format_text(report))
    return EXIT_UNSUPPORTED if report.failed else EXIT_OK


def _print_progress(count: int) -> None:
    print(f"spinach-compat check: read {count} files...", file=sys.stderr, flush=True)
