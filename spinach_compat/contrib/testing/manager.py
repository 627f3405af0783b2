"""Waiting for tasks in integration tests: Celery's ``Manager`` on the facade.

``Manager(app)`` polls until something happens (``wait_for``), asserts it does not happen for
a while (``ensure_not_for_a_while``), joins results with a report of those still missing
(``join``), and follows tasks through the workers (``assert_received``,
``assert_accepted``: built on ``inspect().query_task``, which the workers answer from the
broker's bookkeeping, see ``spinach_compat.worker.control``). Differences from Celery's:
``missing_results`` lists the results not stored yet (Celery's lists those its backend has
not cached); a task waiting in the queue is not "received"; one a worker prefetched (held for
a free thread while its tasks are short: ``spinach.workers.prefetch``) is, as ``reserved``.
"""

from __future__ import annotations

import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from functools import partial
from itertools import count
from typing import Any, TextIO

from kombu.utils.functional import retry_over_time

from ... import states
from ...exceptions import TimeoutError as ResultTimeoutError
from ...result import AsyncResult, ResultSet
from ...utils.time import humanize_seconds as _humanize_seconds

#: What ``wait_for`` warns while waiting (``emit_warning``).
E_STILL_WAITING = "Still waiting for {0}.  Trying again {when}: {exc!r}"

#: ``humanize_seconds`` showing times under a second too.
humanize_seconds = partial(_humanize_seconds, microseconds=True)

#: Seconds between two polls of ``wait_until_idle``: lower notices idleness sooner, each
#: poll reads the broker's running jobs once.
IDLE_POLL_INTERVAL = 0.05


class Sentinel(Exception):
    """Raised by ``true_or_raise``: what was waited for has not happened yet."""


