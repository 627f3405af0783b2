"""Worker processes of one measurement: start, watch their memory, stop (Linux /proc)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Sequence
from pathlib import Path

#: Seconds between two samples of the workers' memory. Lower catches shorter peaks at
#: the cost of scanning /proc more often on a busy machine.
RSS_INTERVAL = 0.1

#: Seconds stopping workers get after SIGTERM before they are killed.
STOP_TIMEOUT = 20.0

_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


class WorkerGroup:
    """The worker processes of one measurement, each in its own session.

    Their output goes to ``log_path``. ``started_at`` is the Unix time just before the
    first process was started.
    """

    def __init__(self, commands: Sequence[Sequence[str]], cwd: Path, env: dict, log_path: Path):
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = log_path.open("ab")
        self.started_at = time.time()
        self.processes = [
            subprocess.Popen(
                list(command), cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True,
            )
            for command in commands
        ]  # fmt: skip

    def check_running(self) -> None:
        """Raise if a worker process already exited (a broken command or app)."""
        for process in self.processes:
            if process.poll() is not None:
                raise RuntimeError(f"worker exited early with status {process.returncode}")

    def stop(self) -> None:
        """SIGTERM every process group, wait, then SIGKILL what is left."""
        for process in self.processes:
            _signal_group(process, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        for process in self.processes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(max(0.1, deadline - time.monotonic()))
        for process in self.processes:
            _signal_group(process, signal.SIGKILL)  # also forked children left behind
            process.wait()
        self._log.close()


def _signal_group(process: subprocess.Popen, signum: int) -> None:
    """Send ``signum`` to the session (process group) ``process`` leads."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signum)


def tree_rss(roots: Sequence[int]) -> int:
    """Bytes of resident memory of ``roots`` and all their descendants, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            parent = _parent_pid(entry.name)
            if parent is not None:
                children.setdefault(parent, []).append(int(entry.name))
    total, todo = 0, list(roots)
    while todo:
        pid = todo.pop()
        total += _rss(pid)
        todo += children.get(pid, [])
    return total


def _parent_pid(pid: str) -> int | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            return int(stat.read().rsplit(b")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def _rss(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm", "rb") as statm:
            return int(statm.read().split()[1]) * _PAGE_SIZE
    except (OSError, IndexError, ValueError):
        return 0


class RssSampler:
    """Samples the resident memory of a worker group's process trees in a thread."""

    def __init__(self, group: WorkerGroup, interval: float = RSS_INTERVAL):
        self._roots = [process.pid for process in group.processes]
        self._interval = interval
        self._stop = threading.Event()
        self.peak = 0
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, tree_rss(self._roots))
            self._stop.wait(self._interval)

    def stop(self) -> int:
        """Stop sampling; the peak in bytes."""
        self._stop.set()
        self._thread.join()
        return self.peak
