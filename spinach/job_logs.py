"""The log lines each job writes while it runs, captured by its worker for its history
record (``spinach.history``).

``JobLogCapture`` is a logging handler a worker process installs on the root logger while
its workers run: a record emitted while a job runs in the current thread (or coroutine:
``spinach.context.current_job``) is formatted and kept under that job's id, up to a
number of lines and of bytes per job. Records of other code are ignored. Switch it off with
``Engine.history = HistorySettings(capture_logs=False)``.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable

from .context import current_job
from .forks import reset_after_fork
from .log_format import CachedTimeFormatter

#: Format of a captured line: time, level, logger and message (the job is known).
LINE_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

#: Most jobs whose lines are held at once; past it the oldest are dropped. Jobs are taken
#: when reported, so only lost reports pile up: bounds memory, never reached normally.
MAX_JOBS_HELD = 1000


class _Lines:
    __slots__ = ("bytes", "lines", "truncated")

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.bytes = 0
        self.truncated = False


class JobLogCapture(logging.Handler):
    """Keeps the first ``max_lines`` lines (``max_bytes`` in all) each job logs; only the
    jobs ``accepts`` (a job id) says are its worker's, when several engines run in one
    process."""

    def __init__(
        self, max_lines: int, max_bytes: int, accepts: Callable[[str], bool] = lambda _: True
    ):
        super().__init__()
        self.max_lines = max_lines
        self.max_bytes = max_bytes
        self._accepts = accepts
        self.setFormatter(CachedTimeFormatter(LINE_FORMAT))
        self._held: OrderedDict[str, _Lines] = OrderedDict()
        self._held_lock = threading.Lock()
        reset_after_fork(self)  # a job thread may fork (multiprocessing) and log there

    def _after_fork(self) -> None:
        """In a forked child: another job thread may have held the lock at the fork."""
        self._held_lock = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        job = current_job()
        if job is None or not self._accepts(job.id):
            return
        try:
            line = self.format(record)
        except Exception:
            self.handleError(record)
            return
        with self._held_lock:
            self._add(job.id, line)

    def _add(self, job_id: str, line: str) -> None:
        held = self._held.get(job_id)
        if held is None:
            held = self._held[job_id] = _Lines()
            while len(self._held) > MAX_JOBS_HELD:
                self._held.popitem(last=False)
        size = len(line.encode("utf-8", "replace"))
        if len(held.lines) >= self.max_lines or held.bytes + size > self.max_bytes:
            held.truncated = True
            return
        held.lines.append(line)
        held.bytes += size

    def pop(self, job_id: str) -> tuple[list[str], bool]:
        """The lines ``job_id`` logged, and whether some were dropped; forgets them."""
        with self._held_lock:
            held = self._held.pop(job_id, None)
        return ([], False) if held is None else (held.lines, held.truncated)

    def install(self) -> None:
        """Start capturing: on the root logger, so every logger's records reach it."""
        logging.getLogger().addHandler(self)

    def uninstall(self) -> None:
        logging.getLogger().removeHandler(self)
