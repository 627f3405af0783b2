"""One active beat per namespace: a leader lease in the broker's shared state.

Celery's beat has no coordination: two ``celery beat`` processes send every entry twice.
Here the beat processes of a namespace (one broker, one ``spinach_namespace``) share a
lease, so exactly one of them acts (ticks its scheduler) at a time; the others wait.

Time is cut in terms of ``term`` seconds (by the broker's clock, ``broker.now()``). A term
is held by whoever claims it first (``broker.claim``: set-if-absent, atomic), so no two
processes ever hold the same term. The holder of a term claims the next one once past the
middle of its own, so it keeps leading; a beat that does not lead tries to claim the
current term at each check. When the leader dies, the terms it claimed run out and a
standby claims the next free one: it takes over within ``2 * term`` plus its check
interval (at most ``term / 2``), that is within 25 s with the default term of 10 s. A
leader stopping gracefully releases its terms, and a standby takes over at its next check.
Clocks of the beat hosts are assumed within a fraction of a term of each other.

While it leads, a beat also keeps ``ALIVE`` set (expiring after two terms): workers read
it to leave ``beat_schedule`` to the beat (see ``spinach_compat.app.beat``). Each entry a
beat sends is recorded in the hash ``LAST_RUN`` (entry name -> UNIX time), so that a beat
taking over, and workers after the last beat stopped, carry on from the last run instead of
sending the entry again; workers record theirs in ``WORKER_RUN``, which a beat taking over
from them reads too.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timezone

from spinach.brokers.base import Broker

#: Seconds of one lease term. A standby takes over within two terms of the leader's death;
#: shorter terms take over sooner but cost a broker round trip per standby more often.
LEASE_TERM = 10.0

#: Shared-state names (under the namespace's key prefix).
TERM_PREFIX = "celery_beat/leader/"
ALIVE = "celery_beat/alive"
LAST_RUN = "celery_beat/last_run"
WORKER_RUN = "celery_beat/worker_run"

logger = logging.getLogger("spinach_compat.beat")


class LeaderLease:
    """This process's side of the lease: ``hold()`` before acting, ``release()`` when done."""

    def __init__(
        self, broker: Broker, term: float = LEASE_TERM, name: str = "beat",
        clock: Callable[[], float] | None = None,
    ):  # fmt: skip
        if term <= 0:
            raise ValueError(f"the beat lease term must be positive, not {term!r}")
        self.broker = broker
        self.term = term
        self.name = name
        self._clock = clock or broker.now
        self._held: set[int] = set()
        self._alive_term: int | None = None

    @property
    def check_interval(self) -> float:
        """The longest a beat may wait between two ``hold()`` calls."""
        return self.term / 2

    def hold(self) -> bool:
        """Whether this process leads now: claims the current term if free, and the next
        one once past the middle of a term it holds."""
        now = self._clock()
        current = int(now // self.term)
        self._held = {t for t in self._held if t >= current}
        if current not in self._held:
            self._claim(current)
        if current in self._held:
            if now - current * self.term >= self.term / 2 and current + 1 not in self._held:
                self._claim(current + 1)
            self._keep_alive(current)
            return True
        return False

    def release(self) -> None:
        """Give up the terms held (a graceful stop): a standby takes over at its next check."""
        if self._held:
            names = [_term_name(t) for t in self._held]
            self.broker.delete([*names, ALIVE])
            self._held.clear()
            self._alive_term = None

    def _claim(self, term: int) -> None:
        if self.broker.claim(_term_name(term), 3 * self.term):
            self._held.add(term)

    def _keep_alive(self, current: int) -> None:
        """Refresh ``ALIVE`` once per term held."""
        if self._alive_term != current:
            self.broker.set_values({ALIVE: self.name}, 2 * self.term)
            self._alive_term = current


def _term_name(term: int) -> str:
    return f"{TERM_PREFIX}{term}"


def beat_alive(broker: Broker) -> bool:
    """Whether a beat process leads in this namespace (workers then leave it the schedule)."""
    return broker.get_values([ALIVE])[0] is not None


def record_run(broker: Broker, entry_name: str, when: datetime, hash_name: str = LAST_RUN) -> None:
    """Note that a beat (or, in ``WORKER_RUN``, a worker) sent ``entry_name`` at ``when``."""
    broker.hash_set(hash_name, entry_name, repr(when.timestamp()))


def last_run(broker: Broker, entry_name: str, hash_name: str = LAST_RUN) -> datetime | None:
    """When a beat (or a worker) last sent ``entry_name`` (aware, UTC), None if never."""
    value = broker.hash_get(hash_name, entry_name)
    if value is None:
        return None
    try:
        return datetime.fromtimestamp(float(value), timezone.utc)
    except ValueError:
        logger.warning("Ignoring the unreadable last run %r of beat entry %r", value, entry_name)
        return None
