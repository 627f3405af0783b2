"""The dashboard's JSON API and pages through Starlette's test client, on both brokers."""

from __future__ import annotations

import base64
import re
from datetime import datetime, timedelta, timezone

import pytest

from spinach import Engine, MemoryBroker, Tasks
from spinach.brokers.base import WorkerInfo
from spinach.history import HistoryRecord
from spinach.job import Job

TOKEN = re.compile(r'name="token" value="([^"]+)"')


@pytest.fixture(params=["memory", "redis"])
def broker(request):
    """A broker of the parametrized kind, in namespace "dash"."""
    if request.param == "memory":
        broker = MemoryBroker()
        broker.set_namespace("dash")
        return broker
    return request.getfixturevalue("redis_broker_factory")(namespace="dash")


def _engine(broker) -> Engine:
    tasks = Tasks()

    @tasks.task(name="echo")
    def echo(text: str) -> None: ...

    engine = Engine(broker, namespace="dash")
    engine.attach_tasks(tasks)
    return engine


def _dead_letter(broker, task: str = "gone", queue: str = "parked") -> Job:
    """A job of ``task`` dead-lettered by a worker that fetched it from ``queue``."""
    job = Job(task, queue, broker.now(), 0, ["<b>x</b>"])
    broker.enqueue_jobs([job])
    broker.register_worker(WorkerInfo(id=broker.worker_id, queues=[queue]))
    (fetched,) = broker.get_jobs_from_queue(queue, 1)
    broker.dead_letter(fetched, f"task '{task}' is unknown")
    broker.deregister_worker()
    return job


def test_overview_counts_ready_future_and_running(broker, make_client):
    engine = _engine(broker)
    for text in ("a", "b", "c"):
        engine.schedule("echo", text)
    later = datetime.now(timezone.utc) + timedelta(hours=1)
    engine.schedule_at("echo", later, "d")
    broker.register_worker(WorkerInfo(id=broker.worker_id, queues=["spinach"], threads=3))
    broker.get_jobs_from_queue("spinach", 1)
    data = make_client(broker).get("/api/overview").json()
    assert data["queues"] == [
        {"name": "spinach", "ready": 2, "future": 1, "running": 1,
         "finished_per_minute": [0, 0, 0, 0, 0]},
    ]  # fmt: skip
    assert (data["workers_alive"], data["threads"], data["dead_letters"]) == (1, 3, 0)
    (worker,) = make_client(broker).get("/api/workers").json()["workers"]
    (running,) = worker["jobs"]
    assert running["task"] == "echo" and running["run_time"] >= 0


def test_queue_pages_and_unknown_queue_or_job_is_404(broker, make_client):
    engine = _engine(broker)
    jobs = [engine.schedule("echo", str(i)) for i in range(55)]
    client = make_client(broker)
    first = client.get("/api/queues/spinach").json()
    assert [j["id"] for j in first["items"]] == [j.id for j in jobs[:50]]
    assert first["total"] == 55
    second = client.get("/api/queues/spinach?page=1").json()
    assert [j["args"] for j in second["items"]] == [f'[["{i}"], {{}}]' for i in range(50, 55)]
    for path in ("/queues/nope", "/jobs/nope", "/nothing/here"):
        response = client.get(path)
        assert response.status_code == 404
        assert "<h1>Not found</h1>" in response.text and "Traceback" not in response.text
        assert client.get("/api" + path).status_code == 404


def test_job_page_finds_queued_scheduled_dead_and_finished_jobs(broker, make_client):
    engine = _engine(broker)
    queued = engine.schedule("echo", "q")
    later = engine.schedule_at("echo", datetime.now(timezone.utc) + timedelta(hours=1), "s")
    dead = _dead_letter(broker)
    record = HistoryRecord(
        id="done1", task="echo", queue="spinach", status="failed", attempts=2,
        scheduled_at=0.0, started_at=1.0, finished_at=2.0, duration=1.0, args='[["x"], {}]',
        error="ValueError: no", logs=["one <line>", "two"],
    )  # fmt: skip
    broker.record_history([record], 3600 * 24 * 365 * 100, 10)
    client = make_client(broker)
    states = {j: client.get(f"/api/jobs/{j}").json()["state"] for j in (queued.id, later.id)}
    assert states == {queued.id: "queued", later.id: "waiting"}
    assert client.get(f"/api/jobs/{dead.id}").json()["reason"] == "task 'gone' is unknown"
    page = client.get("/jobs/done1").text
    assert "ValueError: no" in page and "one &lt;line&gt;\ntwo" in page
    search = client.get("/api/search?task=echo&state=failed").json()["items"]
    assert [j["id"] for j in search] == ["done1"]
    assert client.get(f"/search?id={queued.id}").headers["location"] == f"/jobs/{queued.id}"
    (by_id,) = client.get(f"/api/search?id={queued.id}").json()["items"]
    assert by_id["id"] == queued.id and by_id["state"] == "queued"
    assert client.get("/api/search?id=nope").json()["items"] == []


