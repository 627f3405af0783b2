"""``link``/``link_error`` and ``priority`` in eager mode, through real Celery and the facade.

Every test runs twice (``impl`` is ``celery`` or ``spinach_compat``) with the same expected
outcome.
"""

from __future__ import annotations


def test_link_gets_the_result_prepended(eager_app, impl):
    seen = []

    @eager_app.task
    def add(a, b):
        return a + b

    @eager_app.task
    def record(*args):
        seen.append(list(args))

    add.apply_async((1, 2), link=record.s("x"))
    add.apply_async((1, 2), link=[record.s(), record.si("immutable")])
    sig = add.s(2, 2)
    assert sig.link(record.s("linked")) == record.s("linked")
    sig.delay()
    assert seen == [[3, "x"], [3], ["immutable"], [4, "linked"]]


def test_link_error_called_or_sent_by_arity(eager_app, impl):
    seen = []

    @eager_app.task
    def fail():
        raise ValueError("boom")

    @eager_app.task
    def by_id(task_id):
        seen.append(("by_id", task_id))

    @eager_app.task
    def with_request(request, exc, traceback):
        seen.append(("request", request.id, repr(exc), "ValueError" in traceback))

    @eager_app.task
    def tagged(first, second):  # one argument left once its own is bound: sent as a task
        seen.append(("tagged", first, second))

    @eager_app.task(bind=True)
    def bound(self, request, exc=None, traceback=None):  # bound: always sent as a task
        seen.append(("bound", request))

    errbacks = [by_id.s(), with_request.s(), tagged.s("t"), bound.s()]
    result = fail.apply_async(task_id="f1", link_error=errbacks, link=by_id.s())
    assert result.state == "FAILURE"
    assert seen == [
        ("request", "f1", "ValueError('boom')", True),
        ("by_id", "f1"),
        ("tagged", "f1", "t"),  # the failed id comes first
        ("bound", "f1"),
    ]


def test_links_after_retries_and_not_on_retry(eager_app, impl):
    seen = []

    @eager_app.task(bind=True, default_retry_delay=0)
    def flaky(self):
        if self.request.retries < 2:
            raise self.retry()
        return "done"

    @eager_app.task
    def record(*args):
        seen.append(args)

    flaky.apply_async(task_id="r1", link=record.s(), link_error=record.s())
    assert seen == [("done",)]


def test_link_error_on_signature(eager_app, impl):
    seen = []

    @eager_app.task
    def fail(x):
        raise KeyError(x)

    @eager_app.task
    def by_id(task_id):
        seen.append(task_id)

    sig = fail.s(1)
    assert sig.on_error(by_id.s()) is sig
    sig.apply_async(task_id="s1")
    assert seen == ["s1"]


def test_priority_in_delivery_info(eager_app, impl):
    seen = []

    @eager_app.task(bind=True)
    def prioritized(self):
        seen.append(self.request.delivery_info["priority"])

    prioritized.apply_async(priority=7)
    prioritized.apply_async()
    assert seen == [7, None]
