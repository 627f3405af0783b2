"""``argsrepr``/``kwargsrepr``: what a call shows in place of its arguments (Celery's
"hiding sensitive information in arguments").

In process here: the options' checks, the job's meta, ``before_task_publish`` and a worker's
request. Compared with real Celery 5.7: the events and the request in
``test_events.py``, the django-db row in ``test_django_results.py``, a Celery producer's
message and the messages sent to Celery workers in ``test_interop.py``.
"""

from __future__ import annotations

from typing import Any

import pytest

from spinach_compat import signals
from spinach_compat.app import publish

CARD = "4111111111111111"
TIMEOUT = 10.0  #: seconds a result gets (a safety net: the worker runs at once)


def _pay_task(app: Any) -> Any:
    @app.task(name="shop.pay", bind=True)
    def pay(self, card, cvv=None):
        return [self.request.argsrepr, self.request.kwargsrepr]

    return pay


@pytest.mark.parametrize(
    "send",
    [
        lambda app, pay: pay.apply_async((CARD,), argsrepr=("<card>",)),
        lambda app, pay: app.send_task("shop.pay", (CARD,), kwargsrepr={"cvv": "<cvv>"}),
        lambda app, pay: pay.s(CARD).set(argsrepr=1).delay(),
    ],
    ids=["apply_async", "send_task", "signature"],
)
def test_a_repr_that_is_not_a_string_is_refused_naming_the_task(make_app, send):
    """Not a string: ``TypeError`` naming the task, the option and the type; nothing sent.
    (Celery sends any JSON value as is; the facade keeps the reprs text.)"""
    app = make_app()
    pay = _pay_task(app)
    with pytest.raises(TypeError, match=r"task 'shop.pay': apply_async\((kw)?argsrepr=.*string"):
        send(app, pay)
    assert app.engine.broker.queue_lengths() == {}


def test_an_eager_call_checks_the_reprs_and_has_none(make_app):
    """Eager: checked as when sent; the request has no reprs, as Celery's eager request
    (nothing is shown for an eager run; see test_eager_vs_celery.py)."""
    app = make_app(task_always_eager=True)

    @app.task(name="shop.pay", bind=True)
    def pay(self, card, cvv=None):
        return [hasattr(self.request, "argsrepr"), self.request.get("kwargsrepr")]

    with pytest.raises(TypeError, match=r"task 'shop\.pay'.*not bytes"):
        pay.apply_async((CARD,), argsrepr=b"(<card>,)")
    assert pay.apply_async((CARD,), argsrepr="(<card>,)").get() == [False, None]


def test_the_reprs_travel_in_the_job_s_meta_only_when_given(make_app):
    """Given: in the meta (as in Celery's headers); not given: nothing (made by the worker
    only if read)."""
    app = make_app()
    _pay_task(app)
    given = publish.resolve(app, "shop.pay", (CARD,), {}, {"argsrepr": "(<card>,)",
                                                           "kwargsrepr": ""})  # fmt: skip
    assert (given.meta["argsrepr"], given.meta["kwargsrepr"]) == ("(<card>,)", "")
    plain = publish.resolve(app, "shop.pay", (CARD,), {}, {})
    assert "argsrepr" not in plain.meta and "kwargsrepr" not in plain.meta


def test_a_worker_s_request_shows_the_given_reprs_else_the_arguments(make_app, run_worker):
    app = make_app()
    pay = _pay_task(app)
    run_worker(target=app)
    hidden = pay.apply_async((CARD,), {"cvv": "123"}, argsrepr="(<card>,)", kwargsrepr="{}")
    plain = pay.delay(CARD, cvv="123")
    assert hidden.get(timeout=TIMEOUT) == ["(<card>,)", "{}"]
    assert plain.get(timeout=TIMEOUT) == [f"('{CARD}',)", "{'cvv': '123'}"]


def test_a_before_task_publish_receiver_s_repr_reaches_the_worker(make_app, run_worker):
    """A receiver changing the message's ``argsrepr`` header (given or not) changes what the
    worker shows, as Celery's receivers change the message it publishes."""
    app = make_app()
    pay = _pay_task(app)

    def redact(headers: dict, **kwargs: Any) -> None:
        headers["argsrepr"] = "(<redacted>,)"

    signals.before_task_publish.connect(redact, weak=False)
    try:
        plain = pay.delay(CARD)
        given = pay.apply_async((CARD,), argsrepr="(<card>,)")
    finally:
        signals.before_task_publish.disconnect(redact)
    run_worker(target=app)
    assert plain.get(timeout=TIMEOUT) == ["(<redacted>,)", "{}"]
    assert given.get(timeout=TIMEOUT) == ["(<redacted>,)", "{}"]


def test_a_retried_run_still_hides_the_arguments(make_app, run_worker):
    """The retried run shows the call's reprs too. A difference, on the safe side: Celery
    5.7's ``Task.retry`` sends a new message without them, whose run shows the arguments."""
    app = make_app()
    seen: list[str] = []

    @app.task(name="shop.charge", bind=True, max_retries=1, default_retry_delay=0)
    def charge(self, card):
        seen.append(self.request.argsrepr)
        if not self.request.retries:
            raise self.retry()
        return seen

    run_worker(target=app)
    result = charge.apply_async((CARD,), argsrepr="(<card>,)")
    assert result.get(timeout=TIMEOUT) == ["(<card>,)", "(<card>,)"]


def test_publish_receivers_see_the_reprs_celery_sends(impl):
    """Celery's message headers always carry ``argsrepr``/``kwargsrepr`` (given, else made
    from the arguments), so a ``before_task_publish`` or ``after_task_publish`` receiver
    may read them; the facade makes them only while such a receiver is connected."""
    app = impl.Celery("reprs", broker="memory://", set_as_current=False)
    pay = _pay_task(app)
    seen: list[tuple[str, str, str]] = []

    def before(headers: dict, **kwargs: Any) -> None:
        seen.append(("before", headers["argsrepr"], headers["kwargsrepr"]))

    def after(headers: dict, **kwargs: Any) -> None:
        seen.append(("after", headers["argsrepr"], headers["kwargsrepr"]))

    impl.signals.before_task_publish.connect(before, weak=False)
    impl.signals.after_task_publish.connect(after, weak=False)
    try:
        pay.apply_async((CARD,), {"cvv": "123"})
        pay.apply_async((CARD,), argsrepr="(<card>,)")
    finally:
        impl.signals.before_task_publish.disconnect(before)
        impl.signals.after_task_publish.disconnect(after)
    made, given = (f"('{CARD}',)", "{'cvv': '123'}"), ("(<card>,)", "{}")
    assert seen == [("before", *made), ("after", *made), ("before", *given), ("after", *given)]


def test_reprs_made_for_a_receiver_are_not_stored_with_the_job(make_app):
    """Made only for the receivers, an unchanged repr is not kept in the job's meta: the
    worker makes the same one, only if something reads it."""
    app = make_app()
    pay = _pay_task(app)

    def reading(headers: dict, **kwargs: Any) -> None:
        assert headers["argsrepr"] == f"('{CARD}',)"

    signals.before_task_publish.connect(reading, weak=False)
    try:
        result = pay.delay(CARD)
    finally:
        signals.before_task_publish.disconnect(reading)
    [job] = app.engine.broker.queue_jobs("celery")
    assert job.id == result.id
    assert not {"argsrepr", "kwargsrepr"} & (set(job.meta) | set(job.meta["headers"]))
