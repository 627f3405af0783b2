"""Reading what a process started by a test prints, so the test can wait for a line."""

from __future__ import annotations

import re
import subprocess
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO

#: Seconds a test waits for a process to print what it expects before failing; generous,
#: as a passing test never waits that long and a loaded CI machine can be slow.
OUTPUT_TIMEOUT = 60.0


class LogReader:
    """Reads the output of a process in a thread; waits are woken by each new line."""

    def __init__(self, stream: IO[str], name: str = "log-reader"):
        self._lines: list[str] = []
        self._eof = False
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._read, args=(stream,), name=name)
        self._thread.start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            with self._changed:
                self._lines.append(line)
                self._changed.notify_all()
        with self._changed:
            self._eof = True
            self._changed.notify_all()

    @property
    def text(self) -> str:
        with self._changed:
            return "".join(self._lines)

    def contains(self, needle: str, timeout: float = OUTPUT_TIMEOUT) -> bool:
        """Whether a line containing ``needle`` came before the end of the output."""
        return bool(self._matches(re.compile(re.escape(needle)), 1, timeout))

    def wait_for(
        self, pattern: str | re.Pattern[str], count: int = 1, timeout: float = OUTPUT_TIMEOUT
    ) -> list[re.Match[str]]:
        """The matches of ``pattern`` (a regex), once there are ``count``; fails if the
        output ends or ``timeout`` passes first."""
        regex = re.compile(pattern) if isinstance(pattern, str) else pattern
        matches = self._matches(regex, count, timeout)
        assert len(matches) >= count, f"{count} x {regex.pattern!r} not in:\n{self.text}"
        return matches

    def _matches(self, regex: re.Pattern[str], count: int, timeout: float) -> list[re.Match]:
        def found() -> list[re.Match[str]]:
            return list(regex.finditer("".join(self._lines)))

        with self._changed:
            self._changed.wait_for(lambda: len(found()) >= count or self._eof, timeout)
            return found()

    def join(self, timeout: float = OUTPUT_TIMEOUT) -> None:
        self._thread.join(timeout)


class StartedProcesses:
    """The processes a test starts, each with a ``LogReader`` of its output (stderr
    included); ``end_all`` kills what still runs and closes the rest (a fixture's
    teardown)."""

    def __init__(self) -> None:
        self.started: list[tuple[subprocess.Popen, LogReader]] = []

    def start(
        self, command: Sequence[str], *, cwd: str | Path, env: Mapping[str, str]
    ) -> tuple[subprocess.Popen, LogReader]:
        process = subprocess.Popen(list(command), cwd=cwd, env=dict(env), text=True,
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT)  # fmt: skip
        assert process.stdout is not None
        self.started.append((process, LogReader(process.stdout)))
        return self.started[-1]

    def end_all(self, timeout: float) -> None:
        for process, reader in self.started:
            if process.poll() is None:
                process.kill()
            process.wait(timeout)
            reader.join()
            if process.stdout is not None:
                process.stdout.close()
