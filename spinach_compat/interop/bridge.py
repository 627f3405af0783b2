"""The bridge: Celery's queued messages into the native engine's durable store.

One thread per worker process moves each message kombu LPUSHed onto a Celery queue's
lists into the native queue of the same name, as a native job (see ``message``), so the
worker's own threads run it and Celery clients read its result (see ``results``).

Delivery guarantee
------------------
A message moves in two atomic steps, each one Lua script:

1. ``take``: RPOPLPUSH from Celery's list to the queue's processing list
   ``{<namespace>}/celery_bridge/processing/<queue>``, shared by every bridge of the
   namespace;
2. ``commit``: store the converted job (or dead letter) and LREM the message from the
   processing list, in one script; a message no longer there is skipped.

Between the two, the message is in the processing list: a bridge re-processes every
processing list of its queues when it starts, after an error, and every
``recover_interval`` seconds. Killing the worker at any moment loses nothing; and as a
commit stores a message only when it takes it out of the processing list, a message is
stored once even when two bridges convert it (a dead bridge's leftovers recovered while
another converts them) or a command is sent again. The native engine then runs each job
at least once (see ``spinach.brokers.base``). ETA messages wait in the native future set,
in Redis, never in memory.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, cast

import redis
from kombu.utils.url import url_to_parts

from spinach.brokers.redis import RedisBroker
from spinach.brokers.redis_layout import split_url
from spinach.outage import Outage

from ..exceptions import UnsupportedFeature
from .message import convert
from .scripts import COMMIT, COMMIT_KEYS, TAKE, with_helpers

if TYPE_CHECKING:
    from ..app.base import Celery

logger = logging.getLogger("spinach_compat.interop.bridge")

#: Most messages one ``take`` moves; larger moves more per round trip, smaller keeps each
#: script short.
BATCH_SIZE = 100
#: Seconds between polls of Celery's lists while they are empty: lower starts a new Celery
#: message sooner, at the cost of more commands on an idle Redis.
POLL_INTERVAL = 0.1
#: Seconds between sweeps of the processing lists (messages a killed bridge left there).
RECOVER_INTERVAL = 30.0
#: kombu's priority steps: the list suffixes of a queue, highest priority first.
PRIORITY_STEPS = (0, 3, 6, 9)
PRIORITY_SEP = "\x06\x16"


#: Broker URL schemes the bridge reads Celery's lists from (kombu's Redis transport).
BRIDGEABLE_SCHEMES = frozenset({"redis", "rediss", "unix", "redis+socket"})


def check_bridgeable(app: Celery) -> str:
    """The Redis URL of ``app``'s broker; ``UnsupportedFeature`` if it is not Redis."""
    url = app.conf.broker_url or ""
    scheme = url_to_parts(url).scheme
    if scheme not in BRIDGEABLE_SCHEMES:
        what = f"{scheme}://" if url else "no broker_url"
        raise UnsupportedFeature(
            f"the Celery bridge (--celery-queues) needs a Redis broker, not {what}: it "
            "moves the messages Celery clients push to Redis lists (see "
            "migration_guide/features.md#interop-with-celery)"
        )
    return "unix" + url[len(scheme) :] if scheme == "redis+socket" else url


def celery_lists(queue: str) -> list[str]:
    """Celery's lists of ``queue``, highest priority first, as kombu names them."""
    return [queue if step == 0 else f"{queue}{PRIORITY_SEP}{step}" for step in PRIORITY_STEPS]


class CeleryBridge:
    """Moves Celery's messages of ``queues`` into ``app``'s native store, in a thread."""

    def __init__(
        self, app: Celery, queues: Sequence[str], *, batch_size: int = BATCH_SIZE,
        poll_interval: float = POLL_INTERVAL, recover_interval: float = RECOVER_INTERVAL,
    ):  # fmt: skip
        self.app = app
        self.queues = list(dict.fromkeys(queues))
        self.batch_size = batch_size
        self.poll_interval = poll_interval
        self.recover_interval = recover_interval
        url = check_bridgeable(app)
        broker = app.engine.broker
        if not isinstance(broker, RedisBroker):  # check_bridgeable saw a redis:// URL
            raise UnsupportedFeature(f"the Celery bridge needs a Redis broker, not {broker!r}")
        # A partitioned namespace (spinach.brokers.redis_partitions): onto partition 0.
        layout = getattr(broker, "partitions", [broker])[0]
        self.prefix, self.channel = layout.prefix, layout.channel
        self.client = redis.Redis.from_url(split_url(url)[0])
        self._take = self.client.register_script(TAKE)
        self._commit = self.client.register_script(with_helpers(COMMIT))
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        #: Messages stored as jobs and as dead letters so far (monitoring, tests).
        self.stored = self.buried = 0

    def processing_key(self, queue: str) -> str:
        return f"{self.prefix}celery_bridge/processing/{queue}"

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> CeleryBridge:
        """Start the bridge thread (it first recovers the processing lists)."""
        self._stopping.clear()
        self._thread = threading.Thread(target=self.run, name="celery-bridge", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop the thread after its current step; what it took is committed or kept."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self.client.close()

    def run(self) -> None:
        """The thread's body: recover, then move messages until ``stop``."""
        outage = Outage("Celery bridge", base_delay=0.1, max_delay=5.0)
        recover_due = 0.0
        while not self._stopping.is_set():
            try:
                if self.app.engine.broker.now() >= recover_due:
                    self.recover()
                    recover_due = self.app.engine.broker.now() + self.recover_interval
                moved = self.step()
                outage.succeeded()
            except Exception as exc:  # the thread lives on; leftovers are recovered
                recover_due = 0.0
                self._stopping.wait(outage.failed(exc))
                continue
            if not moved:
                self._stopping.wait(self.poll_interval)

    # -- the two steps -----------------------------------------------------------------------

    def step(self) -> int:
        """Take and commit one batch of each queue; how many messages were moved."""
        moved = 0
        for queue in self.queues:
            keys = [self.processing_key(queue), *celery_lists(queue)]
            messages = self._take(keys=keys, args=[self.batch_size])
            self.commit(queue, messages)
            moved += len(messages)
        return moved

    def recover(self) -> int:
        """Commit what the processing lists hold (a killed bridge's); how many."""
        count = 0
        for queue in self.queues:
            messages = cast("list[bytes]", self.client.lrange(self.processing_key(queue), 0, -1))
            if messages:
                logger.warning("Recovering %d Celery message(s) of queue %r taken by a "
                               "stopped bridge", len(messages), queue)  # fmt: skip
            for start in range(0, len(messages), self.batch_size):
                count += self.commit(queue, messages[start : start + self.batch_size])
        return count

    def commit(self, queue: str, messages: Sequence[bytes]) -> int:
        """Store converted messages and take them out of the processing list."""
        if not messages:
            return 0
        items: list[Any] = []
        for raw in messages:
            fresh = f"celery-{uuid.uuid4().hex}"
            converted = convert(self.app, queue, raw, fresh)
            if converted.dead:
                logger.error("Dead-lettered a message of Celery queue %r: %s", queue,
                             converted.reason)  # fmt: skip
            items += [raw, converted.id, converted.at, converted.payload, converted.reason, fresh]
        # now, after converting: a message due now is queued, not scheduled a moment later
        args = [self.prefix, self.app.engine.broker.now(), self.channel, queue, *items]
        keys = [self.processing_key(queue), *(self.prefix + name for name in COMMIT_KEYS)]
        stored, buried = self._commit(keys=keys, args=args)
        self.stored += stored
        self.buried += buried
        return len(messages)
