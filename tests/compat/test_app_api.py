"""The app API projects call at import time: current_task, the broker connection, refused
kombu publishing and bootsteps, and Celery's naming of tasks in a ``__main__`` script."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import kombu
import pytest
from kombu.exceptions import OperationalError

from spinach_compat import _state
from spinach_compat.exceptions import UnsupportedFeature
from tests.support.redis_server import free_port

from .conftest import WAIT

ROOT = Path(__file__).resolve().parents[2]

# -- current_task, current_worker_task -------------------------------------------------------


def test_current_task_and_current_worker_task_eagerly(eager_app):
    app, seen = eager_app, {}

    @app.task
    def inner():
        seen["inner"] = (app.current_task.name, getattr(app.current_worker_task, "name", None))

    @app.task
    def outer():
        inner()  # called directly: not a worker task
        seen["outer"] = (app.current_task.name, getattr(app.current_worker_task, "name", None))

    outer.delay()  # eager: run by apply(), as a worker would (Celery's rule)
    assert seen == {"inner": (inner.name, outer.name), "outer": (outer.name, outer.name)}
    outer()
    assert seen == {"inner": (inner.name, None), "outer": (outer.name, None)}
    assert app.current_task is None and app.current_worker_task is None


def test_current_task_and_current_worker_task_on_a_worker(app, run_worker):
    @app.task
    def inner():
        return [app.current_task.name, app.current_worker_task.name]

    @app.task
    def outer():
        return [app.current_task.name, app.current_worker_task.name, inner()]

    run_worker()
    assert outer.delay().get(timeout=WAIT) == [outer.name, outer.name, [inner.name, outer.name]]
    assert app.current_task is None and app.current_worker_task is None


# -- the broker connection -------------------------------------------------------------------


def test_connection_is_kombus_to_the_broker(impl, redis_url):
    app = impl.Celery("conn", broker=redis_url, set_as_current=False)
    app.conf.broker_transport_options = {"visibility_timeout": 30}
    for connect in (app.connection, app.broker_connection, app.connection_for_write,
                    app.connection_for_read):  # fmt: skip
        with connect() as conn:
            assert isinstance(conn, kombu.Connection)
            expected = (kombu.Connection(redis_url).as_uri(), "redis", 4.0)
            assert (conn.as_uri(), conn.transport_cls, conn.connect_timeout) == expected
            assert conn.transport_options == {"visibility_timeout": 30}
            conn.ensure_connection(max_retries=1)
            assert conn.default_channel.client.ping()
    with app.connection_or_acquire() as conn:
        assert conn.default_channel.client.ping()


def test_connection_to_a_broker_down_fails_the_health_check(impl):
    url = f"redis://127.0.0.1:{free_port()}/0"
    app = impl.Celery("down", broker=url, set_as_current=False)
    with app.connection() as conn, pytest.raises(OperationalError):
        conn.ensure_connection(max_retries=1, interval_start=0, interval_step=0)


def test_kombu_publishing_and_bootsteps_are_refused(app):
    for name in ("amqp", "pool", "producer_pool"):
        with pytest.raises(UnsupportedFeature, match=f"Celery.{name} is not .*apply_async"):
            getattr(app, name)
    assert app.steps["worker"] == set() and len(app.steps["consumer"]) == 0
    with pytest.raises(UnsupportedFeature, match=r"app.steps\['worker'\].*bootsteps"):
        app.steps["worker"].add(object)
    with pytest.raises(UnsupportedFeature, match="bootsteps"):
        app.steps["consumer"].update([object])
    with pytest.raises(UnsupportedFeature, match="bootsteps"):
        app.steps.setdefault("worker", set()).add(object)
    with pytest.raises(UnsupportedFeature, match="bootsteps"):
        app.steps["worker"] = {object}
    assert app.steps["worker"] == set()


# -- naming in a __main__ script ---------------------------------------------------------------

NAMES_SCRIPT = """
import json, sys
if sys.argv[1] == "celery":
    from celery import Celery, shared_task
