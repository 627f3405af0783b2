"""Stamping on real workers: ``tests.compat.stamping_proj`` (shaped as Celery's
``examples/stamping``) run by the facade's worker and by a real Celery 5.7 worker, each on
its own Redis db, with the same expected outcomes."""

from __future__ import annotations

import importlib
from types import SimpleNamespace
from uuid import uuid4

import pytest

from .worker_process import project_worker

WAIT = 30.0
TASKS = "tests.compat.stamping_proj.tasks"
DBS = {"spinach_compat": 9, "celery": 10}


@pytest.fixture(scope="module", params=["spinach_compat", "celery"])
def proj(request, redis_server, tmp_path_factory):
    """A worker of the project (facade, then real Celery) and a client app."""
    name = request.param
    log = tmp_path_factory.mktemp(name) / "worker.log"
    project = "tests.compat.stamping_proj"
    with project_worker(name, redis_server, DBS[name], log, ["-c", "4", "-l", "info"], project) as (
        worker, url,
    ):  # fmt: skip
        package = pytest.importorskip(name)
        canvas = importlib.import_module(f"{name}.canvas")
        app = package.Celery("stamping", broker=url, backend=url, set_as_current=False)
        yield SimpleNamespace(name=name, app=app, canvas=canvas, worker=worker)


def _sig(proj, name: str, *args, **options):
    return proj.app.signature(f"{TASKS}.{name}", args, **options)


def _monitoring(proj):
    class MonitoringId(proj.canvas.StampingVisitor):
        def on_signature(self, sig, **headers):
            return {"monitoring_id": uuid4().hex}

    return MonitoringId()


def test_a_stamped_group_of_chains_with_links_runs(proj):
    chains = []
    for n in (1, 2):
        chain = proj.canvas.chain(
            _sig(proj, "identity_task", f"foo{n}1", immutable=True),
            _sig(proj, "identity_task", f"foo{n}2", immutable=True),
        )
        chain.link(_sig(proj, "identity_task", f"link_foo{n}", immutable=True))
        chain.link_error(_sig(proj, "identity_task", f"link_error_foo{n}", immutable=True))
        chains.append(chain)
    group = proj.canvas.group(chains)
    group.stamp(_monitoring(proj))
    assert group.delay().get(timeout=WAIT) == ["foo12", "foo22"]


def test_tasks_stamping_their_replacement(proj):
    value, seen = _sig(proj, "identity", "sig1").delay().get(timeout=WAIT)
    assert value == "sig1"
    assert seen == {"argsrepr": "('sig1',)", "stamped_headers": ["monitoring_id"],
                    "link_stamps": []}  # fmt: skip


def test_a_workflow_revoked_by_stamped_header_before_it_runs(proj):
    canvas = proj.canvas
    header = canvas.group(_sig(proj, "identity_task", i) for i in range(1, 4))
    times_ten = canvas.chord(
        canvas.group(_sig(proj, "mul", 10) for _ in range(3)), _sig(proj, "xsum")
    )
    workflow = canvas.chain(header | _sig(proj, "xsum"), times_ten) | _sig(
        proj, "finish_unless_revoked"
    )
    workflow.stamp(_monitoring(proj))
    frozen = workflow.freeze()
    frozen.revoke_by_stamped_headers({"fate": "doomed"}, terminate=False)
    result = workflow.delay()
    assert result.id == frozen.id
    assert result.parent.get(timeout=WAIT) == 3 * (1 + 2 + 3) * 10
    with pytest.raises(Exception) as raised:
        result.get(timeout=WAIT)
    assert (type(raised.value).__name__, result.state) == ("TaskRevokedError", "REVOKED")
