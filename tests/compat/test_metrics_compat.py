"""``spinach-compat worker --metrics-port``: a prefork facade worker serves the sum of its
children's metrics; a revoked task counts as revoked, not succeeded."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.metrics_support import free_port, scrape_until, value
from tests.support.processes import LogReader

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 60.0
URL_VARIABLE = "METRICS_COMPAT_TEST_URL"
OK, FAIL, FLAKY = 3, 2, 2

APP = f'''"""ok succeeds, fail raises, flaky retries once then succeeds."""
import os

import redis

from spinach_compat import Celery, signals

URL = os.environ["{URL_VARIABLE}"]
client = redis.Redis.from_url(URL)
app = Celery("metered", broker=URL, backend=URL)
app.conf.update(broker_connection_retry_on_startup=True, worker_redirect_stdouts=False)


@app.task(name="ok")
def ok(n):
    return n


@app.task(name="fail")
def fail(n):
    raise ValueError(f"fail {{n}}")


@app.task(name="flaky", bind=True, max_retries=1)
def flaky(self, n):
    if client.incr(f"attempts-{{n}}") == 1:
        raise self.retry(countdown=0)


@signals.worker_ready.connect
def _ready(sender=None, **kwargs):
    os.write(1, b"METERED-READY\\n")
'''


@pytest.fixture
def app(redis_url: str):
    import spinach_compat

    return spinach_compat.Celery("metered", broker=redis_url, backend=redis_url,
                                 set_as_current=False)  # fmt: skip


def test_prefork_worker_serves_the_sum_of_its_children(tmp_path, redis_url, app):
    (tmp_path / "metered_app.py").write_text(APP)
    revoked_id = "revoked-before-it-ran"
    app.control.revoke(revoked_id)
    port = free_port()
    env = {**os.environ, URL_VARIABLE: redis_url}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    command = [sys.executable, "-m", "spinach_compat", "-A", "metered_app", "worker", "-c", "2",
               "--metrics-port", str(port), "-l", "info"]  # fmt: skip
    process = subprocess.Popen(command, cwd=tmp_path, env=env, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)  # fmt: skip
    assert process.stdout is not None
    log = LogReader(process.stdout)
    try:
        log.wait_for("METERED-READY")
        for n in range(OK):
            app.send_task("ok", args=[n])
        for n in range(FAIL):
            app.send_task("fail", args=[n])
        for n in range(FLAKY):
            app.send_task("flaky", args=[n])
        app.send_task("ok", args=[99], task_id=revoked_id)
        expected = OK + FAIL + 2 * FLAKY + 1
        samples = scrape_until(
            port, lambda s: value(s, "spinach_job_run_seconds_count") >= expected
        )
        counts = {
            what: {
                t: value(samples, f"spinach_jobs_{what}_total", task=t)
                for t in ("ok", "fail", "flaky")
            }
            for what in ("succeeded", "failed", "retried", "revoked")
        }
        assert counts == {
            "succeeded": {"ok": OK, "fail": 0, "flaky": FLAKY},
            "failed": {"ok": 0, "fail": FAIL, "flaky": 0},
            "retried": {"ok": 0, "fail": 0, "flaky": FLAKY},
            "revoked": {"ok": 1, "fail": 0, "flaky": 0},
        }
        runs = {
            t: value(samples, "spinach_job_run_seconds_count", task=t)
            for t in ("ok", "fail", "flaky")
        }
        assert runs == {"ok": OK + 1, "fail": FAIL, "flaky": 2 * FLAKY}
        process.send_signal(signal.SIGTERM)
        assert process.wait(TIMEOUT) == 0, log.text
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(TIMEOUT)
        process.stdout.close()
        log.join()


def test_a_threads_worker_service_counts_and_serves(make_app):
    from spinach_compat.worker.metrics import MetricsService

    app = make_app()

    @app.task(name="echo")
    def echo(n):
        return n

    app.control.revoke("revoked-id")
    service = MetricsService(app.namespace, 0)
    service.prepare()
    try:
        echo.apply_async((1,), task_id="revoked-id")
        result = echo.delay(2)
        app.start_worker(concurrency=2, block=False)
        assert result.get(timeout=TIMEOUT) == 2
        samples = scrape_until(
            service._server.port, lambda s: value(s, "spinach_job_run_seconds_count") >= 2
        )
    finally:
        service.stop()
    assert value(samples, "spinach_jobs_succeeded_total", task="echo") == 1
    assert value(samples, "spinach_jobs_revoked_total", task="echo") == 1
    assert value(samples, "spinach_jobs_enqueued_total", task="echo") == 2
