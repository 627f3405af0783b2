"""What a project does with its results, one command per process, printing JSON:

``migrate`` (with the cache table and a superuser); ``run`` (sends tasks, waits for their
results, saves and restores a group, forgets a result: what it saw and the rows written);
``held`` (``get()`` woken by the worker's notification); ``admin ID...`` (the admin's
changelist of TaskResult, as the superuser); ``cache`` (``run`` with ``django-cache``: the
cache entries); ``connections`` (the connections each worker thread opened); ``cleanup``
(expired rows deleted; a pickled row read).
``RESULTS_IMPL=spinach_compat`` runs it under the ``celery`` import shim.
"""

import json
import os
import sys
import threading
import uuid

if os.environ.get("RESULTS_IMPL") == "spinach_compat":
    import spinach_compat

    spinach_compat.install_as_celery()

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.compat.results_proj.settings")

import django

django.setup()

from celery import chord  # noqa: E402
from django.core.management import call_command  # noqa: E402

from tests.compat.results_proj import tasks  # noqa: E402
from tests.compat.results_proj.app import app  # noqa: E402

WAIT = 30  #: seconds a result is waited for
ROW_FIELDS = (
    "task_id", "task_name", "task_args", "task_kwargs", "periodic_task_name", "status",
    "worker", "content_type", "content_encoding", "result", "traceback", "meta",
)  # fmt: skip


def row(task_id):
    """The TaskResult row of ``task_id`` as JSON, None if there is none."""
    from django_celery_results.models import TaskResult

    found = TaskResult.objects.filter(task_id=task_id).first()
    if found is None:
        return None
    fields = {name: getattr(found, name) for name in ROW_FIELDS}
    for name in ("date_created", "date_started", "date_done"):
        fields[name] = getattr(found, name) is not None
    return fields


def migrate():
    call_command("migrate", verbosity=0)
    call_command("createcachetable", verbosity=0)
    from django.contrib.auth.models import User

    User.objects.create_superuser("admin", "admin@example.com", "secret")
    return {"migrated": True}


def run():
    added = tasks.add.delay(2, 3, scale=2)
    failed = tasks.fail.delay("boom")
    seen = {"add": added.get(timeout=WAIT)}
    try:
        failed.get(timeout=WAIT)
    except ValueError as exc:
        seen["fail"] = repr(exc)
    seen["fail_state"] = failed.state
    seen["fail_traceback"] = failed.traceback
    seen["add_meta"] = {k: getattr(added, k) for k in ("name", "args", "kwargs", "state")}
    other = tasks.add.delay(1, 2)
    other.get(timeout=WAIT)
    group = app.GroupResult(str(uuid.uuid4()), [added, other])
    group.save()
    restored = app.GroupResult.restore(group.id)
    seen["group"] = [r.id for r in restored.results] == [added.id, other.id]
    joined = chord([tasks.add.s(1, 1), tasks.add.s(2, 2)])(tasks.total.s())
    seen["chord"] = joined.get(timeout=WAIT)
    opaque = tasks.opaque.delay()
    try:
        opaque.get(timeout=WAIT)
    except Exception as exc:  # the result could not be encoded: the task failed
        seen["opaque"] = type(exc).__name__
    periodic = tasks.add.apply_async((1, 1), headers={"periodic_task_name": "every-minute"})
    periodic.get(timeout=WAIT)  # sent as django-celery-beat's entries are
    hidden = tasks.add.apply_async((4, 5), {"scale": 3}, argsrepr="(<x>, <y>)", kwargsrepr="")
    hidden.get(timeout=WAIT)
    seen["rows"] = {"add": row(added.id), "fail": row(failed.id), "periodic": row(periodic.id),
                    "opaque": row(opaque.id), "hidden": row(hidden.id)}  # fmt: skip
    seen["group_row"] = _group_row(group.id)
    group.delete()
    seen["group_deleted"] = app.GroupResult.restore(group.id) is None
    forgotten = tasks.add.delay(1, 1)
    forgotten.get(timeout=WAIT)
    forgotten.forget()
    seen["forgotten"] = row(forgotten.id)
    return seen


