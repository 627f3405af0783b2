"""The same task code in eager mode through real Celery and through the facade.

Every test runs twice (``impl`` is ``celery`` or ``spinach_compat``) and asserts the same
expected outcome, so the facade matches Celery's observable behaviour.
"""

from __future__ import annotations

import random
from datetime import datetime

import pytest


def test_call_delay_and_results(eager_app, impl):
    @eager_app.task
    def add(a, b):
        return a + b

    @eager_app.task
    def echo(*args, **kwargs):
        return [args, kwargs]

    assert add(1, 2) == 3
    result = add.delay(2, 3)
    assert (result.get(), result.state, result.successful(), result.ready()) == (
        5, "SUCCESS", True, True,
    )  # fmt: skip
    assert add.apply_async((1, 1), task_id="fixed-id").id == "fixed-id"
    assert add.name == f"{__name__}.add"
    # arguments travel through JSON, as with a real broker: tuples arrive as lists
    assert echo.delay((1, 2), k=(3,)).get() == [(([1, 2]),), {"k": [3]}]
    moment = datetime(2024, 1, 2, 3, 4, 5)
    assert echo.delay(moment).get() == [(moment,), {}]
    assert add.apply((4, 4)).get() == 8


def test_failure_without_propagation(eager_app, impl):
    @eager_app.task
    def fail():
        raise ValueError("bad", 3)

    result = fail.delay()
    assert result.state == "FAILURE"
    assert result.failed() and result.ready()
    assert isinstance(result.result, ValueError) and result.result.args == ("bad", 3)
    assert "ValueError" in result.traceback
    with pytest.raises(ValueError):
        result.get()
    assert isinstance(result.get(propagate=False), ValueError)


def test_failure_propagates_with_task_eager_propagates(eager_app, impl):
    eager_app.conf.task_eager_propagates = True

    @eager_app.task
    def fail():
        raise KeyError("k")

    with pytest.raises(KeyError):
        fail.delay()
    assert fail.apply(throw=False).state == "FAILURE"


def test_request_fields(eager_app, impl):
    seen = {}

    @eager_app.task(bind=True)
    def inspect_request(self, a, b=None):
        request = self.request
        seen.update(
            id=request.id, args=request.args, kwargs=request.kwargs, retries=request.retries,
            is_eager=request.is_eager, called_directly=request.called_directly,
            headers=request.headers, task=getattr(request, "task", None), root_id=request.root_id,
            parent_id=request.parent_id,
        )  # fmt: skip
        return a

    inspect_request.apply_async((1,), {"b": 2}, task_id="abc", headers={"h": 1})
    assert seen == {
        "id": "abc", "args": [1], "kwargs": {"b": 2}, "retries": 0, "is_eager": True,
        "called_directly": False, "headers": {"h": 1}, "task": inspect_request.name,
        "root_id": "abc", "parent_id": None,
    }  # fmt: skip
    inspect_request(5)
    assert (seen["called_directly"], seen["is_eager"], seen["id"]) == (True, False, None)


#: Request attributes an eager run has (value) or lacks (``ABSENT``), as in Celery 5.7.
ABSENT = "<absent>"
PROBED = "argsrepr kwargsrepr timelimit time_limit soft_time_limit utc properties origin shadow"
PROBED += " reply_to correlation_id"


@pytest.mark.parametrize(
    ("limits", "expected_limits"),
    [({}, (None, None, None)), ({"time_limit": 30, "soft_time_limit": 20}, ([30, 20], 30, 20)),
     ({"soft_time_limit": 7}, ([None, 7], None, 7))],
)  # fmt: skip
def test_eager_request_attributes(eager_app, impl, limits, expected_limits):
    """No ``argsrepr``/``kwargsrepr`` (a worker's request only has them, from the message);
    the time limits are the task's (a call's are not read); ``utc`` and ``properties`` None."""

    @eager_app.task(bind=True, **limits)
    def probe(self, card):
        request, seen = self.request, {}
        for name in PROBED.split():
            seen[name] = getattr(request, name, ABSENT)
        seen["get"] = (request.get("argsrepr"), request.get("kwargsrepr", "default"))
        return seen

    seen = probe.apply_async(("4111",), time_limit=5, argsrepr="(<card>,)").get()
    timelimit, time_limit, soft_time_limit = expected_limits
    assert seen == {
        "argsrepr": ABSENT, "kwargsrepr": ABSENT, "timelimit": timelimit,
        "time_limit": time_limit, "soft_time_limit": soft_time_limit, "utc": None,
        "properties": None, "origin": None, "shadow": None, "reply_to": None,
        "correlation_id": None, "get": (None, "default"),
    }  # fmt: skip


