"""What is particular to ``MemoryBroker``: peers, its store, notifications, thread safety.

The broker contract itself is checked by ``tests/conformance``.
"""

from __future__ import annotations

import inspect
import threading

import pytest

from spinach.brokers.base import Broker, WorkerInfo
from spinach.brokers.memory import MemoryBroker
from spinach.job import Job
from spinach.task import Task
from spinach.testing import FakeClock


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(start=1_000_000.0)


@pytest.fixture
def broker(clock: FakeClock) -> MemoryBroker:
    broker = MemoryBroker(clock=clock, worker_id="w1")
    broker.set_namespace("ns")
    return broker


def job(task: str = "task", queue: str = "q", at: float = 0.0, **kw) -> Job:
    return Job(task, queue, at, 0, **kw)


def test_defaults() -> None:
    broker = MemoryBroker()

    assert isinstance(broker, Broker)
    assert broker.worker_id
    assert MemoryBroker().worker_id != broker.worker_id


def test_a_peer_shares_store_clock_and_namespace(broker: MemoryBroker, clock) -> None:
    peer = broker.peer()

    assert peer.worker_id != broker.worker_id
    assert peer.namespace == "ns"
    clock.advance(10)
    assert peer.now() == broker.now()
    broker.enqueue_jobs([queued := job()])
    assert [j.id for j in peer.get_jobs_from_queue("q", 10)] == [queued.id]
    assert list(broker.running_jobs()) == [peer.worker_id]


def test_a_peer_can_be_given_its_worker_id(broker: MemoryBroker) -> None:
    assert broker.peer("w2").worker_id == "w2"


def test_a_peer_of_a_peer_shares_the_store_too(broker: MemoryBroker) -> None:
    broker.enqueue_jobs([job()])

    assert broker.peer().peer().queue_lengths() == {"q": 1}


def test_separate_brokers_share_nothing(clock) -> None:
    first, second = MemoryBroker(clock=clock), MemoryBroker(clock=clock)
    first.enqueue_jobs([job()])

    assert second.queue_lengths() == {}


def test_a_peer_keeps_its_namespace_when_the_original_changes(broker: MemoryBroker) -> None:
    peer = broker.peer()
    broker.set_namespace("elsewhere")
    broker.enqueue_jobs([job()])

    assert peer.namespace == "ns"
    assert peer.queue_lengths() == {}


@pytest.mark.skipif(
    "heartbeat_interval" not in inspect.signature(Broker.__init__).parameters,
    reason="the base broker takes no liveness options",
)
def test_a_peer_gets_the_same_options(clock) -> None:
    broker = MemoryBroker(clock=clock, heartbeat_interval=1.0, dead_worker_threshold=5.0)

    peer = broker.peer()

    assert (peer.heartbeat_interval, peer.dead_worker_threshold) == (1.0, 5.0)


def test_jobs_are_stored_as_payloads_not_objects(broker: MemoryBroker) -> None:
    original = job(task_kwargs={"items": [1, 2]}, meta={"k": "v"})
    broker.enqueue_jobs([original])
    original.task_kwargs["items"].append(3)
    original.meta["k"] = "changed"

    [fetched] = broker.get_jobs_from_queue("q", 10)

    assert fetched is not original
    assert (fetched.task_kwargs, fetched.meta) == ({"items": [1, 2]}, {"k": "v"})


def test_enqueue_notifies_every_peer_of_the_namespace(broker: MemoryBroker) -> None:
    peer, other = broker.peer(), broker.peer()
    other.set_namespace("other")
    woken: list[str] = []
    for each in (broker, peer, other):
        each.notify_local = lambda name=each.worker_id: woken.append(name)  # type: ignore[method-assign]

    broker.enqueue_jobs([job()])

    assert sorted(woken) == sorted([broker.worker_id, peer.worker_id])


def test_wait_for_event_returns_once_notified(broker: MemoryBroker) -> None:
    peer = broker.peer()
    broker.enqueue_jobs([job()])

    done = threading.Event()
    waiter = threading.Thread(target=lambda: (peer.wait_for_event(60), done.set()))
    waiter.start()
    assert done.wait(timeout=30)  # the event set by the enqueue is already there
    waiter.join()


