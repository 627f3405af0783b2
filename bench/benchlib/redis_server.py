"""The harness's own throwaway redis-server: loopback, a free port (never 6379), no disk."""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import redis

#: A real Redis may serve this port: never used.
DEFAULT_REDIS_PORT = 6379

#: Seconds the server gets to answer PING.
STARTUP_TIMEOUT = 10.0


def free_port() -> int:
    """A loopback TCP port that was free a moment ago, never 6379."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        if port != DEFAULT_REDIS_PORT:
            return port


def cpu_seconds(client: redis.Redis) -> float:
    """CPU seconds the server of ``client`` used so far: ``used_cpu_sys + used_cpu_user``
    of ``INFO cpu`` (its main thread and background threads, microsecond resolution)."""
    info = client.info("cpu")
    return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])


class RedisServer:
    """``redis-server --save '' --appendonly no`` on 127.0.0.1 in a temporary directory."""

    def __init__(self, executable: str | None = None):
        self.executable = executable or shutil.which("redis-server") or "/usr/bin/redis-server"
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._dir = Path(tempfile.mkdtemp(prefix="bench-redis-"))
        self._process: subprocess.Popen | None = None
        self.client = redis.Redis.from_url(self.url, decode_responses=True, socket_timeout=None)

    def start(self) -> None:
        """Start the server and wait until it answers."""
        self._process = subprocess.Popen(
            self._arguments(),
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while True:
            try:
                self.client.ping()
                return
            except redis.ConnectionError:
                if self._process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server did not start on port {self.port}") from None
                time.sleep(0.05)

    def _arguments(self) -> list[str]:
        """The server's command line."""
        return [
            self.executable, "--port", str(self.port), "--bind", "127.0.0.1",
            "--save", "", "--appendonly", "no", "--dir", str(self._dir),
            "--logfile", str(self._dir / "redis.log"),
        ]  # fmt: skip

    def version(self) -> str:
        return str(self.client.info("server")["redis_version"])

    def cpu_seconds(self) -> float:
        """CPU seconds the server used so far, system and user (``INFO cpu``)."""
        return cpu_seconds(self.client)

    def close(self) -> None:
        """Stop the server and remove its directory."""
        self.client.close()
        if self._process is not None:
            self._process.terminate()
            self._process.wait(STARTUP_TIMEOUT)
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> RedisServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
