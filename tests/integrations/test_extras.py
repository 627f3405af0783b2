"""Each integration imports its framework only when used, and says which extra it needs."""

from __future__ import annotations

import subprocess
import sys

import pytest

FRAMEWORKS = ("flask", "django", "sentry_sdk")


def python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)  # fmt: skip


def test_the_engine_imports_no_framework():
    done = python(
        "import sys, spinach, spinach.engine, spinach.contrib.settings\n"
        f"print(sorted(set({FRAMEWORKS!r}) & set(sys.modules)))"
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


@pytest.mark.parametrize(
    ("module", "framework", "extra"),
    [
        ("spinach.contrib.flask", "flask", "flask"),
        ("spinach.contrib.sentry", "sentry_sdk", "sentry"),
    ],
)
def test_a_missing_framework_names_the_extra(module: str, framework: str, extra: str):
    done = python(f"import sys; sys.modules[{framework!r}] = None; import {module}")
    assert done.returncode != 0
    assert f"pip install 'spinach-queue[{extra}]'" in done.stderr


def test_upstream_s_datadog_module_names_the_replacement():
    done = python("import spinach.contrib.datadog")
    assert "use spinach.contrib.otel" in done.stderr