def test_retry_until_success_keeps_id(eager_app, impl):
    attempts = []

    @eager_app.task(bind=True, max_retries=3, default_retry_delay=0)
    def flaky(self, x):
        attempts.append((self.request.id, self.request.retries, x))
        if self.request.retries < 2:
            raise self.retry(args=(x + 1,))
        return x

    result = flaky.apply_async((10,), task_id="t1")
    assert (result.get(), result.id) == (12, "t1")
    assert attempts == [("t1", 0, 10), ("t1", 1, 11), ("t1", 2, 12)]


@pytest.mark.parametrize("with_exc", [False, True])
def test_retry_past_max_retries(eager_app, impl, with_exc):
    attempts = []

    @eager_app.task(bind=True, max_retries=2)
    def always(self):
        attempts.append(self.request.retries)
        raise self.retry(exc=OSError("down") if with_exc else None, countdown=5)

    result = always.delay()
    assert attempts == [0, 1, 2]
    assert result.state == "FAILURE"
    expected = OSError if with_exc else impl.exceptions.MaxRetriesExceededError
    assert type(result.result) is expected


def test_retry_max_retries_override(eager_app, impl):
    attempts = []

    @eager_app.task(bind=True, max_retries=10)
    def limited(self):
        attempts.append(self.request.retries)
        raise self.retry(max_retries=1, countdown=0)

    assert isinstance(limited.delay().result, impl.exceptions.MaxRetriesExceededError)
    assert attempts == [0, 1]


def test_retry_called_directly_reraises(eager_app, impl):
    @eager_app.task(bind=True)
    def direct(self, exc):
        try:
            raise exc
        except Exception as caught:
            raise self.retry(exc=caught) from None

    with pytest.raises(ZeroDivisionError):
        direct(ZeroDivisionError("x"))

    @eager_app.task(bind=True)
    def bare(self):
        raise self.retry()

    with pytest.raises(impl.exceptions.Retry):
        bare()


def test_retry_propagates_with_task_eager_propagates(eager_app, impl):
    eager_app.conf.task_eager_propagates = True

    @eager_app.task(bind=True)
    def retrying(self):
        raise self.retry(countdown=1)

    with pytest.raises(impl.exceptions.Retry):
        retrying.delay()


def test_autoretry_with_backoff_and_jitter(eager_app, impl, monkeypatch):
    draws = []

    def randrange(stop):
        draws.append(stop)
        return stop - 1

    monkeypatch.setattr(random, "randrange", randrange)
    whens = []

    def on_retry(sender, request, reason, einfo, **kwargs):
        whens.append((type(reason.exc).__name__, reason.when))

    impl.signals.task_retry.connect(on_retry, weak=False, dispatch_uid="backoff")

    @eager_app.task(
        bind=True, autoretry_for=(OSError,), retry_backoff=3, retry_backoff_max=20,
        max_retries=5,
    )  # fmt: skip
    def unstable(self):
        raise OSError("io")

    try:
        result = unstable.delay()
    finally:
        impl.signals.task_retry.disconnect(dispatch_uid="backoff")
    assert isinstance(result.result, OSError)
    # drawn before retry() decides, so the attempt past max_retries draws too
    assert draws == [4, 7, 13, 21, 21, 21]  # randrange(min(20, 3 * 2**n) + 1)
    assert whens == [("OSError", 3), ("OSError", 6), ("OSError", 12), ("OSError", 20),
                     ("OSError", 20)]  # fmt: skip


def test_autoretry_kwargs_and_exclusions(eager_app, impl):
    attempts = []

    @eager_app.task(
        bind=True, autoretry_for=(Exception,), dont_autoretry_for=(KeyError,),
        retry_kwargs={"max_retries": 1, "countdown": 0},
    )  # fmt: skip
    def picky(self, exc_name):
        attempts.append(self.request.retries)
        raise {"key": KeyError, "value": ValueError}[exc_name]("x")

    assert isinstance(picky.delay("key").result, KeyError)
    assert attempts == [0]
    attempts.clear()
    assert isinstance(picky.delay("value").result, ValueError)
    assert attempts == [0, 1]


