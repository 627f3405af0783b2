"""A tour of Spinach in one process, no server needed: ``python -m spinach.demo``.

It schedules plain jobs, a delayed job, a batch, a job that fails once then succeeds on
retry, a job that aborts and a periodic task on the in-process ``MemoryBroker``, runs them
on real worker threads, follows them through the engine's signals and prints what ran
when, then stops the workers and prints a summary. It takes about two seconds.
``--verbose`` also shows the library's own logs; ``--dashboard`` then serves the web
dashboard of the demo's in-process broker until Ctrl-C.
"""

from __future__ import annotations

import argparse
import logging
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, TextIO

from . import signals
from .brokers.memory import MemoryBroker
from .engine import Engine
from .exc import AbortException, RetryException
from .job import Job, JobStatus
from .task import Batch

NAMESPACE = "demo"
WORKER_THREADS = 4
DELAY = 1.0  #: seconds from scheduling to the delayed job
RETRY_DELAY = 0.5  #: seconds from the flaky job's first failure to its retry
PERIOD = 1.0  #: seconds between two runs of the periodic task
PERIODIC_RUNS = 3  #: runs of the periodic task the demo waits for
WAIT_TIMEOUT = 20.0  #: seconds to wait for everything before giving up

#: Jobs that must end (succeed, or fail for good) before the demo stops, by task.
EXPECTED_ENDS = {"greet": 3, "remind": 1, "square": 3, "flaky": 1, "doomed": 1, "tick": 3}


@dataclass
class Attempt:
    """One attempt of a job, as the signals told it; times are seconds since the epoch."""

    task: str
    call: str
    job_id: str
    number: int  #: 1 for the first attempt
    due: float
    started: float
    outcome: str = ""  #: succeeded, retrying, aborted or failed
    error: str | None = None
    retry_at: float | None = None


@dataclass
class DemoResult:
    """What the demo saw: every attempt, in the order they finished."""

    start: float
    attempts: list[Attempt] = field(default_factory=list)
    complete: bool = False
    elapsed: float = 0.0

    def of(self, task: str) -> list[Attempt]:
        """The attempts of one task's jobs."""
        return [a for a in self.attempts if a.task == task]

    def ended(self, task: str) -> int:
        """How many jobs of ``task`` ended: succeeded, or failed for good."""
        return sum(a.outcome in ("succeeded", "aborted", "failed") for a in self.of(task))


class Recorder:
    """Follows the jobs through the engine's signals and prints each attempt as it ends.

    Receivers run in the worker threads, hence the lock.
    """

    def __init__(self, out: TextIO, start: float):
        self.out = out
        self.result = DemoResult(start)
        self.done = threading.Event()
        self._lock = threading.Lock()
        self._running: dict[str, Attempt] = {}
        self._errors: dict[str, BaseException] = {}

    def rel(self, timestamp: float) -> str:
        """A time relative to the start of the demo, like ``+1.00s``."""
        return f"+{timestamp - self.result.start:.2f}s"

    def say(self, text: str) -> None:
        """Print a line, whole, whatever the thread."""
        with self._lock:  # one write per line, so lines of other threads never cut it
            self.out.write(text + "\n")
            self.out.flush()

    def started(self, sender: str, job: Job) -> None:
        attempt = Attempt(
            job.task_name, _call(job), job.id, job.retries + 1, job.at_timestamp, time.time()
        )
        with self._lock:
            self._running[job.id] = attempt

    def errored(self, sender: str, job: Job, err: BaseException) -> None:
        with self._lock:
            self._errors[job.id] = err

    def finished(self, sender: str, job: Job) -> None:
        with self._lock:
            attempt = self._running.pop(job.id)
            err = self._errors.pop(job.id, None)
            _set_outcome(attempt, job, err)
            self.result.attempts.append(attempt)
            complete = all(self.result.ended(t) >= n for t, n in EXPECTED_ENDS.items())
        self.say(self.describe(attempt))
        if complete:
            self.done.set()

    def describe(self, attempt: Attempt) -> str:
        """One line telling how an attempt went."""
        line = f"  {self.rel(attempt.started)}  {attempt.call:<18} "
        if attempt.outcome == "succeeded":
            line += "succeeded"
            line += f" on attempt {attempt.number}" if attempt.number > 1 else ""
            if attempt.due > self.result.start + 0.1:
                line += f" (was due {self.rel(attempt.due)})"
        elif attempt.retry_at is not None:
            line += f"failed: {attempt.error}; retry due {self.rel(attempt.retry_at)}"
        else:
            line += f"{attempt.outcome}: {attempt.error}; no retry"
        return line


