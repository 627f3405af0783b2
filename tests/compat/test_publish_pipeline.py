"""Publishing as one pipeline (``spinach_compat.app.publish``): it needs of the app only its
``Publisher`` interface, and asks the routes once a message, however the task is sent."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from spinach_compat.app import publish
from spinach_compat.app.priority import band_queue


class OnlyThePublisher:
    """An app seen through ``publish.Publisher`` alone: any other attribute is missing."""

    def __init__(self, app: Any) -> None:
        self._app = app
        self.hostname = "origin@test"

    conf = property(lambda self: self._app.conf)
    engine = property(lambda self: self._app.engine)
    timezone = property(lambda self: self._app.timezone)

    def now(self) -> datetime:
        return self._app.now()

    def uuid(self) -> str:
        return "fixed-id"

    def registered_task(self, name: str) -> Any:
        return self._app.registered_task(name)

    def build_native_job(self, *args: Any) -> Any:
        return self._app.build_native_job(*args)

    def AsyncResult(self, task_id: str, **kwargs: Any) -> Any:
        return self._app.AsyncResult(task_id, **kwargs)


def test_publishing_needs_only_the_publisher_interface(make_app):
    app = make_app(task_routes={"pipe.*": {"queue": "routed", "priority": 7}})

    @app.task(name="pipe.add", ignore_result=True)
    def add(x, y):
        return x + y

    result = publish.publish(OnlyThePublisher(app), "pipe.add", (1, 2), None, {})
    assert (result.id, result.ignored) == ("fixed-id", True)
    assert app.engine.broker.queue_lengths() == {band_queue("routed", 7): 1}


@pytest.mark.parametrize(
    "send",
    [
        lambda app, task: task.delay(7),
        lambda app, task: task.apply_async((7,), queue="given"),
        lambda app, task: app.send_task("pipe.routed", (7,)),
        lambda app, task: task.s(7).apply_async(),
        lambda app, task: app.signature("pipe.routed", (7,)).delay(),
    ],
    ids=["delay", "apply_async", "send_task", "signature", "by-name signature"],
)
def test_a_message_is_routed_once(make_app, send):
    """The router sees the message once (Celery's router is asked once too), even when the
    call names its queue; ``task_type`` (the facade's own) is not among its options."""
    calls = []

    def router(name, args, kwargs, options, task=None, **kw):
        calls.append((name, tuple(args), "task_type" in options, task is not None))
        return {"queue": "dynamic"}

    app = make_app(task_routes=[router])

    @app.task(name="pipe.routed")
    def routed(a):
        pass

    send(app, routed)
    assert calls == [("pipe.routed", (7,), False, True)]