def test_dead_letters_with_the_same_id_but_different_payloads_are_both_kept(
    broker: MemoryBroker,
) -> None:
    broker.push_raw("q", '{"id": "same", "task_name": "a"}')
    broker.push_raw("q", '{"id": "same", "task_name": "b"}')
    broker.get_jobs_from_queue("q", 10)

    letters = broker.list_dead_letters()

    assert [letter.payload for letter in letters] == [
        '{"id": "same", "task_name": "a"}',
        '{"id": "same", "task_name": "b"}',
    ]
    assert len({letter.id for letter in letters}) == 2


def test_dead_lettering_a_job_twice_keeps_one_letter(broker: MemoryBroker) -> None:
    broker.enqueue_jobs([job()])
    [fetched] = broker.get_jobs_from_queue("q", 10)

    broker.dead_letter(fetched, "first")
    broker.dead_letter(fetched, "second")  # no longer running here: nothing to do

    assert [letter.reason for letter in broker.list_dead_letters()] == ["first"]


def test_a_raw_copy_of_a_running_job_is_dead_lettered(broker: MemoryBroker) -> None:
    broker.set_concurrency_keys([Task(print, "limited", "q", 0, max_concurrency=1)])
    running = job("limited")
    broker.enqueue_jobs([running])
    broker.get_jobs_from_queue("q", 10)
    broker.push_raw("q", running.serialize())

    assert broker.get_jobs_from_queue("q", 10) == []

    [letter] = broker.list_dead_letters()
    assert (letter.id, letter.reason) == (running.id, f"job {running.id} is already running")
    broker.remove_job_from_running(running)
    broker.enqueue_jobs([other := job("limited")])
    assert [j.id for j in broker.get_jobs_from_queue("q", 10)] == [other.id]


def test_undecodable_bytes_are_kept_as_text(broker: MemoryBroker) -> None:
    broker.push_raw("q", b"\xffabc")
    broker.get_jobs_from_queue("q", 10)

    [letter] = broker.list_dead_letters()
    assert letter.payload == "\ufffdabc"


def test_heartbeat_of_an_unregistered_worker_registers_nothing(broker: MemoryBroker) -> None:
    broker.heartbeat()
    assert broker.workers() == []


def test_heartbeat_after_deregistering_registers_nothing(broker: MemoryBroker) -> None:
    broker.register_worker(WorkerInfo(id=broker.worker_id))
    broker.deregister_worker()

    broker.heartbeat()

    assert broker.workers() == []


def test_concurrent_fetches_take_each_job_once(broker: MemoryBroker) -> None:
    jobs = [job() for _ in range(2000)]
    broker.enqueue_jobs(jobs)
    peers = [broker.peer() for _ in range(8)]
    taken: list[list[str]] = [[] for _ in peers]

    def drain(peer: MemoryBroker, into: list[str]) -> None:
        while fetched := peer.get_jobs_from_queue("q", 3):
            into.extend(j.id for j in fetched)
            for each in fetched:
                peer.remove_job_from_running(each)

    threads = [threading.Thread(target=drain, args=pair) for pair in zip(peers, taken, strict=True)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    all_taken = [job_id for ids in taken for job_id in ids]
    assert sorted(all_taken) == sorted(j.id for j in jobs)
    assert broker.running_jobs() == {}


def test_concurrency_limit_holds_under_threads(broker: MemoryBroker) -> None:
    broker.set_concurrency_keys([Task(print, "limited", "q", 0, max_concurrency=2)])
    broker.enqueue_jobs([job("limited") for _ in range(200)])
    peers = [broker.peer() for _ in range(6)]
    peak = [0]
    lock = threading.Lock()

    def drain(peer: MemoryBroker) -> None:
        while not peer.is_queue_empty("q") or peer.running_jobs():
            fetched = peer.get_jobs_from_queue("q", 5)
            with lock:
                running = sum(len(v) for v in peer.running_jobs().values())
                peak[0] = max(peak[0], running)
            for each in fetched:
                peer.remove_job_from_running(each)

    threads = [threading.Thread(target=drain, args=(peer,)) for peer in peers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert 1 <= peak[0] <= 2
    assert broker.queue_lengths() == {}