def _set_outcome(attempt: Attempt, job: Job, err: BaseException | None) -> None:
    """Fill in how an attempt ended from its job's new status."""
    attempt.error = None if err is None else f"{type(err).__name__}: {err}"
    if job.status is JobStatus.SUCCEEDED:
        attempt.outcome = "succeeded"
    elif job.status is JobStatus.FAILED:
        attempt.outcome = "aborted" if isinstance(err, AbortException) else "failed"
    else:
        attempt.outcome = "retrying"
        attempt.retry_at = job.at_timestamp


def _call(job: Job) -> str:
    """How the job calls its task, like ``greet('Ada')``."""
    args = [repr(a) for a in job.task_args]
    args += [f"{k}={v!r}" for k, v in job.task_kwargs.items()]
    return f"{job.task_name}({', '.join(args)})"


def build_engine() -> Engine:
    """An engine on a MemoryBroker with the demo's tasks."""
    spin = Engine(MemoryBroker(), namespace=NAMESPACE)
    attempts = {"flaky": 0}

    @spin.task(name="greet")
    def greet(name: str) -> str:
        return f"Hello {name}"

    @spin.task(name="remind")
    def remind(what: str) -> str:
        return f"Time to {what}"

    @spin.task(name="square")
    def square(n: int) -> int:
        return n * n

    @spin.task(name="flaky", max_retries=3)
    def flaky() -> str:
        attempts["flaky"] += 1
        if attempts["flaky"] == 1:
            retry_at = datetime.now(timezone.utc) + timedelta(seconds=RETRY_DELAY)
            raise RetryException("the service is warming up", at=retry_at)
        return "done"

    @spin.task(name="doomed", max_retries=3)
    def doomed() -> None:
        raise AbortException("the input is invalid, retrying cannot help")

    @spin.task(name="tick", periodicity=timedelta(seconds=PERIOD))
    def tick() -> None:
        pass

    return spin


def schedule_jobs(spin: Engine, recorder: Recorder) -> None:
    """Schedule every kind of job, telling what and when."""
    now = recorder.rel(time.time())
    names = ("Ada", "Grace", "Linus")
    for name in names:
        spin.schedule("greet", name)
    recorder.say(f"  {now}  scheduled {len(names)} plain jobs of greet")
    due = datetime.now(timezone.utc) + timedelta(seconds=DELAY)
    spin.schedule_at("remind", due, "stretch")
    recorder.say(f"  {now}  scheduled remind('stretch') at {recorder.rel(due.timestamp())}")
    batch = Batch()
    for n in (1, 2, 3):
        batch.schedule("square", n)
    spin.schedule_batch(batch)
    recorder.say(f"  {now}  scheduled a batch of {len(batch)} jobs of square, all at once")
    spin.schedule("flaky")
    spin.schedule("doomed")
    recorder.say(f"  {now}  scheduled flaky() and doomed(), both with max_retries=3")
    recorder.say(f"  {now}  starting the workers; tick() runs every {PERIOD:g}s from now on")


@contextmanager
def following(recorder: Recorder, namespace: str) -> Iterator[None]:
    """Connect the recorder to the engine's signals for the duration of the block."""
    receivers: list[tuple[Any, Callable]] = [
        (signals.job_started, recorder.started),
        (signals.job_schedule_retry, recorder.errored),
        (signals.job_failed, recorder.errored),
        (signals.job_finished, recorder.finished),
    ]
    for signal, receiver in receivers:
        signal.connect_via(namespace)(receiver)
    try:
        yield
    finally:
        for signal, receiver in receivers:
            signal.disconnect(receiver, sender=namespace)


