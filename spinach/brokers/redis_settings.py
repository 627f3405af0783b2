"""The tunables of ``RedisBroker`` in one object: ``RedisBroker(url, settings=RedisSettings())``.

Each field's default is a constant of ``spinach.brokers.redis`` (or ``spinach.const`` for the
liveness and polling ones, which the engine reads), where its trade-off is told at length.
The same names are accepted as keywords of ``RedisBroker``, as before this object existed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

from .. import const

#: Most jobs one fetch takes, whatever the caller asks. Higher takes more jobs per round
#: trip; lower keeps each fetch script short, so Redis serves others in between.
DEFAULT_MAX_FETCH_SIZE = 100

#: Most payloads a fetch looks at in each queue. Jobs at their task's ``max_concurrency``
#: stay in place and are looked at again by every fetch: higher lets a fetch find
#: runnable jobs behind more of them, lower bounds the time one fetch blocks Redis.
DEFAULT_FETCH_SCAN_LIMIT = 1000

#: Most future jobs one ``move_future_jobs`` moves; the rest move on the next calls.
#: Higher drains a backlog of due jobs in fewer calls, lower keeps each script short.
DEFAULT_MOVE_BATCH_SIZE = 1000

#: Seconds to wait for a reply before raising ``TimeoutError`` (and re-sending, see
#: ``DEFAULT_COMMAND_RETRIES``). Lower notices a dead server or network sooner; too low
#: fails commands that are only slow (a big batch, a busy server). Clients built from a
#: URL only: a client passed in keeps its own settings.
DEFAULT_SOCKET_TIMEOUT = 10.0

#: Seconds to wait for a TCP connection. Lower fails faster when the server is down.
DEFAULT_SOCKET_CONNECT_TIMEOUT = 5.0

#: Seconds a pooled connection may stay idle before a PING checks it before use. Lower
#: finds connections a firewall dropped sooner, at the cost of a PING now and then.
DEFAULT_HEALTH_CHECK_INTERVAL = 30.0

#: Times redis-py sends a command again after a connection error or timeout, before the
#: error reaches the caller. Safe because every script is idempotent. More rides out a
#: short blip inside the call; fewer hands an outage to the caller's loop sooner (each
#: retry waits a backoff, starting at ``reconnect_base_delay``).
DEFAULT_COMMAND_RETRIES = 3

#: Seconds the reply of a call that must not run twice (enqueue, return_jobs, recovery,
#: dead-letter maintenance) is kept, so that redis-py sending it again gets the reply
#: instead of running it again. Must exceed how long redis-py may keep sending one command
#: (``command_retries`` times the socket timeout plus the backoff); higher keeps more
#: replies (one small hash entry per call: mind very high enqueue rates).
DEFAULT_RESEND_WINDOW = 120.0

#: First delay, in seconds, before reconnecting (redis-py's retries of a command and the
#: subscriber's reconnections). Lower recovers sooner from a blip, higher spares a server
#: that is restarting.
DEFAULT_RECONNECT_BASE_DELAY = 0.1

#: Cap of the reconnection delays, in seconds. Lower resumes sooner once the server is
#: back; higher probes a long outage less often.
DEFAULT_RECONNECT_MAX_DELAY = 10.0

#: Seconds the subscriber waits for a message before checking whether it must stop. Lower
#: makes ``stop`` quicker, at the cost of more wake-ups of an idle subscriber thread.
DEFAULT_SUBSCRIBER_POLL_INTERVAL = 0.25

#: Seconds a thread's subscriber connection for ``watch`` may sit unused before another
#: thread's watch closes it. Longer spares a thread that watches now and then a reconnect;
#: shorter frees sooner the connections of threads that stopped watching (a web server's
#: pool of request threads waiting on results).
DEFAULT_LISTENER_IDLE_TIMEOUT = 60.0
#: Seconds an idle worker's registration for jobs handed over with their wake-up stays
#: valid after its last fetch (every idle poll renews it; 0 turns the hand-over off: the
#: enqueue only queues and notifies). Longer must exceed ``idle_poll_interval``, or the
#: registration lapses between polls and jobs take the slower way; shorter bounds how long
#: a worker frozen with its connection open (one that died is passed by at once) keeps
#: being handed jobs, which then wait for the dead-worker recovery.
DEFAULT_HANDOVER_TTL = 3.0

#: The fields passed on to ``Broker.__init__`` (read by the engine).
LIVENESS_FIELDS = (
    "heartbeat_interval",
    "dead_worker_threshold",
    "dead_worker_check_interval",
    "idle_poll_interval",
)


@dataclass(frozen=True)
class RedisSettings:
    """The tunables of a ``RedisBroker``; each default keeps its trade-off documented.

    The connection fields (socket timeouts, health checks, retries) apply to a client the
    broker builds from a URL; a client passed in keeps its own settings. Checked when built:
    sizes and ``reconnect_base_delay`` must be positive.
    """

    #: Jobs per fetch at most: more per round trip vs. shorter scripts.
    max_fetch_size: int = DEFAULT_MAX_FETCH_SIZE
    #: Payloads a fetch scans per queue: finds runnable jobs behind limited ones vs. bounds
    #: how long one fetch blocks Redis.
    fetch_scan_limit: int = DEFAULT_FETCH_SCAN_LIMIT
    #: Future jobs moved per call: drains a backlog sooner vs. shorter scripts.
    move_batch_size: int = DEFAULT_MOVE_BATCH_SIZE
    #: Seconds to wait for a reply: notices a dead server sooner vs. fails slow commands.
    socket_timeout: float = DEFAULT_SOCKET_TIMEOUT
    #: Seconds to wait for a TCP connection: fails sooner when down vs. slow networks.
    socket_connect_timeout: float = DEFAULT_SOCKET_CONNECT_TIMEOUT
    #: Idle seconds before a pooled connection is PINGed: finds dropped connections sooner
    #: vs. a PING now and then (not for a cluster).
    health_check_interval: float = DEFAULT_HEALTH_CHECK_INTERVAL
    #: Times redis-py re-sends a command: rides out a blip inside the call vs. hands an
    #: outage to the caller's loop sooner.
    command_retries: int = DEFAULT_COMMAND_RETRIES
    #: Seconds a call's reply is kept for a re-send: must outlast redis-py's re-sends vs.
    #: one small hash entry per call kept that long.
    resend_window: float = DEFAULT_RESEND_WINDOW
    #: First reconnection delay: recovers sooner from a blip vs. spares a restarting server.
    reconnect_base_delay: float = DEFAULT_RECONNECT_BASE_DELAY
    #: Cap of the reconnection delays: resumes sooner vs. probes a long outage less often
    #: (raised to ``reconnect_base_delay`` when below it).
    reconnect_max_delay: float = DEFAULT_RECONNECT_MAX_DELAY
    #: Subscriber wake-up period: quicker ``stop`` vs. more wake-ups of an idle thread.
    subscriber_poll_interval: float = DEFAULT_SUBSCRIBER_POLL_INTERVAL
    #: Idle seconds before a thread's watch connection is closed: fewer reconnects of a
    #: thread that watches now and then vs. connections of idle threads freed sooner.
    listener_idle_timeout: float = DEFAULT_LISTENER_IDLE_TIMEOUT
    #: Seconds an idle worker's hand-over registration lasts past its last fetch (0: no
    #: hand-over): must exceed ``idle_poll_interval`` vs. a frozen worker handed jobs longer.
    handover_ttl: float = DEFAULT_HANDOVER_TTL
    #: Seconds between heartbeats: dead workers noticed sooner vs. broker traffic.
    heartbeat_interval: float = const.HEARTBEAT_INTERVAL
    #: Silent seconds before a worker is declared dead: recovery sooner vs. a slow worker's
    #: job run twice (at least twice ``heartbeat_interval``).
    dead_worker_threshold: float = const.DEAD_WORKER_THRESHOLD
    #: Seconds between dead-worker checks: recovery sooner vs. broker traffic.
    dead_worker_check_interval: float = const.DEAD_WORKER_CHECK_INTERVAL
    #: Seconds an idle worker waits before polling again: jobs missed by a lost
    #: notification start sooner vs. idle traffic.
    idle_poll_interval: float = const.IDLE_POLL_INTERVAL

    def __post_init__(self) -> None:
        for name in ("max_fetch_size", "fetch_scan_limit", "move_batch_size"):
            _check_positive(name, getattr(self, name))
        _check_positive("reconnect_base_delay", self.reconnect_base_delay)

    def liveness(self) -> dict[str, float]:
        """The liveness and polling fields, as ``Broker.__init__`` takes them."""
        return {name: getattr(self, name) for name in LIVENESS_FIELDS}


def settings_from(settings: RedisSettings | None, tunables: Mapping[str, Any]) -> RedisSettings:
    """The settings of a ``RedisBroker`` given ``settings=`` or the tunables as keywords.

    A keyword that is not a tunable raises ``TypeError``, as an unknown keyword does; so
    does a tunable given both ways (which one should win is not for us to guess).
    """
    known = {field.name for field in fields(RedisSettings)}
    unknown = sorted(set(tunables) - known)
    if unknown:
        raise TypeError(f"RedisBroker() got unexpected keyword arguments: {', '.join(unknown)}")
    if settings is None:
        return RedisSettings(**tunables)
    if tunables:
        given = ", ".join(sorted(tunables))
        raise TypeError(
            f"RedisBroker(settings=..., {given}=...): {given} given both as keyword and in "
            f"settings; give tunables one way, e.g. settings=dataclasses.replace(settings, "
            f"{sorted(tunables)[0]}=...)"
        )
    return replace(settings)


def _check_positive(name: str, value: float) -> None:
    if value <= 0:
        raise ValueError(f"{name} must be positive, not {value!r}")
