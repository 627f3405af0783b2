"""Upstream Spinach 0.0.25 and ours run the same script of its public API alike.

Upstream is installed in a virtualenv of its own (its import name is ours), the one bench/
builds (``bench/benchlib/venvs.py``: installed once, reused while its requirements hold).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SCENARIOS = Path(__file__).resolve().parent / "upstream_parity" / "scenarios.py"
#: Seconds one run of the scenarios gets (it starts and stops workers twice).
RUN_TIMEOUT = 60


@pytest.fixture(scope="module")
def upstream_python() -> str:
    """The interpreter of bench's upstream venv, installed by pip on first use."""
    sys.path.insert(0, str(REPO / "bench"))
    try:
        from benchlib.venvs import VENVS, ensure
    finally:
        sys.path.remove(str(REPO / "bench"))
    venv = VENVS["spinach-upstream"]
    try:
        ensure(venv, sys.executable)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        pytest.skip(f"upstream Spinach could not be installed in {venv.path}: {exc}")
    return str(venv.python)


def run(python: str, redis_url: str, prefix: str) -> dict:
    """The outcome of the scenarios under ``python``, run outside the repository so that
    the upstream interpreter cannot import our ``spinach`` package by accident."""
    done = subprocess.run(
        [python, str(SCENARIOS), redis_url, prefix],
        capture_output=True, text=True, timeout=RUN_TIMEOUT, cwd=SCENARIOS.parent,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.fixture(scope="module")
def outcomes(upstream_python: str, redis_server) -> tuple[dict, dict]:
    url = redis_server.url
    return run(upstream_python, url, "upstream"), run(sys.executable, url, "ours")


@pytest.mark.parametrize("scenario", ["registry", "engine", "const", "several_engines"])
def test_same_outcome_as_upstream(outcomes: tuple[dict, dict], scenario: str) -> None:
    upstream, ours = outcomes
    assert ours[scenario] == upstream[scenario]


def test_the_scenario_checks_what_it_claims(outcomes: tuple[dict, dict]) -> None:
    """Guards against both sides agreeing on nothing (say, every call failing alike)."""
    _, ours = outcomes
    assert ours["registry"]["task_name"] == "add"
    assert ours["engine"]["execute"] == 5
    assert ours["several_engines"] == {
        "first_namespace_ran": ["from-producer", "from-worker"],
        "finished_in_first": ["from-producer", "from-worker"],
    }
