"""django-celery-results on the facade: ``result_backend='django-db'`` and ``'django-cache'``
in a Django project set up as that package's documentation says, its code importing
``celery`` (the facade through the import shim, ``SPINACH_AS_CELERY=1``).

Real worker processes over Redis and a SQLite database; the project's side (sending tasks,
reading results and rows, the admin) runs in subprocesses too (``results_proj.client``), as
one process has one Django settings module. The rows the facade writes are compared field
by field with those real Celery 5.7 writes for the same tasks and settings.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from spinach_compat.exceptions import ImproperlyConfigured

from .worker_process import ROOT, WorkerProcess

pytest.importorskip("django_celery_results")

PROJECT = "tests.compat.results_proj"
#: Set for the subprocesses: another test module may leave its own in os.environ.
SETTINGS = f"{PROJECT}.settings"
CLIENT_TIMEOUT = 90.0  #: seconds a client command may take (it waits 30 s at most per result)
#: Redis databases of this module's workers (other tests flush db 0 and use a few others).
DBS = {"celery": 11, "spinach_compat": 12, "cache": 13, "refused": 14}
#: Row fields that differ by nature between two runs or two implementations.
UNCOMPARED = {"task_id", "worker", "traceback"}


class ResultsWorker(WorkerProcess):
    """A worker of the project: real Celery, or the facade under the import shim."""

    def __init__(self, impl: str, url: str, log: Path, env: dict[str, str]):
        args = ["-c", "2", "-l", "info"]
        if impl == "celery":  # its command() adds -P threads
            args += ["--without-gossip", "--without-mingle"]
        else:
            args += ["-P", "threads"]
        super().__init__(impl, url, args, log, project=f"{PROJECT}.app")
        self.extra = env

    def environment(self) -> dict[str, str]:
        env = {**super().environment(), **self.extra, "RESULTS_BROKER_URL": self.url,
               "DJANGO_SETTINGS_MODULE": SETTINGS}  # fmt: skip
        env.pop("SPINACH_AS_CELERY", None)
        if self.impl == "spinach_compat":
            env["SPINACH_AS_CELERY"] = "1"
        return env


class Project:
    """One database, one Redis db, one worker; the client's commands run against them."""

    def __init__(self, impl: str, url: str, tmp: Path, **env: str):
        self.impl, self.url = impl, url
        self.env = {"RESULTS_DB": str(tmp / "db.sqlite3"), **env}
        self.log = tmp / "worker.log"
        self.worker: ResultsWorker | None = None

    def client(self, *args: str) -> Any:
        """``python -m results_proj.client ARGS``: its JSON output."""
        env = {**os.environ, **self.env, "RESULTS_BROKER_URL": self.url,
               "RESULTS_IMPL": self.impl, "PYTHONPATH": str(ROOT),
               "DJANGO_SETTINGS_MODULE": SETTINGS}  # fmt: skip
        env.pop("SPINACH_AS_CELERY", None)
        done = subprocess.run([sys.executable, "-m", f"{PROJECT}.client", *args], cwd=ROOT,
                              env=env, capture_output=True, text=True,
                              timeout=CLIENT_TIMEOUT)  # fmt: skip
        assert done.returncode == 0, f"{done.stderr}\n{self.describe()}"
        return json.loads(done.stdout)

    def migrated(self, template: Path) -> Project:
        """Its database: a copy of ``template``, migrated."""
        shutil.copy(template, self.env["RESULTS_DB"])
        return self

    def start(self) -> Project:
        """Start its worker (stopped by ``stop`` even when it never became ready)."""
        self.worker = ResultsWorker(self.impl, self.url, self.log, self.env)
        self.worker.start()
        return self

    def stop(self) -> bool:
        """Stop its worker, if it started: whether it exited with status 0."""
        if self.worker is None or self.worker.process is None:
            return True
        return self.worker.stop() == 0

    def describe(self) -> str:
        return self.worker.describe() if self.worker is not None else ""


