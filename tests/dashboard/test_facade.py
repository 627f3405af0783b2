"""The dashboard of a Celery facade app: each job's Celery result on its page."""

from __future__ import annotations

import logging
import subprocess
import sys

import pytest

import spinach_compat
from spinach_compat import _state
from spinach_compat.bin.dashboard import result_lookup

from ..helpers import wait_until


@pytest.fixture
def app():
    previous = _state._current_app
    app = spinach_compat.Celery("dashproj", broker="memory://", backend="memory://")
    yield app
    app.stop_worker()
    _state._current_app = previous


def test_result_and_error_of_facade_jobs_appear_on_their_pages(app, make_client):
    log = logging.getLogger("dashproj.tasks")

    @app.task(name="add")
    def add(a, b):
        log.warning("adding %s and %s", a, b)
        return a + b

    @app.task(name="fail")
    def fail():
        raise ValueError("no <good>")

    app.start_worker(concurrency=2, block=False)
    ok, bad = add.delay(2, 3), fail.delay()
    assert ok.get(timeout=15) == 5
    with pytest.raises(ValueError):
        bad.get(timeout=15)
    broker = app.engine.broker
    assert wait_until(lambda: len(broker.history()) == 2)
    client = make_client(broker, results=result_lookup(app))
    done = client.get(f"/api/jobs/{ok.id}").json()
    assert done["result"] == {"status": "SUCCESS", "result": "5", "traceback": None}
    assert done["state"] == "succeeded" and done["logs"][0].endswith("adding 2 and 3")
    failed = client.get(f"/api/jobs/{bad.id}").json()
    assert failed["result"]["status"] == "FAILURE"
    assert failed["result"]["result"] == "ValueError: no <good>"
    assert "Traceback" in failed["result"]["traceback"]
    page = client.get(f"/jobs/{bad.id}").text
    assert "Result (Celery facade)" in page and "ValueError: no &lt;good&gt;" in page
    assert client.get("/api/jobs/unknown-id").status_code == 404


def test_compat_dashboard_command_refuses_the_memory_broker(tmp_path):
    (tmp_path / "memproj.py").write_text(
        "from spinach_compat import Celery\napp = Celery('memproj', broker='memory://')\n"
    )
    command = [sys.executable, "-m", "spinach_compat", "-A", "memproj", "dashboard"]
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "Error: the application uses the in-process MemoryBroker" in done.stderr
