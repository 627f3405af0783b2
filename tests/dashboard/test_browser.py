"""The dashboard in a real browser (Debian's chromium through Playwright), served by
uvicorn over a real Redis and real workers. A few tests, each exercising a whole path."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from playwright.sync_api import expect

from spinach import Engine, RedisBroker, Tasks
from tests.helpers import WAIT_TIMEOUT, wait_until
from tests.support.redis_server import RedisServer

#: Seconds between two refreshes of the pages under test: quick, so that live updates
#: arrive well within Playwright's waits.
POLL = 0.3

log = logging.getLogger("tests.dashboard.browser")


@dataclass
class Live:
    engine: Engine
    gate: threading.Event
    url: str

    def park(self, queue: str, *texts: str, at: datetime | None = None) -> list[Any]:
        """Jobs of ``echo`` in ``queue``, which no worker of ``engine`` consumes."""
        jobs = [self.engine.build_job("echo", at, (text,), queue=queue) for text in texts]
        return self.engine.schedule_jobs(jobs)


def _tasks(gate: threading.Event) -> Tasks:
    tasks = Tasks()

    @tasks.task(name="echo")
    def echo(text: str) -> None:
        log.warning("echo %s", text)

    @tasks.task(name="blocker")
    def blocker(label: str) -> None:
        log.warning("blocking on %s", label)
        gate.wait(WAIT_TIMEOUT)

    return tasks


@pytest.fixture
def live(redis_url: str, serve_dashboard: Any) -> Iterator[Live]:
    """A worker of namespace "browser" on queue "spinach", and its dashboard (actions
    allowed)."""
    gate = threading.Event()
    engine = Engine(RedisBroker(redis_url), namespace="browser")
    engine.attach_tasks(_tasks(gate))
    engine.start_workers(number=2, queue="spinach", block=False)
    watcher = RedisBroker(redis_url)
    watcher.set_namespace("browser")
    server = serve_dashboard(watcher, allow_actions=True, poll_interval=POLL)
    try:
        yield Live(engine, gate, server.url)
    finally:
        gate.set()
        engine.stop_workers()
        watcher.stop()


def test_overview_shows_the_counts_and_updates_them_live(page, live):
    later = datetime.now(timezone.utc) + timedelta(hours=1)
    live.park("parked", "a", "b", "c")
    live.park("parked", "later", at=later)
    page.goto(live.url)
    row = page.locator('tr[data-queue="parked"]')
    expect(row.locator(".ready")).to_have_text("3")
    expect(row.locator(".future")).to_have_text("1")
    page.evaluate("window.notReloaded = true")
    live.park("parked", "d", "e")
    expect(row.locator(".ready")).to_have_text("5")
    assert page.evaluate("window.notReloaded") is True


def test_a_running_job_shows_on_the_workers_page_then_its_logs(page, live):
    job = live.engine.schedule("blocker", "the gate")
    page.goto(live.url + "/workers")
    expect(page.get_by_role("link", name=job.id)).to_be_visible()
    expect(page.get_by_text('[["the gate"], {}]')).to_be_visible()
    page.get_by_role("link", name=job.id).click()
    expect(page.locator("#job-state")).to_have_text("running")
    live.gate.set()
    expect(page.locator("#job-state")).to_have_text("succeeded")
    expect(page.locator("#logs")).to_contain_text("blocking on the gate")


def test_a_dead_letter_is_retried_from_its_page_and_runs(page, live, redis_url):
    unaware = Engine(RedisBroker(redis_url), namespace="browser")  # knows no task
    unaware.start_workers(number=1, queue="dl", block=False)
    try:
        (job,) = live.park("dl", "again")
        assert wait_until(lambda: unaware.broker.list_dead_letters() != [])
    finally:
        unaware.stop_workers()
    aware = Engine(RedisBroker(redis_url), namespace="browser")
    aware.attach_tasks(_tasks(live.gate))
    aware.start_workers(number=1, queue="dl", block=False)
    try:
        page.goto(live.url + "/dead-letters")
        row = page.locator(f'tr[data-dead="{job.id}"]')
        expect(row).to_contain_text("echo")
        row.get_by_role("button", name="Retry").click()
        expect(page.get_by_role("heading")).to_have_text("Retry 1 dead letter(s)?")
        page.get_by_role("button", name="Confirm: retry").click()
        expect(page.get_by_role("status")).to_have_text("Retried 1 dead letter(s)")
        page.goto(f"{live.url}/jobs/{job.id}")
        expect(page.locator("#job-state")).to_have_text("succeeded")
    finally:
        aware.stop_workers()


def test_a_script_in_a_payload_is_shown_as_text(page, live):
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    (job,) = live.park("xss", "<script>alert(1)</script>")
    page.goto(live.url + "/queues/xss")
    expect(page.get_by_text('[["<script>alert(1)</script>"], {}]')).to_be_visible()
    with page.expect_response(lambda r: "partial=1" in r.url):  # a live refresh too
        pass
    page.goto(f"{live.url}/jobs/{job.id}")
    expect(page.get_by_text('[["<script>alert(1)</script>"], {}]')).to_be_visible()
    assert dialogs == []


def test_not_found_forbidden_and_unauthorized(page, browser, live, serve_dashboard):
    response = page.goto(live.url + "/jobs/no-such-job")
    assert response.status == 404
    expect(page.get_by_role("heading")).to_have_text("Not found")
    read_only = serve_dashboard(live.engine.broker)
    page.goto(read_only.url + "/")
    expect(page.get_by_text("read-only")).to_be_visible()
    refused = page.request.post(read_only.url + "/api/dead-letters/retry", data={})
    assert refused.status == 403
    guarded = serve_dashboard(live.engine.broker, basic_auth=("ada", "s3cret"))
    assert page.request.get(guarded.url + "/").status == 401  # a browser shows no 401 page
    context = browser.new_context(http_credentials={"username": "ada", "password": "s3cret"})
    try:
        allowed = context.new_page()
        assert allowed.goto(guarded.url + "/").status == 200
        expect(allowed.get_by_role("heading", name="Overview")).to_be_visible()
    finally:
        context.close()


def test_a_redis_outage_shows_a_banner_until_it_is_over(page, serve_dashboard):
    with RedisServer() as server:
        broker = RedisBroker(server.url)
        broker.set_namespace("outage")
        dashboard = serve_dashboard(broker, poll_interval=POLL)
        try:
            page.goto(dashboard.url)
            banner = page.locator("#outage")
            expect(page.get_by_role("heading", name="Overview")).to_be_visible()
            expect(banner).to_be_hidden()
            server.stop()
            expect(banner).to_be_visible()
            server.restart()
            expect(banner).to_be_hidden()
            expect(page.get_by_role("heading", name="Overview")).to_be_visible()
        finally:
            broker.stop()


def test_a_facade_jobs_result_and_error_show_on_their_pages(page, serve_dashboard):
    import spinach_compat
    from spinach_compat import _state
    from spinach_compat.bin.dashboard import result_lookup

    previous = _state._current_app
    app = spinach_compat.Celery("browserproj", broker="memory://", backend="memory://")
    try:

        @app.task(name="double")
        def double(x):
            return 2 * x

        @app.task(name="refuse")
        def refuse():
            raise PermissionError("not <yours>")

        app.start_worker(concurrency=2, block=False)
        ok, bad = double.delay(21), refuse.delay()
        assert ok.get(timeout=WAIT_TIMEOUT) == 42
        with pytest.raises(PermissionError):
            bad.get(timeout=WAIT_TIMEOUT)
        lookup = result_lookup(app)
        dashboard = serve_dashboard(app.engine.broker, results=lookup, poll_interval=POLL)
        page.goto(f"{dashboard.url}/jobs/{ok.id}")
        result = page.locator("#result")
        expect(result).to_contain_text("SUCCESS")
        expect(result).to_contain_text("42")
        page.goto(f"{dashboard.url}/jobs/{bad.id}")
        expect(result).to_contain_text("FAILURE")
        expect(result).to_contain_text("PermissionError: not <yours>")
        expect(page.locator("#job-state")).to_have_text("failed")
    finally:
        app.stop_worker()
        _state._current_app = previous
