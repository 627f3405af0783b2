"""Per-call options (``spinach.options``) and priorities within a queue."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from spinach import Batch, Engine, MemoryBroker, const, options
from spinach.priority import SEP
from spinach.testing import FakeClock

START = 1_700_000_000.0


def send_email(to: str, queue: str = "", priority: int = 0, countdown: float = 0) -> None:
    """A task whose own keyword arguments bear the names of the options."""


@pytest.fixture
def engine() -> Engine:
    engine = Engine(MemoryBroker(clock=FakeClock(start=START)), namespace="calls")
    engine.task(send_email, name="send_email", max_retries=2)
    return engine


def test_options_never_collide_with_the_task_arguments(engine: Engine) -> None:
    call = options(send_email, queue="urgent", max_retries=5, countdown=30)
    job = engine.schedule(call, "ada@example.com", queue="q", priority=3, countdown=1)

    assert job.task_kwargs == {"queue": "q", "priority": 3, "countdown": 1}
    assert (job.queue, job.max_retries, job.at_timestamp) == ("urgent", 5, START + 30)
    assert engine.broker.scheduled_counts() == {"urgent": 1}


def test_left_out_options_are_the_task_s_and_upstream_calls_still_work(engine: Engine) -> None:
    eta = datetime(2030, 1, 1, tzinfo=timezone.utc)
    by_name = engine.schedule(options("send_email", eta=eta), "ada@example.com")
    plain = engine.schedule("send_email", "ada@example.com")
    batch = Batch()
    batch.schedule(options(send_email, priority=2), "ada@example.com")
    [in_batch] = engine.schedule_batch(batch)

    assert (by_name.queue, by_name.max_retries, by_name.at) == (const.DEFAULT_QUEUE, 2, eta)
    assert (plain.queue, plain.at_timestamp) == (const.DEFAULT_QUEUE, START)
    assert in_batch.queue == f"{const.DEFAULT_QUEUE}{SEP}2"


@pytest.mark.parametrize(
    ("given", "cause"),
    [
        ({"priority": 10}, "priority of task 'send_email' must be None or an int from 0"),
        ({"priority": "high"}, "priority of task 'send_email' must be None or an int from 0"),
        ({"countdown": 1, "eta": datetime(2030, 1, 1)}, "give countdown or eta, not both"),
        ({"countdown": "soon"}, "countdown of task 'send_email' must be seconds"),
    ],
)
def test_bad_options_are_refused_naming_the_task(given, cause) -> None:
    with pytest.raises(ValueError, match=cause):
        options(send_email, **given)


def test_a_bad_queue_is_refused_at_schedule_time(engine: Engine) -> None:
    with pytest.raises(ValueError, match="reserved"):
        engine.schedule(options(send_email, queue="_x"), "ada@example.com")
    assert engine.broker.queue_lengths() == {}


def test_mixed_priorities_run_in_priority_order_when_the_worker_starts() -> None:
    """Jobs scheduled on a stopped worker, with a per-task and per-call priorities."""
    ran: list[str] = []
    engine = Engine(MemoryBroker(), namespace="priorities")
    engine.task(ran.append, name="note")
    engine.task(ran.append, name="later", priority=7)
    engine.schedule("later", "task priority 7")
    engine.schedule(options("note", priority=9), "call priority 9")
    engine.schedule("note", "default priority")
    engine.schedule(options("note", priority=3), "call priority 3")
    engine.schedule(options("later", priority=0), "call priority 0 over the task's")
    engine.schedule(options("note", queue="other"), "another queue")

    engine.start_workers(number=1, queue=[const.DEFAULT_QUEUE, "other"], block=False,
                         stop_when_queue_empty=True)  # fmt: skip
    assert engine.wait_until_stopped(30)
    assert ran == [
        "default priority", "call priority 0 over the task's", "call priority 3",
        "task priority 7", "call priority 9", "another queue",
    ]  # fmt: skip
