"""A starting worker waiting for its broker, as Celery's ``broker_connection_*`` settings.

``wait_for_broker`` tries to connect until it succeeds, logging one line per failed
attempt (its number, the broker's URL with the password masked, the cause); after the
last attempt it raises ``BrokerUnreachable``, whose message is the one line a worker
command prints before exiting 1. The waits grow as kombu's ``ensure_connection``: 2 s,
4 s, 6 s... up to 30 s. The sleep is injected, so tests wait for nothing.
"""

from __future__ import annotations

import itertools
import logging
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit

from ..brokers.redis_layout import PartitionLayoutError
from ..stop_signals import StopSignals

logger = logging.getLogger("spinach.worker_process")


@dataclass(frozen=True)
class ConnectionRetry:
    """How a starting worker retries an unreachable broker."""

    #: Retry at all (Celery's ``broker_connection_retry_on_startup``); False fails at once.
    enabled: bool = True
    #: Connection attempts before giving up (``broker_connection_max_retries``); 0 or None
    #: retries forever. More rides out a longer outage; fewer reports a wrong URL sooner.
    max_attempts: int | None = 100
    #: First wait in seconds, added to each next wait, up to ``interval_max`` (kombu's
    #: ``interval_start``/``interval_step``/``interval_max``). Shorter reconnects sooner
    #: after the broker comes back, at the cost of more attempts against a down server.
    interval_start: float = 2.0
    interval_step: float = 2.0
    interval_max: float = 30.0

    def intervals(self) -> Iterator[float]:
        """The waits between attempts: start, start + step, ... capped at max."""
        for n in itertools.count():
            yield min(self.interval_start + n * self.interval_step, self.interval_max)

    @property
    def limit(self) -> int | None:
        """The most attempts, None for no limit."""
        if not self.enabled:
            return 1
        return self.max_attempts or None


class BrokerUnreachable(Exception):
    """The broker could not be reached at start within the allowed attempts."""

    def __init__(self, url: str, attempts: int, cause: BaseException):
        self.url = url
        self.attempts = attempts
        self.cause = cause
        super().__init__(
            f"cannot reach the broker at {url} after {attempts} attempt(s): {_describe(cause)}"
        )


class BrokerRefused(BrokerUnreachable):
    """The broker answered, but refuses this worker (another partition count): retrying
    cannot help, so the first attempt ends the wait."""

    def __init__(self, url: str, cause: BaseException):
        Exception.__init__(self, f"the broker at {url} refused this worker: {cause}")
        self.url, self.attempts, self.cause = url, 1, cause


#: Errors of a broker that answered, which no retry can cure.
REFUSALS: tuple[type[Exception], ...] = (PartitionLayoutError,)


def wait_for_broker(
    connect: Callable[[], object],
    url: str,
    retry: ConnectionRetry = ConnectionRetry(),
    *,
    sleep: Callable[[float], object] = time.sleep,
) -> bool:
    """Call ``connect`` until it returns (True), as ``retry`` allows; ``url`` is for the
    logs (masked here). A ``sleep`` returning true (a stop signal came: see
    ``signal_aware_sleep``) ends the wait: False. Raises ``BrokerUnreachable`` after the
    last failed attempt, ``BrokerRefused`` (one of them) at once for one of ``REFUSALS``."""
    url = mask_password(url)
    limit = retry.limit
    intervals = retry.intervals()
    for attempt in itertools.count(1):
        try:
            connect()
        except REFUSALS as exc:
            raise BrokerRefused(url, exc) from exc
        except Exception as exc:
            if limit is not None and attempt >= limit:
                _log_attempt(attempt, limit, url, exc, None)
                raise BrokerUnreachable(url, attempt, exc) from exc
            delay = next(intervals)
            _log_attempt(attempt, limit, url, exc, delay)
            if sleep(delay):
                return False
        else:
            if attempt > 1:
                logger.info("Reached the broker at %s at attempt %d", url, attempt)
            return True
    raise AssertionError("unreachable")  # pragma: no cover - the loop only returns


def signal_aware_sleep(catcher: StopSignals | None) -> Callable[[float], bool]:
    """A ``sleep`` for ``wait_for_broker`` that ends early on SIGTERM or SIGINT, returning
    True then (the worker gives up starting); a plain sleep outside the main thread."""

    def sleep(delay: float) -> bool:
        if catcher is None:
            time.sleep(delay)
            return False
        deadline = time.monotonic() + delay
        while (left := deadline - time.monotonic()) > 0:
            received = catcher.wait(left)
            if received:
                logger.warning("Received %s while waiting for the broker: not starting",
                               received[0].name)  # fmt: skip
                return True
        return False

    return sleep


def _log_attempt(
    attempt: int, limit: int | None, url: str, exc: BaseException, delay: float | None
) -> None:
    then = "giving up" if delay is None else f"retrying in {delay:.2f} s"
    logger.warning(
        "Cannot reach the broker at %s (attempt %d of %s): %s; %s",
        url, attempt, limit or "unlimited", _describe(exc), then,
    )  # fmt: skip


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def mask_password(url: str) -> str:
    """``url`` with its password (if any) replaced by ``**``, as kombu's
    ``maybe_sanitize_url`` does; a ``password=`` query parameter is masked too."""
    try:
        password = urlsplit(url).password
    except ValueError:
        password = None
    if password:
        url = url.replace(f":{password}@", ":**@", 1)
    return re.sub(r"([?&]password=)[^&#]*", r"\1**", url)


def broker_address(broker: object) -> str:
    """Where ``broker`` connects, for the logs: a ``redis://`` or ``unix://`` URL (password
    masked) for a Redis client, else the broker's class name."""
    pool = getattr(getattr(broker, "redis", None), "connection_pool", None)
    kwargs = getattr(pool, "connection_kwargs", None)
    if not isinstance(kwargs, dict):
        return type(broker).__name__
    db = kwargs.get("db", 0)
    if kwargs.get("path"):
        return f"unix://{kwargs['path']}?db={db}"
    user, password = kwargs.get("username") or "", kwargs.get("password")
    auth = f"{user}:**@" if password else f"{user}@" if user else ""
    scheme = "rediss" if "SSL" in getattr(pool, "connection_class", type).__name__ else "redis"
    return f"{scheme}://{auth}{kwargs.get('host')}:{kwargs.get('port')}/{db}"
