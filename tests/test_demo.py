"""The demo of the README: every kind of job it shows really happens."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from spinach import demo

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def ran() -> tuple[demo.DemoResult, str]:
    """One in-process run of the demo, shared by the tests of this module, and its output."""
    out = io.StringIO()
    return demo.run(out), out.getvalue()


@pytest.fixture
def result(ran: tuple[demo.DemoResult, str]) -> demo.DemoResult:
    return ran[0]


@pytest.fixture
def output(ran: tuple[demo.DemoResult, str]) -> str:
    return ran[1]


def _succeeded(result: demo.DemoResult, task: str) -> list[demo.Attempt]:
    return [a for a in result.of(task) if a.outcome == "succeeded"]


def test_everything_expected_happened(result, output):
    assert result.complete, output
    assert "All done in" in output


def test_plain_jobs_and_the_batch_succeed(result):
    assert sorted(a.call for a in _succeeded(result, "greet")) == [
        "greet('Ada')",
        "greet('Grace')",
        "greet('Linus')",
    ]
    assert sorted(a.call for a in _succeeded(result, "square")) == [
        "square(1)",
        "square(2)",
        "square(3)",
    ]
    assert all(a.number == 1 for a in result.of("greet") + result.of("square"))


def test_the_delayed_job_does_not_run_early(result):
    [attempt] = result.of("remind")
    assert attempt.outcome == "succeeded"
    assert attempt.due >= result.start + demo.DELAY
    assert attempt.started >= attempt.due


def test_the_flaky_job_is_retried_once_then_succeeds(result):
    first, second = result.of("flaky")
    assert (first.number, first.outcome) == (1, "retrying")
    assert first.error == "RetryException: the service is warming up"
    assert (second.number, second.outcome) == (2, "succeeded")
    assert second.started >= first.retry_at  # the retry waited for the time it asked


def test_the_aborted_job_fails_without_retry(result):
    [attempt] = result.of("doomed")
    assert attempt.outcome == "aborted"
    assert attempt.error.startswith("AbortException: ")


def test_the_periodic_task_runs_repeatedly(result):
    ticks = _succeeded(result, "tick")
    assert len(ticks) >= 2
    assert all(a.started >= a.due for a in ticks)


def test_the_output_tells_what_ran(output):
    for text in ("greet('Ada')", "remind('stretch')", "square(3)", "flaky()", "doomed()"):
        assert text in output
    assert "Summary:" in output
    assert "retried job     failed on attempt 1, then succeeded on attempt 2" in output


def test_python_dash_m_spinach_demo():
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))

    process = subprocess.run(
        [sys.executable, "-m", "spinach.demo"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert process.returncode == 0, process.stdout + process.stderr
    assert "All done in" in process.stdout
    assert process.stderr == ""  # the library's logs stay quiet without --verbose
