"""Start a worker of ``tests.compat.proj`` in a subprocess and wait for it to be ready."""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
STARTUP_TIMEOUT = 60.0  #: Celery's worker starts slowly
STOP_TIMEOUT = 30.0


class WorkerProcess:
    """``python -m spinach_compat`` (or ``celery``) ``-A <project> worker ...`` (by default
    ``tests.compat.proj``)."""

    def __init__(self, impl: str, url: str, args: list[str], log: Path, beat: bool = False,
                 project: str = "tests.compat.proj"):  # fmt: skip
        self.impl, self.url, self.args, self.log = impl, url, args, log
        self.beat, self.project = beat, project
        self.process: subprocess.Popen | None = None
        self.banner = ""

    def command(self) -> list[str]:
        if self.impl == "celery":
            return [sys.executable, "-m", "celery", "-A", self.project, "worker",
                    "-P", "threads", *self.args]  # fmt: skip
        return [sys.executable, "-m", "spinach_compat", "-A", self.project, "worker",
                *self.args]  # fmt: skip

    def environment(self) -> dict[str, str]:
        env = {**os.environ, "PROJ_IMPL": self.impl, "PROJ_BROKER_URL": self.url}
        env["PYTHONPATH"] = str(ROOT)
        if self.beat:
            env["PROJ_BEAT"] = "1"
        return env

    def start(self) -> WorkerProcess:
        """Start it; return once its ``worker_ready`` receiver printed PROJ-READY."""
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                self.command(), cwd=ROOT, env=self.environment(), stdout=subprocess.PIPE,
                stderr=log,
            )  # fmt: skip
        self.banner = self._read_until(b"PROJ-READY", STARTUP_TIMEOUT)
        return self

    def _read_until(self, marker: bytes, timeout: float) -> str:
        assert self.process is not None and self.process.stdout is not None
        deadline = time.monotonic() + timeout
        seen = b""
        with selectors.DefaultSelector() as selector:
            selector.register(self.process.stdout, selectors.EVENT_READ)
            while marker not in seen:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not selector.select(remaining):
                    raise AssertionError(f"worker not ready: {self.describe(seen)}")
                chunk = os.read(self.process.stdout.fileno(), 65536)
                if not chunk:
                    raise AssertionError(f"worker exited: {self.describe(seen)}")
                seen += chunk
        return seen.decode(errors="replace")

    def describe(self, seen: bytes = b"") -> str:
        log = self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""
        return f"stdout={seen.decode(errors='replace')!r}\nlog:\n{log}"

    def stop(self) -> int:
        """SIGTERM (warm shutdown); its exit status."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            status = self.process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            status = self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()
        return status


def run_command(url: str, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    """``python -m spinach_compat -A tests.compat.proj ARGS`` to its end."""
    env = {**os.environ, "PROJ_IMPL": "spinach_compat", "PROJ_BROKER_URL": url,
           "PYTHONPATH": str(ROOT)}  # fmt: skip
    return subprocess.run(
        [sys.executable, "-m", "spinach_compat", "-A", "tests.compat.proj", *args], cwd=ROOT,
        env=env, capture_output=True, text=True, input=stdin, timeout=60,
    )  # fmt: skip


@contextlib.contextmanager
def project_worker(
    impl: str,
    redis_server: Any,
    db: int,
    log: Path,
    args: list[str],
    project: str = "tests.compat.proj",
) -> Iterator[tuple[WorkerProcess, str]]:
    """A worker of ``project`` (``impl``: the facade or real Celery) on an emptied Redis db,
    with the db's URL; stopped at the end, which must exit 0."""
    url = redis_server.url_for(db)
    with redis_server.client(db=db) as client:
        client.flushdb()
    worker = WorkerProcess(impl, url, args, log, project=project)
    worker.start()
    try:
        yield worker, url
    except BaseException:
        worker.stop()  # a failed test must not leave its worker running for the next ones
        raise
    assert worker.stop() == 0, worker.describe()
