"""Classes projects subclass but the facade cannot run: they import and subclass, then refuse."""

from __future__ import annotations

import pytest

import spinach_compat
from spinach_compat import bootsteps
from spinach_compat.beat import PersistentScheduler, ScheduleEntry, Scheduler, Service
from spinach_compat.exceptions import UnsupportedFeature
from spinach_compat.schedules import BaseSchedule
from spinach_compat.worker.request import Request


def test_a_custom_bootstep_subclasses_then_refuses_when_created() -> None:
    class Heartbeat(bootsteps.StartStopStep):
        requires = {"celery.worker.components:Pool"}

        def __init__(self, worker, **kwargs):
            super().__init__(worker, **kwargs)

    assert Heartbeat.name.endswith("Heartbeat") and str(Heartbeat) == Heartbeat.name
    assert repr(Heartbeat).startswith("step:")
    with pytest.raises(UnsupportedFeature, match=r"celery\.bootsteps\.StartStopStep.*worker_ready"):
        Heartbeat(object())
    with pytest.raises(UnsupportedFeature, match=r"celery\.bootsteps\.Blueprint"):
        bootsteps.Blueprint(["x"], name="worker")


def test_a_custom_scheduler_subclasses_and_runs(make_app, tmp_path) -> None:
    class ModelEntry(ScheduleEntry):
        pass

    class DatabaseScheduler(Scheduler):
        Entry = ModelEntry

    assert issubclass(PersistentScheduler, Scheduler) and Scheduler.max_interval == 300
    app = make_app(beat_schedule={"tick": {"task": "proj.tick", "schedule": 30}})
    scheduler = DatabaseScheduler(app=app)
    assert isinstance(scheduler.schedule["tick"], ModelEntry)
    service = Service(app, scheduler_cls=DatabaseScheduler, schedule_filename=str(tmp_path / "s"))
    assert isinstance(service.scheduler, DatabaseScheduler)


def test_a_custom_request_subclasses_then_refuses_when_created() -> None:
    class MyRequest(Request):
        def on_timeout(self, soft, timeout):
            super().on_timeout(soft, timeout)

    with pytest.raises(UnsupportedFeature, match=r"Task\.on_failure"):
        MyRequest(message=None)


def test_a_custom_schedule_class_is_refused_by_the_worker(make_app) -> None:
    class Every(BaseSchedule):
        def is_due(self, last_run_at):
            return (True, 10)

    app = make_app(beat_schedule={"odd": {"task": "x", "schedule": Every()}})
    with pytest.raises(UnsupportedFeature, match="odd"):
        app.register_beat_schedule()


def test_refused_modules_raise_on_import_whatever_the_import_form() -> None:
    with pytest.raises(UnsupportedFeature, match=r"celery\.concurrency.*worker-pools"):
        from spinach_compat import concurrency  # noqa: F401
    with pytest.raises(UnsupportedFeature, match=r"celery\.concurrency"):
        import spinach_compat.concurrency.prefork  # noqa: F401
    with pytest.raises(UnsupportedFeature, match=r"celery\.contrib\.testing\.mocks\.TaskMessage"):
        from spinach_compat.contrib.testing.mocks import TaskMessage  # noqa: F401
    from spinach_compat.worker.control import Panel  # noqa: F401  (custom commands)


def test_refused_names_raise_and_others_are_attribute_errors() -> None:
    with pytest.raises(UnsupportedFeature, match=r"celery\.platforms\.detached"):
        from spinach_compat.platforms import detached  # noqa: F401
    with pytest.raises(AttributeError):
        spinach_compat.no_such_name  # noqa: B018
    assert not hasattr(spinach_compat.platforms, "no_such_name")


def test_a_task_class_with_a_custom_request_is_refused_by_the_check() -> None:
    from spinach_compat.worker.request import check_task_request

    class MyRequest(Request):
        pass

    class Plain(spinach_compat.Task):
        pass

    check_task_request(Plain)  # the default Request: nothing to refuse
    for custom in (MyRequest, "proj.requests:MyRequest"):
        task_class = type("Custom", (spinach_compat.Task,), {"Request": custom})
        with pytest.raises(UnsupportedFeature, match=r"celery\.worker\.request\.Request"):
            check_task_request(task_class)