else:
    from spinach_compat import Celery, shared_task

app = Celery("x", broker="memory://")
unnamed = Celery(broker="memory://", set_as_current=False)

@app.task
def a():
    return 1

@unnamed.task(shared=False)  # Celery shares tasks of @app.task with every app
def b():
    return 2

@shared_task
def s():
    return 3

class K(app.Task):
    def run(self):
        return 4

k = app.register_task(K())
print(json.dumps([
    a.name, b.name, s.name, k.name, app.gen_task_name("f", "__main__"),
    app.gen_task_name("f", "os.path"), app.gen_task_name("f", "not.imported"),
    unnamed.gen_task_name("f", "__main__"), sorted(n for n in app.tasks if "celery." not in n),
]))
"""


def _run_script(path: Path, *args: str, env: dict | None = None) -> str:
    environment = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    environment.pop("DJANGO_SETTINGS_MODULE", None)
    done = subprocess.run(
        [sys.executable, path.name, *args], capture_output=True, text=True, cwd=path.parent,
        env=environment, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.parametrize("implementation", ["celery", "spinach_compat"])
def test_tasks_of_a_main_script_are_named_after_the_app(tmp_path, implementation):
    pytest.importorskip(implementation)
    script = tmp_path / "x.py"
    script.write_text(NAMES_SCRIPT)
    names = json.loads(_run_script(script, implementation))
    assert names == [
        "x.a", "__main__.b", "x.s", "x.K", "x.f", "posixpath.f", "not.imported.f", "__main__.f",
        ["x.K", "x.a", "x.s"],
    ]  # fmt: skip


SENDER_SCRIPT = """
import os
from spinach_compat import Celery

app = Celery("mainsent", broker=os.environ["BROKER"], backend=os.environ["BROKER"])

@app.task
def double(n):
    return n * 2

if __name__ == "__main__":
    print(double.name, double.delay(21).get(timeout=float(os.environ["WAIT"])))
"""


def test_a_main_script_reaches_the_worker_of_its_module(tmp_path, redis_url, monkeypatch):
    """``python mainsent.py`` sends; a worker that imported ``mainsent`` runs the task."""
    script = tmp_path / "mainsent.py"
    script.write_text(textwrap.dedent(SENDER_SCRIPT))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("BROKER", redis_url)
    monkeypatch.delitem(sys.modules, "mainsent", raising=False)
    previous = _state._current_app
    worker_app = importlib.import_module("mainsent").app
    try:
        worker_app.start_worker(concurrency=1, block=False)
        out = _run_script(script, env={"WAIT": str(WAIT)})
    finally:
        worker_app.stop_worker()
        _state._current_app = previous
    assert out.split() == ["mainsent.double", "42"]


# -- @app.task(shared=True) reaches the apps finalized later --------------------------------

SHARED_SCRIPT = """
import json, sys
from importlib import import_module
Celery = import_module(sys.argv[1]).Celery

early = Celery("early", broker="memory://", set_as_current=False)
early_finalized = Celery("done", broker="memory://", set_as_current=False)
early_finalized.finalize()
app = Celery("x", broker="memory://")

@app.task(name="t.shared")
def shared():
    return 1

@app.task(name="t.private", shared=False)
def private():
    return 2

later = Celery("later", broker="memory://", set_as_current=False)
print(json.dumps([
    sorted(n for n in one.tasks if n.startswith("t."))
    for one in (early, early_finalized, later)
] + [later.tasks["t.shared"].app is later, later.tasks["t.shared"].delay.__self__.app is later]))
"""


@pytest.mark.parametrize("implementation", ["celery", "spinach_compat"])
def test_app_tasks_are_shared_with_apps_finalized_later(tmp_path, implementation):
    pytest.importorskip(implementation)
    script = tmp_path / "shared.py"
    script.write_text(SHARED_SCRIPT)
    seen = json.loads(_run_script(script, implementation))
    assert seen == [["t.shared"], [], ["t.shared"], True, True]
