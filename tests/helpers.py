"""Test helpers: wait for what workers do through their signals, never by sleeping."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from spinach import signals

#: Seconds a test waits for an expected event before failing; generous, as a passing test
#: never waits that long and a loaded CI machine can be slow.
WAIT_TIMEOUT = 15.0

_JOB_SIGNALS = ("job_started", "job_finished", "job_schedule_retry", "job_failed")


@dataclass
class Event:
    signal: str
    task_name: str
    job_id: str
    status: str
    retries: int
    err: BaseException | None = None


class SignalRecorder:
    """Records the job signals of one namespace and lets a test wait on them."""

    def __init__(self, namespace: str):
        self.namespace = namespace
        self.events: list[Event] = []
        self._condition = threading.Condition()
        self._receivers = []
        for name in _JOB_SIGNALS:
            receiver = self._make_receiver(name)
            getattr(signals, name).connect(receiver, sender=namespace, weak=False)
            self._receivers.append((name, receiver))

    def _make_receiver(self, name: str) -> Callable:
        def receiver(sender, job, err=None, **kwargs):
            event = Event(name, job.task_name, job.id, job.status.name, job.retries, err)
            with self._condition:
                self.events.append(event)
                self._condition.notify_all()

        return receiver

    def close(self) -> None:
        for name, receiver in self._receivers:
            getattr(signals, name).disconnect(receiver, sender=self.namespace)

    def of(self, signal: str, task_name: str | None = None) -> list[Event]:
        with self._condition:
            return [
                e
                for e in self.events
                if e.signal == signal and (task_name is None or e.task_name == task_name)
            ]

    def wait_for(self, predicate: Callable[[], bool], timeout: float = WAIT_TIMEOUT) -> None:
        """Wait until ``predicate()`` holds, re-checked at each signal; fail on timeout."""
        with self._condition:
            if not self._condition.wait_for(predicate, timeout):
                raise AssertionError(f"timed out; events so far: {self.events}")

    def wait_for_count(
        self, signal: str, count: int, task_name: str | None = None, **kwargs
    ) -> list[Event]:
        # the condition's lock is reentrant: ``of`` may take it inside ``wait_for``
        self.wait_for(lambda: len(self.of(signal, task_name)) >= count, **kwargs)
        return self.of(signal, task_name)


def wait_until(condition: Callable[[], bool], timeout: float = WAIT_TIMEOUT) -> bool:
    """Poll ``condition`` until true or ``timeout``, for state only polling can observe
    (a Redis server's counters): it waits for another process or thread, times nothing."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


class Subscriber:
    """A broker's subscriber thread, stopped and joined on exit."""

    def __init__(self, broker):
        self.broker = broker
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=broker.run_subscriber, args=(self.stopping,))

    def __enter__(self) -> Subscriber:
        self.thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stopping.set()
        self.thread.join(WAIT_TIMEOUT)
        assert not self.thread.is_alive(), "the subscriber did not stop"