def test_hooks_order(eager_app, impl):
    calls = []

    class Hooked(impl.Task):
        def before_start(self, task_id, args, kwargs):
            calls.append(("before_start", list(args)))

        def on_success(self, retval, task_id, args, kwargs):
            calls.append(("on_success", retval))

        def on_failure(self, exc, task_id, args, kwargs, einfo):
            calls.append(("on_failure", type(exc).__name__, "Traceback" in str(einfo)))

        def on_retry(self, exc, task_id, args, kwargs, einfo):
            calls.append(("on_retry", type(exc).__name__))

        def after_return(self, status, retval, task_id, args, kwargs, einfo):
            calls.append(("after_return", status, einfo))

    @eager_app.task(base=Hooked, bind=True, max_retries=1, default_retry_delay=0)
    def work(self, fail):
        if fail and not self.request.retries:
            raise self.retry(exc=ValueError("once"))
        if fail:
            raise TypeError("twice")
        return "ok"

    work.delay(False)
    assert calls == [("before_start", [False]), ("on_success", "ok"),
                     ("after_return", "SUCCESS", None)]  # fmt: skip
    calls.clear()
    work.delay(True)
    assert calls == [
        ("before_start", [True]), ("on_retry", "ValueError"), ("before_start", [True]),
        ("on_failure", "TypeError", True), ("after_return", "FAILURE", None),
    ]  # fmt: skip


def test_signals(eager_app, impl):
    events = []
    sig = impl.signals
    receivers = {
        "prerun": lambda sender, task_id, task, args, kwargs, **kw: events.append(
            ("prerun", task.name == sender.name, args)
        ),
        "postrun": lambda sender, task_id, retval, state, **kw: events.append(("postrun", state)),
        "success": lambda sender, result, **kw: events.append(("success", result)),
        "failure": lambda sender, task_id, exception, einfo, **kw: events.append(
            ("failure", type(exception).__name__)
        ),
        "retry": lambda sender, request, reason, einfo, **kw: events.append(
            ("retry", type(reason).__name__, request.retries)
        ),
    }
    for name, receiver in receivers.items():
        getattr(sig, f"task_{name}").connect(receiver, weak=False, dispatch_uid=f"t-{name}")
    try:

        @eager_app.task(bind=True, max_retries=1, default_retry_delay=0)
        def sig_task(self, x):
            if x == "retry" and not self.request.retries:
                raise self.retry()
            if x == "fail":
                raise LookupError(x)
            return x

        sig_task.delay("ok")
        sig_task.delay("fail")
        sig_task.delay("retry")
    finally:
        for name in receivers:
            getattr(sig, f"task_{name}").disconnect(dispatch_uid=f"t-{name}")
    assert events == [
        ("prerun", True, ["ok"]), ("success", "ok"), ("postrun", "SUCCESS"),
        ("prerun", True, ["fail"]), ("failure", "LookupError"), ("postrun", "FAILURE"),
        ("prerun", True, ["retry"]), ("retry", "Retry", 0), ("postrun", "RETRY"),
        ("prerun", True, ("retry",)), ("success", "retry"), ("postrun", "SUCCESS"),
    ]  # fmt: skip


def test_ignore_and_custom_base(eager_app, impl):
    class Base(impl.Task):
        custom_attribute = "base"

    @eager_app.task(base=Base, bind=True)
    def ignoring(self):
        raise impl.exceptions.Ignore()

    assert ignoring.custom_attribute == "base"
    assert ignoring.delay().state == "IGNORED"


def test_signature_calls(eager_app, impl):
    @eager_app.task
    def mul(a, b):
        return a * b

    assert mul.s(2, 3).delay().get() == 6
    assert mul.s(2).delay(5).get() == 10
    assert mul.si(2, 4).apply_async((9,)).get() == 8
    assert mul.signature((3, 3)).apply().get() == 9
    assert mul.s(2, 2)() == 4


def test_typing_checks_arguments(eager_app, impl):
    @eager_app.task
    def one(a):
        return a

    with pytest.raises(TypeError):
        one.delay(1, 2)
