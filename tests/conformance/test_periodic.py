"""Periodic tasks: one job per period for the whole namespace, never a burst."""

from __future__ import annotations

import pytest

from spinach.brokers.base import Broker
from spinach.job import Job

PERIOD = 60.0


def fetch_all(broker: Broker, queue: str = "q") -> list[Job]:
    return broker.get_jobs_from_queue(queue, 1000)


def test_a_periodic_task_is_first_due_at_registration(
    broker: Broker, make_task, start: float
) -> None:
    broker.register_periodic_tasks([make_task("tick", every=PERIOD)])

    assert broker.inspect_periodic_tasks() == [(start, "tick")]
    assert broker.next_future_job_delta() == pytest.approx(0)


def test_a_fired_job_is_a_fresh_job_of_the_task(
    broker: Broker, clock, make_task, start: float
) -> None:
    broker.register_periodic_tasks(
        [make_task("tick", queue="ticks", max_retries=2, every=PERIOD, max_concurrency=3)]
    )

    assert broker.move_future_jobs() == 1

    [job] = fetch_all(broker, "ticks")
    assert (job.task_name, job.queue, job.max_retries, job.retries) == ("tick", "ticks", 2, 0)
    assert (job.max_concurrency, job.task_args, job.task_kwargs) == (3, (), {})
    assert job.at_timestamp == pytest.approx(clock())
    assert broker.inspect_periodic_tasks() == [(start + PERIOD, "tick")]


def test_fires_once_per_period_with_two_workers(
    broker: Broker, peer: Broker, clock, make_task
) -> None:
    task = make_task("tick", every=PERIOD)
    broker.register_periodic_tasks([task])
    peer.register_periodic_tasks([task])

    fired = []
    for _ in range(5):
        fired.append(broker.move_future_jobs() + peer.move_future_jobs())
        fired.append(peer.move_future_jobs() + broker.move_future_jobs())
        clock.advance(PERIOD / 2)
        fired.append(broker.move_future_jobs() + peer.move_future_jobs())
        clock.advance(PERIOD / 2)

    assert fired == [1, 0, 0] * 5
    assert len(fetch_all(broker)) == 5


def test_no_burst_after_a_long_gap(broker: Broker, clock, make_task, start: float) -> None:
    broker.register_periodic_tasks([make_task("tick", every=PERIOD)])
    broker.move_future_jobs()

    clock.advance(1000)  # 16 periods and a bit missed

    assert broker.move_future_jobs() == 1
    assert broker.move_future_jobs() == 0
    assert len(fetch_all(broker)) == 2
    assert broker.inspect_periodic_tasks() == [(start + 17 * PERIOD, "tick")]
    assert broker.next_future_job_delta() == pytest.approx(17 * PERIOD - 1000)


def test_next_run_stays_on_the_period_grid(broker: Broker, clock, make_task, start: float) -> None:
    broker.register_periodic_tasks([make_task("tick", every=PERIOD)])
    broker.move_future_jobs()

    clock.advance(PERIOD + 5)  # a late call

    assert broker.move_future_jobs() == 1
    assert broker.inspect_periodic_tasks() == [(start + 2 * PERIOD, "tick")]


def test_registering_again_keeps_the_schedule(
    broker: Broker, peer: Broker, clock, make_task, start: float
) -> None:
    task = make_task("tick", every=PERIOD)
    broker.register_periodic_tasks([task])
    broker.move_future_jobs()
    clock.advance(PERIOD / 2)

    broker.register_periodic_tasks([task])
    peer.register_periodic_tasks([make_task("tick", every=PERIOD)])

    assert broker.inspect_periodic_tasks() == [(start + PERIOD, "tick")]
    assert peer.move_future_jobs() == 0


def test_a_task_no_longer_periodic_is_removed(
    broker: Broker, clock, make_task, start: float
) -> None:
    kept, dropped = make_task("kept", every=PERIOD), make_task("dropped", every=PERIOD)
    broker.register_periodic_tasks([kept, dropped])
    broker.register_periodic_tasks([kept, make_task("dropped"), make_task("not-periodic")])

    assert broker.inspect_periodic_tasks() == [(start, "kept")]
    assert broker.move_future_jobs() == 1
    assert [job.task_name for job in fetch_all(broker)] == ["kept"]

    broker.register_periodic_tasks([make_task("kept")])
    assert broker.inspect_periodic_tasks() == []
    clock.advance(10 * PERIOD)
    assert broker.move_future_jobs() == 0


def test_periodic_tasks_of_other_workers_are_left_alone(
    broker: Broker, peer: Broker, make_task, start: float
) -> None:
    broker.register_periodic_tasks([make_task("beat-entry", every=PERIOD)])
    peer.register_periodic_tasks([make_task("native", every=2 * PERIOD), make_task("plain")])
    peer.register_periodic_tasks([])  # a worker with no task at all removes nothing

    assert broker.inspect_periodic_tasks() == [(start, "beat-entry"), (start, "native")]


def test_periodic_tasks_are_listed_soonest_first(
    broker: Broker, clock, make_task, start: float
) -> None:
    fast, slow = make_task("fast", every=10), make_task("slow", every=100)
    broker.register_periodic_tasks([slow, fast])
    broker.move_future_jobs()

    assert broker.inspect_periodic_tasks() == [(start + 10, "fast"), (start + 100, "slow")]
    assert broker.next_future_job_delta() == pytest.approx(10)


def test_move_counts_future_jobs_and_periodic_jobs(
    broker: Broker, clock, make_task, make_job
) -> None:
    broker.enqueue_jobs([make_job(delay=5), make_job(delay=5)])
    clock.advance(5)
    broker.register_periodic_tasks([make_task("tick", every=PERIOD)])

    assert broker.move_future_jobs() == 3
    assert len(fetch_all(broker)) == 3