def run(
    out: TextIO = sys.stdout,
    timeout: float = WAIT_TIMEOUT,
    then: Callable[[Engine], None] | None = None,
) -> DemoResult:
    """Run the demo, printing to ``out``; what happened, ``complete`` if all did. ``then``
    is called with the engine once the demo is over, before the workers stop (``--dashboard``
    serves the dashboard meanwhile)."""
    spin = build_engine()
    recorder = Recorder(out, time.time())
    recorder.say(
        f"Spinach demo: in-process MemoryBroker, {WORKER_THREADS} worker threads, "
        f"namespace '{spin.namespace}'"
    )
    with following(recorder, spin.namespace):
        schedule_jobs(spin, recorder)
        spin.start_workers(number=WORKER_THREADS, block=False)
        try:
            recorder.result.complete = recorder.done.wait(timeout)
            if then is not None:
                then(spin)
        finally:
            spin.stop_workers()
    result = recorder.result
    result.elapsed = time.time() - result.start
    print_summary(result, recorder, out)
    return result


def print_summary(result: DemoResult, recorder: Recorder, out: TextIO) -> None:
    """Print one line per kind of job, then whether everything expected happened."""
    rel = recorder.rel
    remind, flaky, doomed = result.of("remind"), result.of("flaky"), result.of("doomed")
    ticks = result.of("tick")
    flaky_story = [
        f"{'failed' if a.outcome == 'retrying' else a.outcome} on attempt {a.number}" for a in flaky
    ]
    lines = [
        f"plain jobs      {_count(result, 'greet')}/3 succeeded",
        "delayed job     " + ", ".join(f"due {rel(a.due)}, ran {rel(a.started)}" for a in remind),
        f"batch           {_count(result, 'square')}/3 succeeded",
        "retried job     " + ", then ".join(flaky_story),
        "aborted job     " + ", ".join(f"{a.outcome}, {a.number} attempt only" for a in doomed),
        f"periodic task   ran {len(ticks)} times: " + ", ".join(rel(a.started) for a in ticks),
    ]
    print("Summary:", file=out)
    for line in lines:
        print(f"  {line}", file=out)
    if result.complete:
        print(f"All done in {result.elapsed:.2f}s; workers stopped.", file=out)
    else:
        print(f"Gave up waiting after {result.elapsed:.2f}s; workers stopped.", file=out)


def _count(result: DemoResult, task: str) -> int:
    return sum(a.outcome == "succeeded" for a in result.of(task))


def serve_dashboard(
    spin: Engine, port: int, out: TextIO, wait: Callable[[str], None] | None = None
) -> None:
    """Serve the dashboard of the demo's in-process broker on 127.0.0.1:``port`` (its
    workers keep running: the periodic task goes on) until ``wait(url)`` returns, by
    default at Ctrl-C. Needs the ``dashboard`` extra."""
    from .dashboard import DashboardServer, dashboard_source
    from .dashboard.app import Options

    source = dashboard_source(spin.broker)
    with DashboardServer(source, Options(namespace=spin.namespace), port=port) as server:
        print(f"Dashboard of the demo: {server.url}/ (Ctrl-C to stop)", file=out, flush=True)
        (wait or _until_interrupted)(server.url)


def _until_interrupted(url: str) -> None:
    with suppress(KeyboardInterrupt):
        threading.Event().wait()


def main(argv: list[str] | None = None) -> int:
    """``python -m spinach.demo [--verbose] [--dashboard [PORT]]``; 0 when everything
    expected happened."""
    parser = argparse.ArgumentParser(prog="python -m spinach.demo", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="show the library's logs")
    parser.add_argument(
        "--dashboard", nargs="?", const=9181, type=int, metavar="PORT",
        help="then serve the dashboard of the demo on 127.0.0.1:PORT (default 9181) until "
        "Ctrl-C; needs pip install 'spinach-queue[dashboard]' (scripts/demo.sh does it)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    from .cli import configure_logging

    configure_logging("info" if args.verbose else "warning", stream=sys.stdout)
    if not args.verbose:  # the demo prints each job's outcome itself
        logging.getLogger("spinach.worker").setLevel(logging.CRITICAL)
    if args.dashboard is None:
        return 0 if run().complete else 1
    port = args.dashboard
    result = run(then=lambda spin: serve_dashboard(spin, port, sys.stdout))
    return 0 if result.complete else 1


if __name__ == "__main__":
    raise SystemExit(main())
