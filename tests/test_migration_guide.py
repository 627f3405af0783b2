"""The migration guide: its code examples run, its links and the errors pointing to it land."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
GUIDE = ROOT / "migration_guide"
BLOCK = re.compile(r"(?:<!-- (?P<mark>[\w-]+) -->\n)?```python\n(?P<code>.*?)```", re.S)
NOT_RUN, NEEDS_REDIS = "not-run", "needs-redis"


def code_blocks() -> list[tuple[str, str | None, str]]:
    """``(id, mark, code)`` of every Python block of the guide."""
    blocks = []
    for path in sorted(GUIDE.glob("*.md")):
        text = path.read_text()
        for match in BLOCK.finditer(text):
            line = text.count("\n", 0, match.start("code")) + 1
            blocks.append((f"{path.name}:{line}", match.group("mark"), match.group("code")))
    return blocks


def anchors(path: Path) -> set[str]:
    """GitHub-style anchors of the headings of a Markdown file."""
    found = set()
    for line in path.read_text().splitlines():
        if line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            found.add(re.sub(r"\s", "-", re.sub(r"[^\w\s-]", "", title)))
    return found


def _run(code: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120,
        env={**os.environ, **env},
    )  # fmt: skip


RUN = [pytest.param(code, id=name) for name, mark, code in code_blocks() if mark is None]
REDIS = [pytest.param(code, id=name) for name, mark, code in code_blocks() if mark == NEEDS_REDIS]


def test_the_guide_has_examples_and_few_fragments() -> None:
    marks = [mark for _, mark, _ in code_blocks()]
    assert RUN and REDIS
    assert set(marks) <= {None, NOT_RUN, NEEDS_REDIS}
    assert marks.count(NOT_RUN) <= 2


@pytest.mark.parametrize("code", RUN)
def test_example_runs_on_the_memory_broker(code: str) -> None:
    done = _run(code, {})
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("code", REDIS)
def test_example_runs_on_redis(code: str, redis_url: str) -> None:
    done = _run(code, {"REDIS_URL": redis_url})
    assert done.returncode == 0, done.stderr


def test_links_between_guide_files_land_on_sections() -> None:
    for path in GUIDE.glob("*.md"):
        for target in re.findall(r"\]\(([^)\s]+)\)", path.read_text()):
            if target.startswith("http"):
                continue
            file, _, anchor = target.partition("#")
            linked = GUIDE / file if file else path
            assert linked.is_file(), f"{path.name}: {target}"
            assert not anchor or anchor in anchors(linked), f"{path.name}: {target}"


def test_errors_pointing_to_the_guide_land_on_it() -> None:
    """Every ``migration_guide/...`` an error message names exists (file and anchor)."""
    pointer = re.compile(r"migration_guide/(?P<file>[\w.-]*)(?:#(?P<anchor>[\w-]+))?")
    seen = 0
    for source in (ROOT / "spinach_compat").rglob("*.py"):
        for match in pointer.finditer(source.read_text()):
            seen += 1
            file = GUIDE / (match.group("file") or "README.md")
            assert file.is_file(), f"{source.name}: {match.group()}"
            anchor = match.group("anchor")
            assert not anchor or anchor in anchors(file), f"{source.name}: {match.group()}"
    assert seen


def test_settings_and_flags_the_guide_names_exist() -> None:
    """``spinach_*`` settings (and task options) and worker flags named by the guide are the
    facade's own."""
    from spinach_compat.app.defaults import DEFAULTS
    from spinach_compat.app.unique import OPTIONS
    from spinach_compat.bin.celery import build_parser

    text = "\n".join(path.read_text() for path in GUIDE.glob("*.md"))
    settings = set(re.findall(r"\b(spinach_(?!compat)\w+)", text))
    assert {"spinach_namespace", "spinach_legacy_tasks"} <= settings
    assert settings <= {*DEFAULTS, *OPTIONS}, settings - {*DEFAULTS, *OPTIONS}
    commands = next(a for a in build_parser()._actions if a.dest == "command")
    flags = {f for a in commands.choices["worker"]._actions for f in a.option_strings}
    assert "--celery-queues" in text and "--celery-queues" in flags
