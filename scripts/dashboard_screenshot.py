"""Take docs/dashboard.png: the dashboard's overview with some data, in headless chromium.

    .venv/bin/python scripts/dashboard_screenshot.py [OUTPUT]

Runs an engine on the in-process broker with a worker on two queues, finishes a few dozen
jobs (some fail), leaves jobs waiting in a queue no worker consumes and jobs due later,
one job running and one dead letter, then serves the dashboard on a free port and screenshots
its overview with Debian's chromium (``SPINACH_CHROMIUM``: another), launched as the browser
tests launch it (``tests/support/browser.py``). Needs the test extras and the checkout.
"""

from __future__ import annotations

import sys
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path

from playwright.sync_api import expect, sync_playwright

from spinach import Engine, MemoryBroker, Tasks
from spinach.brokers.base import WorkerInfo
from spinach.dashboard import DashboardServer, dashboard_source
from spinach.dashboard.app import Options

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.browser import CHROMIUM, CHROMIUM_ARGS  # noqa: E402  (the tests' browser)


def build(gate: threading.Event) -> Engine:
    """An engine whose tasks send emails, resize images (one in ten fails) and wait."""
    tasks = Tasks()

    @tasks.task(name="send_email", queue="emails")
    def send_email(to: str) -> None: ...

    @tasks.task(name="resize_image", queue="default")
    def resize_image(image_id: int) -> None:
        if image_id % 10 == 3:
            raise ValueError(f"image {image_id} is not a PNG")

    @tasks.task(name="build_report", queue="reports")
    def build_report(month: str) -> None:
        gate.wait(30)

    spin = Engine(MemoryBroker(), namespace="shop")
    spin.attach_tasks(tasks)
    return spin


def fill(spin: Engine, gate: threading.Event) -> None:
    """Finish jobs, then leave some waiting, some due later, one running, one dead."""
    spin.start_workers(number=4, queue=["emails", "default"], block=False)
    for i in range(30):
        spin.schedule("send_email", f"customer{i}@example.com")
        spin.schedule("resize_image", i)
    broker = spin.broker
    while len(broker.history(0, 100)) < 60:
        broker.wait_for_event(0.05)
    later = datetime.now(timezone.utc) + timedelta(hours=2)
    for month in ("2026-09", "2026-10", "2026-11"):
        spin.schedule("build_report", month)
        spin.schedule_at("send_email", later, f"reminder-{month}@example.com")
    peer = broker.peer()  # a second worker process: runs one report, dead-letters a job
    peer.register_worker(WorkerInfo(id=peer.worker_id, queues=["reports"], threads=2))
    assert len(peer.get_jobs_from_queue("reports", 1)) == 1  # it runs, as far as anyone sees
    spin.schedule_jobs([spin.build_job("send_email", None, ("x@example.com",), queue="legacy")])
    (orphan,) = peer.get_jobs_from_queue("legacy", 1)
    peer.dead_letter(orphan, "task 'send_email' is not known by worker of queue 'legacy'")


def main() -> int:
    output = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs" / "dashboard.png"
    gate = threading.Event()
    spin = build(gate)
    try:
        fill(spin, gate)
        with DashboardServer(dashboard_source(spin.broker), Options(namespace="shop")) as server:
            shoot(server.url, output)
    finally:
        gate.set()
        spin.stop_workers()
    print(f"wrote {output}")
    return 0


def shoot(url: str, output: Path) -> None:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        page = browser.new_page(viewport={"width": 1100, "height": 520})
        page.goto(url)
        expect(page.locator('tr[data-queue="reports"] .ready')).to_have_text("2")
        page.screenshot(path=str(output), full_page=True)
        browser.close()


if __name__ == "__main__":
    raise SystemExit(main())
