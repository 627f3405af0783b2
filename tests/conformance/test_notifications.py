"""Wake-ups: an enqueue by one worker process wakes the arbiter of another."""

from __future__ import annotations

import threading

from spinach.brokers.base import Broker

WAIT = 120.0  #: how long the arbiter would sleep without a notification, seconds
ATTEMPTS = 40  #: enqueues tried before giving up (a subscription may take a moment)
PATIENCE = 0.5  #: seconds given to each attempt to wake the arbiter


def test_enqueue_by_a_peer_wakes_wait_for_event(broker: Broker, peer: Broker, make_job) -> None:
    stopping = threading.Event()
    woken = threading.Event()
    subscriber = threading.Thread(target=peer.run_subscriber, args=(stopping,), daemon=True)
    subscriber.start()

    def arbiter() -> None:
        peer.wait_for_event(WAIT)
        woken.set()

    waiter = threading.Thread(target=arbiter, daemon=True)
    waiter.start()
    try:
        for _ in range(ATTEMPTS):  # the subscriber may not listen yet when the first is sent
            broker.enqueue_jobs([make_job()])
            if woken.wait(timeout=PATIENCE):
                break
        assert woken.is_set(), "the peer's arbiter was not woken by an enqueue"
    finally:
        stopping.set()
        peer.stop()
        subscriber.join(timeout=WAIT)
        waiter.join(timeout=WAIT)
    assert not subscriber.is_alive()