@pytest.fixture(scope="module")
def migrated(redis_server, tmp_path_factory) -> Path:
    """A database migrated once (``migrate``, ``createcachetable``, a superuser), copied by
    each project."""
    template = Project("spinach_compat", redis_server.url_for(DBS["refused"]),
                       tmp_path_factory.mktemp("template"))  # fmt: skip
    template.client("migrate")
    return Path(template.env["RESULTS_DB"])


@pytest.fixture(scope="module")
def project(redis_server, tmp_path_factory, migrated) -> Iterator:
    """Start a project (``impl``, ``name`` of its Redis db, settings); stopped at the end."""
    started: list[Project] = []

    def start(impl: str, name: str, **env: str) -> Project:
        url = redis_server.url_for(DBS[name])
        with redis_server.client(db=DBS[name]) as client:
            client.flushdb()
        each = Project(impl, url, tmp_path_factory.mktemp(name), **env)
        started.append(each)
        return each.migrated(migrated).start()

    yield start
    failed = [each.describe() for each in started if not each.stop()]
    assert not failed, failed


@pytest.fixture(scope="module")
def facade(project) -> Project:
    return project("spinach_compat", "spinach_compat")


@pytest.fixture(scope="module")
def runs(project, facade) -> dict[str, Any]:
    """What the client saw and the rows written, with real Celery and with the facade."""
    pytest.importorskip("celery")
    celery = project("celery", "celery")
    seen = {"celery": celery.client("run"), "spinach_compat": facade.client("run")}
    assert celery.stop(), celery.describe()
    celery.worker = None
    return seen


# -- django-db -------------------------------------------------------------------------------


def test_the_rows_are_those_celery_writes(runs) -> None:
    for name in ("add", "fail", "periodic", "hidden"):
        ours, theirs = runs["spinach_compat"]["rows"][name], runs["celery"]["rows"][name]
        for field in set(theirs) - UNCOMPARED:
            assert ours[field] == theirs[field], (name, field)
        assert ours["worker"].startswith("celery@")
    assert runs["spinach_compat"]["rows"]["add"]["task_args"] == '"(2, 3)"'
    hidden = runs["spinach_compat"]["rows"]["hidden"]  # argsrepr/kwargsrepr, not the arguments
    assert (hidden["task_args"], hidden["task_kwargs"]) == ('"(<x>, <y>)"', '""')
    assert runs["spinach_compat"]["rows"]["periodic"]["periodic_task_name"] == "every-minute"
    ours, theirs = runs["spinach_compat"]["rows"]["opaque"], runs["celery"]["rows"]["opaque"]
    assert ours["status"] == theirs["status"] == "FAILURE"  # the result cannot be encoded
    assert json.loads(ours["result"])["exc_type"] == json.loads(theirs["result"])["exc_type"]
    traceback = runs["spinach_compat"]["rows"]["fail"]["traceback"]
    assert traceback.startswith("Traceback") and traceback.endswith("ValueError: boom\n")


def test_results_are_read_back_from_the_rows(runs) -> None:
    ours, theirs = runs["spinach_compat"], runs["celery"]
    assert (ours["add"], ours["fail"], ours["fail_state"]) == (10, "ValueError('boom')", "FAILURE")
    assert ours["fail_traceback"] == ours["rows"]["fail"]["traceback"]
    assert ours["add_meta"] == {**theirs["add_meta"], "name": "results.add"}  # Celery: None
    assert ours["group"] and ours["group_deleted"]
    assert ours["group_row"]["content_type"] == theirs["group_row"]["content_type"]
    assert ours["forgotten"] is None  # forget() deleted the row
    assert ours["opaque"] == theirs["opaque"] == "EncodeError"
    assert ours["chord"] == theirs["chord"] == 6  # counted in the broker; Celery: ChordCounter


def test_get_is_woken_by_the_broker_s_notice(facade) -> None:
    """``get(interval=3600)``: without the notice it would read the row again in an hour."""
    seen = facade.client("held")
    assert seen["held"] is True and seen["row"]["status"] == "SUCCESS"


