"""``delay_on_commit`` and ``apply_async_on_commit`` of ``DjangoTask``, the task class of
Django projects, on real Celery and on the facade: a task is sent once the transaction
commits (Django on SQLite), never if it rolls back, at once outside a transaction."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

django = pytest.importorskip("django")

SETTINGS = "tests.compat.django_proj.djproj.settings"  # one Django settings per process


@pytest.fixture(scope="module")
def django_env() -> Iterator[None]:
    """Django set up with the project's settings, ``DJANGO_SETTINGS_MODULE`` set (what
    selects the Django fix-up) while these tests run."""
    from django.conf import settings

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DJANGO_SETTINGS_MODULE", os.environ.get("DJANGO_SETTINGS_MODULE", SETTINGS))
        if not settings.configured:
            django.setup()
        assert settings.SETTINGS_MODULE == SETTINGS
        yield


@pytest.fixture
def django_task(impl) -> type:
    if impl.name == "celery":
        from celery.contrib.django.task import DjangoTask
    else:
        from spinach_compat.contrib.django.task import DjangoTask
    return DjangoTask


@pytest.fixture
def sent(impl) -> Iterator[list]:
    """(task name, args) of each message published, in order."""
    messages: list = []

    def on_publish(sender=None, body=None, **kwargs):
        messages.append((sender, list(body[0])))

    impl.signals.before_task_publish.connect(on_publish, weak=False)
    yield messages
    impl.signals.before_task_publish.disconnect(on_publish)


def test_the_django_fixup_makes_tasks_django_tasks(impl, django_env, django_task):
    app = impl.Celery("oncommit", broker="memory://", set_as_current=False)

    @app.task
    def task():
        return None

    assert issubclass(app.Task, django_task) and isinstance(task, django_task)
    custom = impl.Celery("custom", broker="memory://", task_cls=impl.Task, set_as_current=False)
    assert not issubclass(custom.Task, django_task)


def test_sent_after_commit_never_on_rollback_at_once_outside(impl, django_env, sent):
    from django.db import transaction

    app = impl.Celery("oncommit", broker="memory://", set_as_current=False)

    @app.task
    def notify(n):
        return n

    with transaction.atomic():
        assert notify.delay_on_commit(1) is None
        assert notify.apply_async_on_commit((2,), countdown=0) is None
        assert sent == []
    assert sent == [(notify.name, [1]), (notify.name, [2])]
    with pytest.raises(RuntimeError), transaction.atomic():
        notify.delay_on_commit(3)
        raise RuntimeError("rolled back")
    assert len(sent) == 2
    notify.delay_on_commit(4)
    assert sent[2:] == [(notify.name, [4])]


def test_eager_task_runs_after_commit(impl, django_env):
    from django.db import transaction

    app = impl.Celery("oncommit", broker="memory://", set_as_current=False)
    app.conf.task_always_eager = True
    ran = []

    @app.task
    def record(n):
        ran.append(n)

    with transaction.atomic():
        record.delay_on_commit(1)
        assert ran == []
    assert ran == [1]