def test_job_data_is_escaped_in_pages(broker, make_client):
    engine = _engine(broker)
    job = engine.schedule("echo", "<script>alert(1)</script>")
    client = make_client(broker)
    for path in ("/queues/spinach", f"/jobs/{job.id}", "/search?state=queued"):
        text = client.get(path).text
        assert "<script>alert" not in text and "&lt;script&gt;alert(1)&lt;/script&gt;" in text


def test_actions_are_refused_when_read_only(broker, make_client):
    _dead_letter(broker)
    client = make_client(broker)
    assert client.post("/api/dead-letters/retry", json={}).status_code == 403
    form = {"token": "x", "confirm": "yes"}
    response = client.post("/dead-letters/purge", data=form)
    assert response.status_code == 403 and "--allow-actions" in response.text
    assert len(broker.list_dead_letters()) == 1


def test_form_actions_need_confirmation_and_the_page_token(broker, make_client):
    dead = _dead_letter(broker)
    client = make_client(broker, allow_actions=True)
    (listed,) = client.get("/api/dead-letters").json()["dead_letters"]
    assert (listed["id"], listed["task"], listed["queue"]) == (dead.id, "gone", "parked")
    token = TOKEN.search(client.get("/dead-letters").text).group(1)
    asked = client.post("/dead-letters/retry", data={"token": token, "ids": dead.id})
    assert asked.status_code == 200 and 'name="confirm" value="yes"' in asked.text
    forged = client.post("/dead-letters/retry", data={"token": "forged", "confirm": "yes"})
    assert forged.status_code == 403
    assert len(broker.list_dead_letters()) == 1
    done = client.post(
        "/dead-letters/retry", data={"token": token, "ids": dead.id, "confirm": "yes"}
    )
    assert done.status_code == 303 and "Retried+1+dead+letter" in done.headers["location"]
    assert broker.list_dead_letters() == []
    assert [j.id for j in broker.queue_jobs("parked")] == [dead.id]


def test_api_actions_take_json(broker, make_client):
    _dead_letter(broker)
    _dead_letter(broker)
    client = make_client(broker, allow_actions=True)
    assert client.post("/api/dead-letters/purge", data={"ids": "x"}).status_code == 415
    assert client.post("/api/dead-letters/purge", json={"ids": [1]}).status_code == 400
    assert client.post("/api/dead-letters/purge", json={"ids": ["nope"]}).json() == {"purged": 0}
    assert client.post("/api/dead-letters/purge", json={}).json() == {"purged": 2}


def test_basic_auth_is_required_when_set(make_client):
    client = make_client(MemoryBroker(), basic_auth=("ada", "s3cret"))
    assert client.get("/api/overview").status_code == 401
    assert client.get("/static/dashboard.js").status_code == 401
    wrong = base64.b64encode(b"ada:guess").decode()
    assert client.get("/", headers={"Authorization": f"Basic {wrong}"}).status_code == 401
    assert client.get("/", auth=("ada", "s3cret")).status_code == 200


def test_static_assets_are_served_by_the_package(make_client):
    client = make_client(MemoryBroker())
    page = client.get("/").text
    assets = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert "/static/dashboard.js" in assets and "/static/dashboard.css" in assets
    assert all(a.startswith("/") and not a.startswith("//") for a in assets)  # no CDN
    script = client.get("/static/dashboard.js")
    assert script.status_code == 200 and client.get("/static/dashboard.css").status_code == 200
    for sink in (".innerHTML", ".outerHTML", "insertAdjacentHTML", "document.write", "eval("):
        assert sink not in script.text


def test_broker_outage_is_503_with_a_banner_and_masked_url(make_client, redis_server):
    from spinach.brokers.redis import RedisBroker
    from tests.support.redis_server import RedisServer

    with RedisServer(password="hunter2") as server:
        broker = RedisBroker(server.url)
        client = make_client(broker)
        assert client.get("/api/overview").status_code == 200
        server.stop()
        assert client.get("/api/overview").status_code == 503
        page = client.get("/")
        assert page.status_code == 503
        assert '<div id="outage" class="banner" role="alert">' in page.text
        assert "hunter2" not in page.text and ":**@127.0.0.1" in page.text
        server.restart()
        assert client.get("/api/overview").status_code == 200
        broker.stop()
