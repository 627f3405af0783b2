"""A throwaway ``redis-server`` for tests: loopback only, a free port, a temporary dir.

It never touches port 6379. ``kill`` (SIGKILL) and ``restart`` (same port and dir, so an
append-only file survives) let fault tests take the server away under a broker.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import redis

#: The port of a real Redis, never used by these servers.
DEFAULT_REDIS_PORT = 6379

#: Where redis-server is looked for when it is not on PATH.
FALLBACK_DIRS = ("/usr/bin", "/usr/sbin", "/usr/local/bin")

#: Seconds a starting server gets to answer PING, and a stopping one to exit.
STARTUP_TIMEOUT = 10.0
SHUTDOWN_TIMEOUT = 10.0


class RedisServerNotFound(RuntimeError):
    """No redis-server executable could be found."""


def find_executable(name: str) -> str:
    """The path of the program ``name``, from PATH or the usual system directories."""
    found = shutil.which(name)
    if found:
        return found
    for directory in FALLBACK_DIRS:
        candidate = Path(directory) / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    raise RedisServerNotFound(
        f"{name} not found on PATH nor in {', '.join(FALLBACK_DIRS)}: install it "
        "(e.g. apt-get install redis-server) to run the Redis tests"
    )


def find_redis_server() -> str:
    """The path of ``redis-server``."""
    return find_executable("redis-server")


def free_port() -> int:
    """A TCP port of 127.0.0.1 that was free a moment ago (bound to port 0, released);
    never Redis's default port, which may serve something real."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        if port != DEFAULT_REDIS_PORT:
            return port


class RedisServer:
    """One redis-server process on 127.0.0.1, in its own temporary directory.

    ``appendonly`` makes it log every write (fsync always) so ``kill`` then ``restart``
    loses nothing; ``password`` sets ``requirepass``; ``unix_socket`` also listens on a
    socket in its directory. Use it as a context manager, or ``start`` then ``close``.
    """

    def __init__(
        self,
        *,
        appendonly: bool = False,
        password: str | None = None,
        unix_socket: bool = False,
        extra_args: Sequence[str] = (),
        executable: str | None = None,
    ):
        self.executable = executable or find_redis_server()
        self.appendonly = appendonly
        self.password = password
        self.extra_args = list(extra_args)
        self.dir = Path(tempfile.mkdtemp(prefix="spinach-redis-"))
        self.unix_socket_path = str(self.dir / "redis.sock") if unix_socket else None
        self.port = 0
        self._process: subprocess.Popen | None = None

    # -- addresses -------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """``redis://`` URL of db 0 (with the password, if any)."""
        return self.url_for(0)

    def url_for(self, db: int) -> str:
        """``redis://`` URL of database ``db``."""
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/{db}"

    @property
    def unix_url(self) -> str:
        """``unix://`` URL of db 0, when started with ``unix_socket=True``."""
        if self.unix_socket_path is None:
            raise RuntimeError("this server was not started with unix_socket=True")
        auth = f"&password={self.password}" if self.password else ""
        return f"unix://{self.unix_socket_path}?db=0{auth}"

    def client(self, **kwargs: Any) -> redis.Redis:
        """A new client of db 0 (or ``db=...``); the caller closes it."""
        kwargs.setdefault("socket_timeout", 5.0)
        return redis.Redis(host="127.0.0.1", port=self.port, password=self.password, **kwargs)

    # -- process ---------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> RedisServer:
        """Start on a free port (a few ports are tried if one is taken meanwhile)."""
        for _ in range(5):
            self.port = free_port()
            if self._launch():
                return self
        raise RuntimeError(f"redis-server did not start; see {self.dir / 'redis.log'}")

    def restart(self) -> None:
        """Start again after ``stop`` or ``kill``, on the same port and directory."""
        if self.running:
            raise RuntimeError("the server is still running")
        if not self._launch():
            raise RuntimeError(f"redis-server did not restart; see {self.dir / 'redis.log'}")

    def stop(self) -> None:
        """Stop gracefully (SIGTERM: the append-only file is flushed)."""
        self._end(signal.SIGTERM)

    def kill(self) -> None:
        """Stop at once (SIGKILL), as a crash would."""
        self._end(signal.SIGKILL)

    def close(self) -> None:
        """Stop and delete the directory."""
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _arguments(self) -> list[str]:
        args = [self.executable, "--port", str(self.port), "--bind", "127.0.0.1"]
        args += ["--dir", str(self.dir), "--logfile", str(self.dir / "redis.log")]
        args += ["--save", "", "--daemonize", "no"]
        if self.appendonly:
            args += ["--appendonly", "yes", "--appendfsync", "always"]
        if self.password:
            args += ["--requirepass", self.password]
        if self.unix_socket_path:
            args += ["--unixsocket", self.unix_socket_path, "--unixsocketperm", "700"]
        return args + self.extra_args

    def _launch(self) -> bool:
        """Start the process and wait for PING; False if it exited (port taken)."""
        process = subprocess.Popen(
            self._arguments(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        self._process = process
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            if process.poll() is not None:
                return False
            if self._answers_ping():
                return True
            time.sleep(0.02)  # polling a starting process, not timing a test
        self.kill()
        return False

    def _answers_ping(self) -> bool:
        try:
            with self.client(socket_timeout=0.5, socket_connect_timeout=0.5) as client:
                return bool(client.ping())
        except redis.exceptions.BusyLoadingError:
            return False
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError):
            return False

    def _end(self, sig: signal.Signals) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(sig)
        try:
            process.wait(SHUTDOWN_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