def test_the_admin_lists_the_rows(runs, facade) -> None:
    ids = [row["task_id"] for row in runs["spinach_compat"]["rows"].values()]
    assert facade.client("admin", *ids) == {"status": 200, "shown": [True] * len(ids)}


def test_expired_rows_are_deleted_and_a_pickled_row_is_not_unpickled(facade) -> None:
    assert facade.client("cleanup") == {
        "remain": ["cleanup-new"], "pickled_state": "SUCCESS",
        "pickled_result": "ContentDisallowed",  # accept_content is JSON only
    }  # fmt: skip


def test_each_task_starts_and_ends_with_old_connections_closed(facade) -> None:
    opened: dict[str, list[int]] = {}
    for thread, count in facade.client("connections"):
        opened.setdefault(thread, []).append(count)
    assert any(len(counts) > 1 for counts in opened.values()), opened
    for counts in opened.values():  # a thread's next task opened a new connection
        assert counts == sorted(set(counts)), opened


# -- django-cache ----------------------------------------------------------------------------


def test_django_cache_keeps_results_in_the_django_cache(project) -> None:
    cached = project("spinach_compat", "cache", RESULTS_BACKEND="django-cache")
    seen = cached.client("cache")
    assert (seen["add"], seen["fail"]) == (5, "ValueError('boom')")
    add, fail = seen["entries"]["add"], seen["entries"]["fail"]
    assert (add["status"], add["result"], add["name"], add["args"]) == (
        "SUCCESS", 5, "results.add", [2, 3])  # fmt: skip
    assert fail["status"] == "FAILURE" and fail["traceback"] == seen["fail_traceback"]
    assert fail["result"] == {"exc_type": "ValueError", "exc_message": ["boom"],
                              "exc_module": "builtins"}  # fmt: skip
    assert seen["group"] and seen["group_deleted"] and seen["forgotten"] is None
    assert seen["rows"] == 0  # nothing in the database


# -- what is refused -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "migrate", "says"),
    [
        ({}, False, "result_backend='django-db': the table django_celery_results_taskresult "
                    "does not exist: run `python manage.py migrate django_celery_results`"),
        ({"RESULTS_WITHOUT_APP": "1"}, True,
         "result_backend='django-db': add 'django_celery_results' to INSTALLED_APPS"),
        ({"RESULTS_BACKEND": "django-cache"}, False,
         "result_backend='django-cache': the table results_cache does not exist: run "
         "`python manage.py createcachetable`"),
        ({"RESULTS_BACKEND": "django-cache", "RESULTS_CACHE": "nope"}, True,
         "result_backend='django-cache': cache_backend='nope' is not an alias of Django's "
         "CACHES (default, local)"),
    ],
)  # fmt: skip
def test_the_worker_refuses_to_start_with_one_line(redis_server, tmp_path, migrated, env,
                                                   migrate, says) -> None:  # fmt: skip
    project = Project("spinach_compat", redis_server.url_for(DBS["refused"]), tmp_path, **env)
    if migrate:
        project.migrated(migrated)
    worker = ResultsWorker("spinach_compat", project.url, project.log, project.env)
    command = worker.command()
    done = subprocess.run(command, cwd=ROOT, env=worker.environment(), capture_output=True,
                          text=True, timeout=CLIENT_TIMEOUT)  # fmt: skip
    assert done.returncode == 1, done.stderr
    [line] = done.stderr.strip().splitlines()
    assert line.startswith(f"ERROR: {says}"), line


@pytest.mark.parametrize("name", ["django-redis", "django_celery_results.backends:Nope"])
def test_an_unknown_django_backend_is_refused_by_name(make_app, name) -> None:
    app = make_app(backend=name)
    with pytest.raises(ImproperlyConfigured, match=rf"result_backend={name!r} is not a backend "
                       "of django-celery-results: use 'django-db'"):  # fmt: skip
        _ = app.backend
