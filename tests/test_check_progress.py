"""``spinach-compat check`` over a large tree: progress lines on a terminal only."""

from __future__ import annotations

import pytest

from spinach_compat import check


@pytest.fixture
def tree(tmp_path, monkeypatch):
    """Five small Python files, progress every two files."""
    for i in range(5):
        (tmp_path / f"m{i}.py").write_text("from celery import shared_task\n")
    monkeypatch.setattr(check, "PROGRESS_EVERY", 2)
    return tmp_path


def test_progress_is_called_every_few_files(tree):
    seen: list[int] = []
    report = check.check_path(tree, seen.append)
    assert seen == [2, 4] and report.files == 5


@pytest.mark.parametrize("terminal", [True, False])
def test_main_prints_progress_to_a_terminal_only(tree, capsys, monkeypatch, terminal):
    monkeypatch.setattr("sys.stderr.isatty", lambda: terminal)
    assert check.main([str(tree)]) == 0
    err = capsys.readouterr().err
    expected = ["spinach-compat check: read 2 files...", "spinach-compat check: read 4 files..."]
    assert err.splitlines() == (expected if terminal else [])