def _group_row(group_id):
    from django_celery_results.models import GroupResult

    found = GroupResult.objects.filter(group_id=group_id).first()
    if found is None:
        return None
    fields = ("content_type", "content_encoding", "result")
    return {name: getattr(found, name) for name in fields}


def held():
    """``get()`` with no safety-net read before an hour: only a notification wakes it."""
    import redis

    key = f"release-{uuid.uuid4()}"
    result = tasks.held.delay(key)
    client = redis.Redis.from_url(os.environ["RESULTS_BROKER_URL"])
    channel = app.backend.notice_key(result.id)
    releaser = threading.Thread(target=_release, args=(client, channel, key))
    releaser.start()
    value = result.get(interval=3600)
    releaser.join()
    return {"held": value, "row": row(result.id)}


def _release(client, channel, key):
    """Push ``key`` once ``get()`` listens on ``channel``."""
    idle = threading.Event()  # never set: a pause between two looks
    for _ in range(WAIT * 100):
        if client.pubsub_numsub(channel)[0][1]:
            break
        idle.wait(0.01)
    client.rpush(key, "go")


def admin(*task_ids):
    from django.test import Client

    client = Client()
    client.login(username="admin", password="secret")
    page = client.get("/admin/django_celery_results/taskresult/")
    text = page.content.decode()
    return {"status": page.status_code, "shown": [task_id in text for task_id in task_ids]}


def cache():
    from django.conf import settings
    from django.core.cache import caches
    from django_celery_results.models import TaskResult

    store = caches[settings.CELERY_CACHE_BACKEND]
    added = tasks.add.delay(2, 3)
    failed = tasks.fail.delay("boom")
    seen = {"add": added.get(timeout=WAIT)}
    try:
        failed.get(timeout=WAIT)
    except ValueError as exc:
        seen["fail"] = repr(exc)
    seen["fail_traceback"] = failed.traceback
    seen["entries"] = {name: store.get(f"celery-task-meta-{result.id}")
                       for name, result in (("add", added), ("fail", failed))}  # fmt: skip
    group = app.GroupResult(str(uuid.uuid4()), [added])
    group.save()
    seen["group"] = [r.id for r in app.GroupResult.restore(group.id).results] == [added.id]
    group.delete()
    seen["group_deleted"] = app.GroupResult.restore(group.id) is None
    added.forget()
    seen["forgotten"] = store.get(f"celery-task-meta-{added.id}")
    seen["rows"] = TaskResult.objects.count()
    return seen


def cleanup():
    """Two rows, one older than ``result_expires``: which remain after ``cleanup()``."""
    from datetime import timedelta

    from django.utils import timezone
    from django_celery_results.models import TaskResult

    for name in ("old", "new"):
        TaskResult.objects.create(task_id=f"cleanup-{name}", status="SUCCESS")
    old = timezone.now() - app.conf.result_expires - timedelta(minutes=1)
    TaskResult.objects.filter(task_id="cleanup-old").update(date_done=old)
    app.backend.cleanup()
    remain = TaskResult.objects.filter(task_id__startswith="cleanup-")
    return {"remain": sorted(remain.values_list("task_id", flat=True)), **pickled()}


def pickled():
    """A row another program wrote with pickle: its state is read, its result refused."""
    import base64
    import pickle

    from django_celery_results.models import TaskResult

    TaskResult.objects.create(
        task_id="pickled", status="SUCCESS", content_type="application/x-python-serialize",
        content_encoding="binary", result=base64.b64encode(pickle.dumps(42)).decode(),
    )  # fmt: skip
    result = app.AsyncResult("pickled")
    try:
        value = result.result
    except Exception as exc:
        value = type(exc).__name__
    return {"pickled_state": result.state, "pickled_result": value}


def connections():
    return [tasks.connections_opened.delay().get(timeout=WAIT) for _ in range(4)]


COMMANDS = {"migrate": migrate, "run": run, "held": held, "admin": admin, "cache": cache,
            "connections": connections, "cleanup": cleanup}  # fmt: skip

if __name__ == "__main__":
    print(json.dumps(COMMANDS[sys.argv[1]](*sys.argv[2:]), default=str))