class ManagerMixin:
    """The helpers of ``Manager``, for a class that has ``app``."""

    app: Any

    def _init_manager(
        self, block_timeout: float = 30 * 60.0, no_join: bool = False,
        stdout: TextIO | None = None, stderr: TextIO | None = None,
    ) -> None:  # fmt: skip
        self.stdout = sys.stdout if stdout is None else stdout
        self.stderr = sys.stderr if stderr is None else stderr
        self.connerrors = self.app.connection().recoverable_connection_errors
        self.block_timeout = block_timeout
        self.no_join = no_join

    def remark(self, s: str, sep: str = "-") -> None:
        """Print ``s`` after ``sep`` to ``stdout``."""
        print(f"{sep}{s}", file=self.stdout)

    def warn(self, s: str) -> None:
        self.stderr.write(s + "\n")

    def missing_results(self, r: Iterable[AsyncResult]) -> list[str]:
        """The ids of the results of ``r`` not stored yet."""
        return [res.id for res in r if res.state not in states.READY_STATES]

    def wait_for(
        self, fun: Callable, catch: Sequence[type[BaseException]] | type[BaseException],
        desc: str = "thing", args: tuple = (), kwargs: dict | None = None,
        errback: Callable | None = None, max_retries: int = 10, interval_start: float = 0.1,
        interval_step: float = 0.5, interval_max: float = 5.0, emit_warning: bool = False,
        **options: Any,
    ) -> Any:  # fmt: skip
        """``fun(*args, **kwargs)``, called again while it raises one of ``catch`` (what
        has not happened yet), at most ``max_retries`` more times, waiting longer each
        time (``interval_*``); the last error is raised when it never returns."""

        def on_error(exc: BaseException, intervals: Iterator[float], retries: int) -> float:
            interval = next(intervals)
            if emit_warning:
                when = humanize_seconds(interval, "in", " ")
                self.warn(E_STILL_WAITING.format(desc, when=when, exc=exc))
            if errback:
                errback(exc, interval, retries)
            return interval

        return self.retry_over_time(
            fun, catch, args=args, kwargs=kwargs or {}, errback=on_error,
            max_retries=max_retries, interval_start=interval_start,
            interval_step=interval_step, interval_max=interval_max, **options,
        )  # fmt: skip

    def ensure_not_for_a_while(
        self, fun: Callable, catch: Any, desc: str = "thing", max_retries: int = 20,
        interval_start: float = 0.1, interval_step: float = 0.02, interval_max: float = 1.0,
        emit_warning: bool = False, **options: Any,
    ) -> None:  # fmt: skip
        """``AssertionError`` if ``fun`` returns (the thing happens) within the retries."""
        try:
            self.wait_for(fun, catch, desc=desc, max_retries=max_retries,
                          interval_start=interval_start, interval_step=interval_step,
                          interval_max=interval_max, emit_warning=emit_warning)  # fmt: skip
        except catch:
            return
        raise AssertionError(f"Should not have happened: {desc}")

    def retry_over_time(self, *args: Any, **kwargs: Any) -> Any:
        """kombu's ``retry_over_time`` (a hook for subclasses)."""
        return retry_over_time(*args, **kwargs)

    def join(self, r: Any, propagate: bool = False, max_retries: int = 10,
             **kwargs: Any) -> Any:  # fmt: skip
        """Wait for the results of ``r`` (a result or a ``ResultSet``); each ``timeout``
        (a keyword of ``get``) passed is remarked with what is missing, up to
        ``max_retries`` times (0: forever), then ``AssertionError``."""
        if self.no_join:
            return None
        results = r if isinstance(r, ResultSet) else self.app.ResultSet([r])
        received: list[str] = []

        def on_result(task_id: str, value: Any) -> None:
            received.append(task_id)

        for _ in range(max_retries) if max_retries else count():
            received.clear()
            try:
                return results.get(callback=on_result, propagate=propagate, **kwargs)
            except (TimeoutError, ResultTimeoutError) as exc:
                waiting = ", ".join(self.missing_results(results))
                self.remark(f"Still waiting for {len(results) - len(received)}/"
                            f"{len(results)}: [{waiting[:128]}]: {exc!r}", "!")  # fmt: skip
            except self.connerrors as exc:
                self.remark(f"join: connection lost: {exc!r}", "!")
        raise AssertionError("Test failed: Missing task results")

    def inspect(self, timeout: float = 3.0) -> Any:
        return self.app.control.inspect(timeout=timeout)

    def query_tasks(self, ids: Sequence[str], timeout: float = 0.5) -> Iterator[tuple[str, Any]]:
        """``(node, {task id: [state, info]})`` of the workers knowing some of ``ids``."""
        yield from (self.inspect(timeout).query_task(*ids) or {}).items()

    def query_task_states(self, ids: Sequence[str], timeout: float = 0.5) -> dict[str, set]:
        """``{worker state: {task ids}}`` ('active', 'reserved', 'scheduled') of ``ids``."""
        found: dict[str, set] = defaultdict(set)
        for _node, reply in self.query_tasks(ids, timeout=timeout):
            for task_id, (state, _info) in reply.items():
                found[state].add(task_id)
        return found

    def assert_accepted(
        self, ids: Sequence[str], interval: float = 0.5,
        desc: str = "waiting for tasks to be accepted", **policy: Any,
    ) -> Any:  # fmt: skip
        """Wait (``wait_for``'s ``policy``) until a worker runs each of ``ids``."""
        return self.assert_task_worker_state(self.is_accepted, ids, interval=interval,
                                             desc=desc, **policy)  # fmt: skip

    def assert_received(
        self, ids: Sequence[str], interval: float = 0.5,
        desc: str = "waiting for tasks to be received", **policy: Any,
    ) -> Any:  # fmt: skip
        """Wait until a worker holds each of ``ids`` (here: runs it, see the module)."""
        return self.assert_task_worker_state(self.is_received, ids, interval=interval,
                                             desc=desc, **policy)  # fmt: skip

    def assert_result_tasks_in_progress_or_completed(
        self, async_results: Sequence[AsyncResult], interval: float = 0.5,
        desc: str = "waiting for tasks to be started or completed", **policy: Any,
    ) -> Any:  # fmt: skip
        """Wait until each result is STARTED or SUCCESS."""
        return self.assert_task_state_from_result(self.is_result_task_in_progress,
                                                  async_results, interval=interval, desc=desc,
                                                  **policy)  # fmt: skip

    def assert_task_state_from_result(self, fun: Callable, results: Sequence[AsyncResult],
                                      interval: float = 0.5, **policy: Any) -> Any:  # fmt: skip
        return self.wait_for(partial(self.true_or_raise, fun, results, timeout=interval),
                             (Sentinel,), **policy)  # fmt: skip

    @staticmethod
    def is_result_task_in_progress(results: Iterable[AsyncResult], **kwargs: Any) -> bool:
        return all(r.state in (states.STARTED, states.SUCCESS) for r in results)

    def assert_task_worker_state(self, fun: Callable, ids: Sequence[str], interval: float = 0.5,
                                 **policy: Any) -> Any:  # fmt: skip
        return self.wait_for(partial(self.true_or_raise, fun, ids, timeout=interval),
                             (Sentinel,), **policy)  # fmt: skip

    def is_received(self, ids: Sequence[str], **kwargs: Any) -> bool:
        return self._ids_matches_state(["reserved", "active", "ready"], ids, **kwargs)

    def is_accepted(self, ids: Sequence[str], **kwargs: Any) -> bool:
        return self._ids_matches_state(["active", "ready"], ids, **kwargs)

    def _ids_matches_state(self, expected: Sequence[str], ids: Sequence[str],
                           timeout: float = 0.5) -> bool:  # fmt: skip
        found = self.query_task_states(ids, timeout=timeout)
        return all(any(task_id in found[state] for state in expected) for task_id in ids)

    def true_or_raise(self, fun: Callable, *args: Any, **kwargs: Any) -> Any:
        """``fun(...)``; ``Sentinel`` when that is false."""
        res = fun(*args, **kwargs)
        if not res:
            raise Sentinel()
        return res

    def wait_until_idle(self) -> None:
        """Purge the queues, then wait until no worker runs a task."""
        control = self.app.control
        while control.purge():
            pass
        inspect = control.inspect()
        while sum(len(jobs) for jobs in (inspect.active() or {}).values()):
            time.sleep(IDLE_POLL_INTERVAL)


class Manager(ManagerMixin):
    """Test helpers for the tasks of ``app`` (see the module)."""

    def __init__(self, app: Any, **kwargs: Any):
        self.app = app
        self._init_manager(**kwargs)
