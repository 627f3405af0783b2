"""The Redis broker: jobs shared by every worker process of a namespace, on one Redis.

Key layout
----------
Every key of a namespace starts with ``{<namespace>}/``: the braces make the namespace the
hash tag, so all its keys live in one Redis Cluster slot and every script may touch any of
them. ``{ns}/queue/<name>`` is a list of payloads (RPUSH to enqueue, read from the left);
``{ns}/future`` a sorted set of job ids by due time; ``{ns}/running`` and
``{ns}/running_meta`` hashes of the running jobs with their worker and task;
``{ns}/dead*`` the dead letters; ``{ns}/workers`` and ``{ns}/heartbeats`` the live worker
processes; ``{ns}/periodic*`` the periodic tasks. Wake-ups go out on the pub/sub channel
``{ns}/notifications/<db>``. ``SCRIPT_KEYS`` lists the fixed keys; the headers of the scripts
in ``redis_scripts/`` say what each holds. No code path uses ``KEYS`` or ``SCAN``: keys
built from data (queues, per-worker sets) are found through the sets that name them.
The shared state (``Broker.claim`` and after) lives under ``key(name)``, in the same slot,
with Redis's own TTLs; ``flush`` leaves it to them. ``publish_value`` also PUBLISHes each
value on a channel named after its key, which ``watch`` subscribes to (``redis_watch``);
an ``Unscoped`` name is a key outside the namespace, in a slot of its own.

Partitions
----------
``RedisBroker(..., partitions=N)`` (or ``?partitions=N`` in the URL) with N > 1 spreads the
namespace over N hash tags: partition ``i`` has every key above under ``{<ns>~i}/`` (or
``{<ns>~i~k}/``, see ``redis_layout.partition_tags``) instead of ``{<ns>}/`` (a complete
one-slot layout, with the same scripts), while the
shared state, the channel ``{<ns>}/notifications/<db>`` and the count itself
(``{<ns>}/partitions``, see ``redis_layout``) stay under ``{<ns>}/``. The fan-out, routing
and merged inspection are in ``redis_partitions``. One partition, the default, is the
layout above unchanged.

Atomicity
---------
Every state change is one Lua script (``redis_scripts/<name>.lua``, with the helpers of
``_common.lua`` it calls prepended), run with EVALSHA through ``redis_calls`` (loaded again after
a server restart). Scripts take the current time as an argument, from the broker's injected clock,
never from Redis ``TIME``: tests move time with a ``FakeClock``. Job payloads are the JSON
of ``job_codec.encode``; the scripts decode them with cjson only to read and check fields,
and never rebuild one (cjson would turn ``[]`` into ``{}``): a payload that must change is
built in Python (a periodic job is a template ``job_codec`` encoded, completed with its id
and due time by ``job_from_template``; the field list the scripts check comes from the
codec too).

Idempotency
-----------
redis-py sends a command again when the connection drops before the reply arrives (see
``command_retries``), so every script may run twice and must leave the same state and
give the caller the same reply:

* enqueue, push_raw, return_jobs, recover_jobs and the dead-letter maintenance carry a
  fresh call id: the script keeps its reply in ``{ns}/replies`` for ``resend_window``
  seconds, and a call whose id is known returns that reply and does nothing. So a job that
  ran and finished between the two runs is not enqueued again. Besides, enqueue never
  stores a job id already queued (``{ns}/queued_ids`` counts the queued copies of each
  id), waiting in the future set or running.
* fetch carries a fresh fetch id; its reply is kept in the worker's
  ``{ns}/fetched/<worker id>`` hash and returned as is when the same fetch id comes again.
  The broker acknowledges a reply with its next fetch, which deletes it; the cache of a
  worker goes when it deregisters or is declared dead. When a fetch raises (its reply may
  be lost), the next call reuses its fetch id, so the jobs it took are delivered then
  rather than stranded in running: there is no expiry to outlast, an outage of any length
  loses no job.
* finish and dead_letter act only on a job still running under the caller's worker id:
  the second run finds nothing to do. A late worker (declared dead, then back) cannot
  disturb the rerun of its job, which runs under another worker id.
* move_future_jobs moves the due jobs and the schedule of periodic tasks in one script:
  running it again finds nothing due (its count may then say 0).
* recovery is two scripts: ``expire_dead_workers`` (drops silent workers, lists the jobs
  of unregistered ones; safe to repeat) then ``recover_jobs`` (moves each job if still
  running under that worker, which is still not registered), with the new payloads built
  in Python in between.
* registering workers, heartbeats, periodic tasks and limits write the same values again.

Hand-over (the job handed over with its wake-up)
------------------------------------------------
A fetch that takes fewer jobs than it asked for, from a worker whose subscriber listens,
registers the worker as idle under the id of its *next* fetch, made in advance:
``{ns}/idle`` holds ``{f: that fetch id, n: free workers left, e: lapse time, q: queues}``
and ``{ns}/idle_for/<queue>`` the workers registered per queue. The enqueue script, for a
new job due now on a queue (or the priority band of a queue) a live registration serves,
whose task has no ``max_concurrency`` nor rate limit, does that fetch's work instead of
queueing it (a job back from a failed attempt is queued and notified as before): marks it
running under the worker in the attempt of the registered fetch id, adds it to the jobs
handed over under that id in ``{ns}/fetched/<worker id>`` (appended: a hand-over costs the
same whatever the room), takes one off ``n`` and publishes ``[fetch id, job id,
payload]`` on the worker's channel ``{ns}/handed/<worker id>`` (no namespace wake-up for
it). The subscriber hands it to the arbiter's turn with no
round trip (``handovers_received`` counts them). Any fetch of the worker ends its
registration and brings in its reply the jobs handed to it that the subscriber did not
deliver (the worker leaves out those it did, by job id), counting them against the free
workers. The subscriber's turn fetches once the registration is spent, to register the
worker again; the idle arbiter's polls renew its lapse time.

Delivery guarantee, unchanged: a handed job is in ``running`` under its worker from the
moment it is handed, exactly as a fetched job. A lost message (the subscriber was
reconnecting) delays it until the worker's next fetch, at most ``idle_poll_interval``
later; a stopping worker's last fetch ends its registration and gives back what it was
handed and never started. Enqueue hands over only to a worker whose channel has a
subscriber (``PUBSUB NUMSUB``, on the namespace's node, where the subscriber listens): a
process that died closed its connection and is passed by at once, its registration
removed. One frozen or cut off with its connection still open keeps its registration
until its lapse time (``handover_ttl`` after its last fetch, 3 s by default); the jobs
handed to it meanwhile are recovered with its other running jobs once it is declared dead
(``dead_worker_threshold``): at-least-once or at-most-once as any fetched job.
Partitioned namespaces register nothing (the enqueue finds no registration);
``handover_ttl=0`` turns it off.

Connection loss
---------------
Public methods raise ``redis.exceptions.ConnectionError`` / ``TimeoutError`` (listed in
``RedisBroker.connection_errors``) once redis-py's own retries are spent; the engine's
loops own the waiting, with ``spinach.outage``. ``run_subscriber`` reconnects
by itself, with backoff, until told to stop.

redis-py's own retries would hide a short outage: the broker's client logs once when a
command or a connection first has to be tried again ("Lost the connection to Redis at
host:port (error); retrying") and once when one goes through again ("Reconnected to Redis
at host:port after N retried attempt(s) in X s"), once per outage whatever the number of
threads and retries (see ``spinach.brokers.redis_client``). A pooled connection the server
closed while it was idle, which redis-py replaces at once before sending anything, is not
logged: no command failed.

Redis Cluster
-------------
A ``redis.cluster.RedisCluster`` client, or a ``redis+cluster://host:port`` URL
(``rediss+cluster://`` for TLS; one node, the others are discovered), runs the broker on a
cluster. Every script is given the fixed keys of its namespace as KEYS, so redis-py sends
it to the node owning the namespace's slot; the keys a script builds from data share the
hash tag, hence the slot (scripts have no ``#!lua`` flags, so Redis lets them touch keys
they were not given, on the node owning their slot). Notifications use classic PUBLISH,
which the cluster forwards to every node, so the subscriber (a ``ClusterPubSub`` on a
client of its own) hears them whatever node it listens on. Inspection pipelines run on the
namespace's node too (one slot), as transactions from redis-py 6.1 on. A cluster has no db:
channels name db 0.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import importlib.resources
import itertools
import json
import logging
import re
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, cast

import redis as redis_py
from redis.backoff import ExponentialWithJitterBackoff, NoBackoff
from redis.cluster import RedisCluster
from redis.exceptions import ClusterDownError, RedisClusterException, SlotNotCoveredError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry

from .. import job_codec, priority
from ..exc import InvalidPayloadError
from ..forks import reset_after_fork
from ..history import FINISHED_COUNT_MINUTES, HistoryRecord, counts_by_queue
from ..job import Job, JobStatus
from ..outage import Outage
from ..task import Task
from .base import (
    Broker,
    Clock,
    DeadLetter,
    Unscoped,
    Watch,
    WorkerInfo,
    log_kept_dead_letters,
    normalize_queues,
)
from .redis_calls import script_callers
from .redis_client import (
    Client,
    HiddenRetries,
    LoggedRetry,
    RetryLoggingCluster,
    address,
    binary_client,
    binary_cluster_client,
    close,
    cluster_twin,
    cluster_url,
    disconnect,
    log_hidden_retries,
)
from .redis_layout import check_layout, check_namespace, resolve_count, split_url
from .redis_settings import RedisSettings, settings_from
from .redis_watch import Watchers

logger = logging.getLogger(__name__)

#: Where ``RedisBroker()`` connects without a client or URL.
DEFAULT_URL = "redis://localhost:6379/0"


#: The fixed keys of the namespace, in the order given to each script as KEYS (the header
#: of each script names them); the full key is the namespace prefix then the name.
SCRIPT_KEYS: dict[str, tuple[str, ...]] = {
    "enqueue": (
        "queues", "queued_ids", "future", "future_jobs", "future_queues", "running",
        "running_meta", "running_by_task", "running_owners", "replies", "replies_at",
        "unique_of", "limits", "rate_limits", "idle",
    ),
    "push_raw": ("queues", "queued_ids", "replies", "replies_at"),
    "fetch": (
        "queues", "queued_ids", "running", "running_meta", "running_by_task",
        "running_owners", "limits", "dead", "dead_queue", "dead_reason", "dead_order",
        "fetchers", "dead_time", "dead_seq", "future", "future_jobs", "future_queues",
        "rate_limits", "rate_tat", "rate_deferred", "unique_of", "idle",
    ),
    "finish": (
        "running", "running_meta", "running_by_task", "running_owners", "limits", "unique_of",
    ),
    "return_jobs": (
        "queues", "queued_ids", "future", "running", "running_meta", "running_by_task",
        "running_owners", "replies", "replies_at",
    ),
    "dead_letter": (
        "running", "running_meta", "running_by_task", "running_owners", "dead",
        "dead_queue", "dead_reason", "dead_order", "dead_time", "dead_seq", "unique_of",
        "dead_unique", "dead_unique_ttl",
    ),
    "set_dead_letter_reasons": ("dead", "dead_reason"),
    "move_future_jobs": (
        "queues", "queued_ids", "future", "future_jobs", "future_queues", "periodic",
        "periodic_tasks",
    ),
    "next_due": ("future", "periodic"),
    "register_periodic_tasks": ("periodic", "periodic_tasks"),
    "set_concurrency_keys": ("limits", "rate_limits"),
    "register_worker": ("workers", "heartbeats"),
    "heartbeat": ("workers", "heartbeats"),
    "deregister_worker": ("workers", "heartbeats", "fetchers", "idle"),
    "expire_dead_workers": (
        "workers", "heartbeats", "running", "running_owners", "fetchers", "idle",
    ),
    "recover_jobs": (
        "workers", "queues", "queued_ids", "running", "running_meta", "running_by_task",
        "running_owners", "dead", "dead_queue", "dead_reason", "dead_order", "fetchers",
        "dead_time", "dead_seq", "replies", "replies_at", "unique_of",
    ),
    "retry_dead_letters": (
        "queues", "queued_ids", "dead", "dead_queue", "dead_reason", "dead_order",
        "dead_time", "replies", "replies_at", "future", "running", "unique_of", "dead_unique",
        "dead_unique_ttl",
    ),
    "purge_dead_letters": (
        "dead", "dead_queue", "dead_reason", "dead_order", "dead_time", "replies",
        "replies_at", "dead_unique", "dead_unique_ttl",
    ),
    "record_history": (
        "history", "history_jobs", "finished_counts", "finished_fields", "replies",
        "replies_at",
    ),
    "flush": (
        "queues", "fetchers", "running_owners", "unique_of", "idle", "queued_ids", "future",
        "future_jobs", "future_queues", "running", "running_meta", "running_by_task", "limits",
        "periodic", "periodic_tasks", "workers", "heartbeats", "dead", "dead_queue",
        "dead_reason", "dead_order", "dead_time", "dead_seq", "replies", "replies_at",
        "history", "history_jobs", "finished_counts", "finished_fields", "rate_limits",
        "rate_tat", "rate_deferred", "dead_unique", "dead_unique_ttl",
    ),
}  # fmt: skip

#: The scripts of the shared state (``Broker.claim`` and after): their keys are the entries
#: they change, given as KEYS by each call (the header of each script names them); those
#: that keep a reply for a call sent again also get ``replies`` and ``replies_at``.
SHARED_SCRIPTS = ("claim", "increment", "set_values", "add_members", "hash_set", "publish_value")

_SCRIPT_DIR = "redis_scripts"

#: Failed calls whose call id is remembered for a retry of the same call.
_MAX_FAILED_CALLS = 256
_HEADER_KEY = re.compile(r"^-- KEYS\[(\d+)\]\s+(\w+)", re.MULTILINE)
_HELPER_DEF = re.compile(r"^local function (\w+)", re.MULTILINE)
_CODEC_NAMES = re.compile(r"\b(JOB_FIELDS|JOB_NONEMPTY|JOB_HEAD)\b")


@functools.cache
def script_source(name: str) -> str:
    """The Lua source run for script ``name``: the job fields of the codec if it reads
    them, the shared helpers it calls (directly or through another), then the script.

    Redis runs a script's whole body at every call: each helper prepended is a closure
    built per call (and garbage to collect), so a script gets only those it uses."""
    directory = importlib.resources.files(__package__) / _SCRIPT_DIR
    script = (directory / f"{name}.lua").read_text(encoding="utf-8")
    helpers = _common_helpers((directory / "_common.lua").read_text(encoding="utf-8"))
    needed = _called(script, helpers)
    while more := {c for n in needed for c in _called(helpers[n], helpers)} - needed:
        needed |= more
    chunks = [chunk for helper, chunk in helpers.items() if helper in needed]
    common = "\n".join(chunks)
    fields = _CODEC_NAMES.search(_code(common + script)) is not None
    return f"{job_codec.lua_declarations() if fields else ''}{common}\n{script}"


def _common_helpers(common: str) -> dict[str, str]:
    """The helpers of ``_common.lua``, in order: name -> its paragraph (comment and
    function; paragraphs are separated by blank lines, those defining none are prose)."""
    helpers = {}
    for paragraph in common.split("\n\n"):
        if found := _HELPER_DEF.search(paragraph):
            helpers[found.group(1)] = paragraph + "\n"
    return helpers


def _called(text: str, helpers: Mapping[str, str]) -> set[str]:
    """The helpers whose names the code of ``text`` (comments left out) mentions."""
    words = set(re.findall(r"\w+", _code(text)))
    return {name for name in helpers if name in words}


def _code(text: str) -> str:
    """Lua text without its ``--`` comments."""
    return "\n".join(line.split("--", 1)[0] for line in text.splitlines())


def header_keys(name: str) -> dict[int, str]:
    """The ``KEYS[i] name`` pairs the header of script ``name`` declares (for tests)."""
    directory = importlib.resources.files(__package__) / _SCRIPT_DIR
    text = (directory / f"{name}.lua").read_text(encoding="utf-8")
    return {int(index): key for index, key in _HEADER_KEY.findall(text)}


def _text(value: bytes | str) -> str:
    """A reply as text; payloads that are not UTF-8 keep their bytes visible."""
    return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else value


class RedisBroker(Broker):
    """A broker keeping jobs in Redis, shared by the worker processes of a namespace.

    ``redis`` is a ``redis.Redis`` client or a URL (``redis://``, ``rediss://``,
    ``unix://``, with password and db in it); default ``redis://localhost:6379/0``. For
    Redis Cluster, a ``redis.cluster.RedisCluster`` client or a ``redis+cluster://`` URL
    (``rediss+cluster://`` for TLS) naming one node, e.g.
    ``redis+cluster://:password@10.0.0.1:7000``: the client connects to it at once to
    discover the others. ``partitions=N`` (or ``?partitions=N`` in the URL), 1 to 1024,
    spreads the namespace over N hash tags: N > 1 builds a ``PartitionedRedisBroker``
    (``redis_partitions``), a subclass.

    The tunables come in one ``settings`` object (``RedisSettings``: each field says what
    it trades off), or as keywords of the same names (``RedisBroker(url,
    max_fetch_size=10)``), not both. A client passed in keeps its own connection settings;
    one built from a URL gets the ``socket_timeout``, ``socket_connect_timeout``,
    ``health_check_interval`` (not for a cluster: redis-py's cluster client has none) and
    ``command_retries`` of the settings. The
    retries redis-py makes inside a call are logged once per outage: a ``redis.Redis``
    passed in gets its plain ``Retry`` replaced, in place, by an equal one that also logs
    (a ``Retry`` subclass of yours is left alone); a ``RedisCluster`` passed in is left as
    it is, and its retries are not logged. The liveness and polling tunables are read by the
    engine (``spinach.const``).
    """

    _partitioned = False  #: whether the class spreads a namespace over partitions

    #: What a broker call raises when Redis cannot be reached; callers retry on these. A
    #: cluster adds a node that is down (``ClusterDownError``) or a slot nobody serves yet.
    connection_errors: tuple[type[Exception], ...] = (
        RedisConnectionError,
        RedisTimeoutError,
        ClusterDownError,
        SlotNotCoveredError,
    )

    def __new__(cls, redis: Client | str | None = None, *args: Any, **kwargs: Any) -> Any:
        """``partitions=N > 1`` (or ``?partitions=N``) makes a ``PartitionedRedisBroker``."""
        url_count = split_url(redis)[1] if isinstance(redis, str) else None
        if cls is RedisBroker and resolve_count(url_count, kwargs.get("partitions")) > 1:
            from .redis_partitions import PartitionedRedisBroker

            return super().__new__(PartitionedRedisBroker)
        return super().__new__(cls)

    def __init__(
        self,
        redis: Client | str | None = None,
        *,
        clock: Clock = time.time,
        worker_id: str | None = None,
        settings: RedisSettings | None = None,
        partitions: int | None = None,
        **tunables: Any,
    ):
        url_count = None
        if isinstance(redis, str):
            redis, url_count = split_url(redis)
        #: How many partitions the namespace is spread over (``redis_partitions``).
        self.partition_count = resolve_count(url_count, partitions)
        if self.partition_count > 1 and not self._partitioned:
            raise ValueError(f"{type(self).__name__} cannot spread a namespace over partitions")
        settings = settings_from(settings, tunables)
        super().__init__(clock=clock, worker_id=worker_id, **settings.liveness())
        self._apply_settings(settings)
        #: The retries redis-py makes inside calls, logged once per outage.
        self.hidden_retries = HiddenRetries()
        self._redis = self._make_client(redis, settings)
        self.hidden_retries.address = address(self._redis)
        sources = {name: script_source(name) for name in (*SCRIPT_KEYS, *SHARED_SCRIPTS)}
        self._scripts, self._stash = script_callers(self._redis, sources)
        self._info_json: str | None = None  # what this worker registered, to re-register
        self._fetch_lock = threading.Lock()
        self._pending_fetch: _FetchCall | None = None  # a fetch whose reply may be lost
        self._init_handover()
        self._acks: list[str] = []  # fetch ids whose replies arrived, to delete
        self._calls_lock = threading.Lock()
        self._failed_calls: dict[tuple, str] = {}  # call ids of calls that may have run
        self._new_id_prefix()
        reset_after_fork(self)  # a forked child draws its own id prefix
        #: Notifications relayed by ``run_subscriber`` so far (for monitoring and tests).
        self.notifications_received = 0
        #: The subscriber connections of ``watch``, one per thread.
        self.watchers = Watchers(self._redis, self.now, settings.listener_idle_timeout)
        self.set_namespace(self.namespace)

    def _apply_settings(self, settings: RedisSettings) -> None:
        #: The tunables this broker runs with (see ``RedisSettings``).
        self.settings = settings
        self.max_fetch_size: int = settings.max_fetch_size
        self.fetch_scan_limit = settings.fetch_scan_limit
        self.move_batch_size = settings.move_batch_size
        self.resend_window = settings.resend_window
        self.reconnect_base_delay = settings.reconnect_base_delay
        self.reconnect_max_delay = max(settings.reconnect_max_delay, self.reconnect_base_delay)
        self.subscriber_poll_interval = settings.subscriber_poll_interval
        #: See ``handover_ttl`` in ``RedisSettings`` (0: no hand-over).
        self.handover_ttl = settings.handover_ttl

    def _init_handover(self) -> None:
        """The state of the job handed over with its wake-up (see the module docstring)."""
        self._handed_lock = threading.Lock()  # guards the three below (the subscriber's)
        self._registered: str | None = None  # the fetch id the last fetch registered under
        self._received: set[str] = set()  # job ids handed to it, delivered from messages
        self._inbox: list[tuple[str, str]] = []  # (job id, payload) handed, not delivered
        self._listening = False  # whether the subscriber hears this worker's hand-overs
        self._served_from_handover = False  # see room_after_handover
        self._room = 0  # how many more jobs the registration may be handed (as far as known)
        #: Jobs delivered from hand-over messages, without a fetch (monitoring and tests).
        self.handovers_received = 0

    def _after_fork(self) -> None:
        # A parent's thread may hold a lock at the fork: the child's copy would stay held.
        self._fetch_lock, self._calls_lock = threading.Lock(), threading.Lock()
        self._init_handover()  # its lock too; the parent's registration is not the child's
        self._new_id_prefix()

    def _new_id_prefix(self) -> None:
        """Start a new series of call and fetch ids (in a forked child: its own)."""
        self._id_prefix = uuid.uuid4().hex + "-"
        self._id_sequence = itertools.count()

    def _unique_id(self) -> str:
        """A call or fetch id no other call of any client uses: cheaper than a uuid4."""
        return self._id_prefix + str(next(self._id_sequence))

    def _make_client(self, redis: Client | str | None, settings: RedisSettings) -> Client:
        """The client the broker talks through, reading raw bytes (see ``binary_client``)."""
        if isinstance(redis, RedisCluster):
            return self._watched_cluster(binary_cluster_client(redis))
        if isinstance(redis, redis_py.Redis):
            client = binary_client(redis)
            log_hidden_retries(client, self.hidden_retries)
            return client
        url = redis or DEFAULT_URL
        backoff = ExponentialWithJitterBackoff(
            base=self.reconnect_base_delay, cap=self.reconnect_max_delay
        )
        options: dict[str, Any] = {
            "socket_timeout": settings.socket_timeout,
            "socket_connect_timeout": settings.socket_connect_timeout,
            "retry": LoggedRetry(backoff, settings.command_retries, self.hidden_retries),
            "decode_responses": False,
        }
        if not url.startswith("unix:"):  # finds peers that vanished without a word
            options["socket_keepalive"] = True
        url_of_cluster = cluster_url(url)
        if url_of_cluster is not None:
            cluster = RetryLoggingCluster.from_url(url_of_cluster, **options)
            return self._watched_cluster(binary_cluster_client(cluster))
        options["health_check_interval"] = settings.health_check_interval
        client = binary_client(redis_py.Redis.from_url(url, **options))
        log_hidden_retries(client, self.hidden_retries)  # a twin, if the URL asks to decode
        return client

    def _watched_cluster(self, client: RedisCluster) -> RedisCluster:
        """``client``, reporting its retries to the broker's log when the broker built it."""
        if isinstance(client, RetryLoggingCluster):
            client.hidden = self.hidden_retries
        return client

    @property
    def redis(self) -> Client:
        """The client the broker talks through."""
        return self._redis

    def set_namespace(self, namespace: str) -> None:
        """Bind the broker to a namespace; its name becomes the hash tag of every key (a
        name that could share keys with another namespace is refused: ``check_namespace``)."""
        check_namespace(namespace)
        self._bind_namespace(namespace)

    def _bind_namespace(self, namespace: str) -> None:
        """``set_namespace`` without the check (a partition binds to its tag)."""
        super().set_namespace(namespace)
        self.prefix = f"{{{namespace}}}/"
        self._script_keys = {
            script: [self.prefix + name for name in names] for script, names in SCRIPT_KEYS.items()
        }
        # Pub/sub ignores db numbers: the channel names the db, so that brokers of one
        # namespace name on two dbs do not wake each other for nothing.
        db = int(self._redis.get_connection_kwargs().get("db") or 0)
        self.channel = f"{self.prefix}notifications/{db}"

    def key(self, name: str) -> str:
        """The full name of a fixed key of the namespace, e.g. ``key("future")``; an
        ``Unscoped`` name as is."""
        return str(name) if isinstance(name, Unscoped) else self.prefix + name

    @property
    def handover_channel(self) -> str:
        """The channel of the jobs handed over to this worker (one per worker id)."""
        return f"{self.prefix}handed/{self.worker_id}"

    def queue_key(self, queue: str) -> str:
        """The full name of the list holding the payloads of ``queue``."""
        return f"{self.prefix}queue/{queue}"

    def _now(self) -> float:
        return float(self.now())

    def _run_once(
        self,
        script: str,
        fixed: Sequence[Any],
        items: Sequence[Any],
        keys: Sequence[str] | None = None,
    ) -> Any:
        """Run a script that keeps its reply under a call id (see Idempotency above)."""

        def run(call_id: str) -> Any:
            args = [self.prefix, self._now(), call_id, self.resend_window, *fixed, *items]
            return self._run(script, args, keys)

        return self._with_call_id((script, *(keys or ()), *fixed, *items), run)

    def _with_call_id(self, identity: tuple, call: Callable[[str], Any]) -> Any:
        """``call(call_id)`` with a fresh call id, or with the id of the same call (same
        ``identity``) that raised a connection error before: had it run, its reply comes
        back and nothing runs twice, even when the caller's own retry loop (not redis-py)
        sends the call again."""
        with self._calls_lock:
            call_id = self._failed_calls.pop(identity, None) or self._unique_id()
        try:
            return call(call_id)
        except self.connection_errors:
            with self._calls_lock:
                self._failed_calls[identity] = call_id
                while len(self._failed_calls) > _MAX_FAILED_CALLS:
                    del self._failed_calls[next(iter(self._failed_calls))]
            raise

    def _snapshot(self) -> Any:
        """A pipeline whose reads see one moment: MULTI/EXEC (one slot, on a cluster).

        redis-py before 6.1 has no transactions on a cluster: the reads then go in a plain
        pipeline, and the callers tolerate an entry that changed between two of them.
        """
        try:
            return self._redis.pipeline(transaction=True)
        except RedisClusterException:
            return self._redis.pipeline(transaction=False)

    def _run(self, script: str, args: Sequence[Any], keys: Sequence[str] | None = None) -> Any:
        """Run one of the scripts with its keys in this namespace (``keys``, else its fixed
        keys)."""
        return self._scripts[script](keys=keys or self._script_keys[script], args=args)

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> None:
        """Load the scripts now, so a server that cannot run them fails the start; refuse
        a partition count other than the namespace's (``redis_layout``)."""
        for script in self._scripts.values():
            script.sha = self._redis.script_load(script.script)
        check_layout(self._redis, self.namespace, self.partition_count)

    def allow_connections(self, count: int) -> None:
        """Raise the pool's limit (redis-py's default: 100) to ``count`` if lower: a pool
        of hundreds of greenlets (``-P gevent -c 500``) may wait on as many connections."""
        pool = getattr(self._redis, "connection_pool", None)  # a cluster has one per node
        if pool is not None and getattr(pool, "max_connections", count) < count:
            pool.max_connections = count

    def stop(self) -> None:
        """Wake the arbiter and close the connections of the pool."""
        super().stop()
        disconnect(self._redis)
        self.watchers.close_all()
        if self._stash is not None:
            self._stash.disconnect()

    # -- client side ---------------------------------------------------------------------

    def enqueue_jobs(self, jobs: Sequence[Job], from_failure: bool = False) -> None:
        payloads = [job_codec.encode(job) for job in jobs]  # all or none: serialize first
        if not jobs:
            return
        fixed = [self.channel, "1" if from_failure else "0", self.worker_id]
        items: list[Any] = []
        for job, payload in zip(jobs, payloads, strict=True):
            items += [job.id, job.queue, float(job.at_timestamp), payload, job.attempt or ""]
            ttl = job.unique_ttl
            items += [job.unique_key or "", "" if ttl is None else repr(float(ttl)), job.task_name]
        statuses = self._run_once("enqueue", fixed, items)
        for job, status in zip(jobs, statuses, strict=True):
            where, _, holder = _text(status).partition("/")
            job.status = JobStatus[where]
            if holder:  # a unique job whose key another job holds: that job is the one
                job.id = holder

    def push_raw(self, queue: str, payload: str | bytes) -> None:
        self._run_once("push_raw", [self.channel, queue], [payload])

    # -- worker side ---------------------------------------------------------------------

    def get_jobs_from_queue(self, queue: str | Sequence[str], max_jobs: int) -> list[Job]:
        """The jobs handed over to this worker and heard by its subscriber, if any (no
        round trip); else one fetch, which may register the worker as idle."""
        queues = normalize_queues(queue)
        max_jobs = min(max_jobs, self.max_fetch_size)
        if max_jobs <= 0:
            return []
        with self._fetch_lock:
            handed = self._from_inbox(max_jobs)
            self._served_from_handover = bool(handed)
            if handed:
                return handed
            return self._fetch(self._pending_fetch or self._new_fetch(True), max_jobs, queues)

    def room_after_handover(self) -> int | None:
        return self._room if self._served_from_handover else None

    def unsettled_jobs(self) -> list[Job]:
        """The jobs of a fetch whose reply was lost (sent again with its fetch id and no
        room for more jobs, it returns the reply Redis kept, nothing if it never ran), and
        those handed over to this worker and not delivered: a last fetch ends its
        registration and collects them."""
        with self._fetch_lock:
            jobs = []
            if self._pending_fetch is not None:
                jobs += self._fetch(self._pending_fetch, 0, [])
            if self._registered is not None:
                jobs += self._fetch(self._new_fetch(False), 0, [])
            return jobs

    def _new_fetch(self, register: bool) -> _FetchCall:
        """A fresh fetch (under ``_fetch_lock``): it collects what was handed to the fetch
        id registered before, and with ``register`` registers the worker as idle under a
        new one, when its subscriber listens (the hand-over messages of the old id heard
        from now on are left out: this fetch brings their jobs)."""
        register = register and self._listening and self.handover_ttl > 0
        register = register and self.partition_count == 1  # partitions: no hand-over
        fetch_id, next_id = self._unique_id(), self._unique_id() if register else None
        with self._handed_lock:
            call = _FetchCall(fetch_id, self._registered, next_id, frozenset(self._received))
            self._registered, self._received, self._inbox = next_id, set(), []
        return call

    def _fetch(self, call: _FetchCall, max_jobs: int, queues: Sequence[str]) -> list[Job]:
        """One fetch call and its reply handled (under ``_fetch_lock``)."""
        self._pending_fetch = call  # until the reply is handled
        acks = list(self._acks)
        now = self._now()
        args = [self.prefix, now, self.worker_id, call.id, max_jobs]
        args += [self.fetch_scan_limit, call.registered or "", call.next_id or ""]
        args += [now + self.handover_ttl, len(call.received), len(acks), *acks, *queues]
        taken, dead, *rest = self._run("fetch", args)
        handed = rest[0] if rest else []
        # The jobs handed over first: they were sent before those the queues still held
        # (a job is queued while its registration has no room left), so a worker runs
        # them in the order they were sent.
        jobs = self._settle_handed(call, handed)
        jobs += self._settle_fetch(call.id, taken, dead)
        undelivered = max(0, len(handed) // 2 - len(call.received))
        self._room = max_jobs - len(taken) // 2 - undelivered if call.next_id else 0
        # Handled: acknowledge the reply with the next fetch, which deletes its cache.
        self._acks = [call.id] if taken or handed else []
        self._pending_fetch = None
        return jobs

    def _settle_handed(self, call: _FetchCall, handed: list[bytes]) -> list[Job]:
        """The jobs handed over to ``call.registered`` that its messages did not deliver."""
        pairs = [(_text(i), p) for i, p in _groups(handed, 2) if _text(i) not in call.received]
        return self._handed_jobs(pairs, call.registered or "")

    def _handed_jobs(self, pairs: Sequence[tuple[str, bytes | str]], attempt: str) -> list[Job]:
        """The jobs of handed ``(job id, payload)`` pairs, running in ``attempt``; a payload
        that cannot be decoded goes to the dead letters."""
        jobs = []
        for job_id, payload in pairs:
            try:
                job = job_codec.decode(payload)
            except Exception as exc:
                self._bury_running(job_id, payload, _reason(exc), attempt)
                continue
            job.status, job.attempt = JobStatus.RUNNING, attempt
            jobs.append(job)
        return jobs

    def _from_inbox(self, max_jobs: int) -> list[Job]:
        """Up to ``max_jobs`` of the jobs hand-over messages brought (under
        ``_fetch_lock``)."""
        with self._handed_lock:
            if not self._inbox:
                return []
            pairs, self._inbox = self._inbox[:max_jobs], self._inbox[max_jobs:]
            self._received.update(job_id for job_id, _ in pairs)
            attempt = self._registered or ""
        self.handovers_received += len(pairs)
        self._room -= len(pairs)
        return self._handed_jobs(pairs, attempt)

    def _handed_over(self, data: bytes) -> None:
        """A hand-over message heard by the subscriber: keep its job for the next
        ``get_jobs_from_queue``, and relay it as a notification (the idle arbiter's turn
        takes it at once). A message of a fetch id no longer registered is left out: the
        fetch that ended the registration brought its job; so is one that is not ours
        (the next fetch brings the jobs handed over, whatever their messages)."""
        try:
            fetch_id, job_id, payload = json.loads(data)
        except (ValueError, TypeError):
            logger.warning("Ignored a malformed message on %s: %r", self.handover_channel, data)
            return
        with self._handed_lock:
            if fetch_id != self._registered or job_id in self._received:
                return
            self._inbox.append((job_id, payload))
        self.relay_notification()

    def _settle_fetch(self, fetch_id: str, taken: list[bytes], dead: list[bytes]) -> list[Job]:
        """The jobs of a fetch reply; payloads Python finds invalid go to the dead letters.

        cjson cannot check everything ``Job.deserialize`` does (``[]`` versus ``{}``), so
        a few bad payloads pass the script; and the dead letters it made get the reason
        worded by ``Job.deserialize``. Idempotent, like the fetch it completes.
        """
        jobs, reasons = [], []
        for job_id, payload in _groups(taken, 2):
            try:
                job = job_codec.decode(payload)
            except Exception as exc:
                self._bury_running(_text(job_id), payload, _reason(exc), fetch_id)
                continue
            job.status, job.attempt = JobStatus.RUNNING, fetch_id
            jobs.append(job)
        for letter_id, payload in _groups(dead, 2):
            reason = _deserialize_error(payload)
            if reason is not None:
                reasons += [letter_id, payload, reason]
        if reasons:
            self._run("set_dead_letter_reasons", reasons)
        return jobs

    def _bury_running(self, job_id: str, payload: bytes | str, reason: str, attempt: str) -> None:
        """Dead-letter a payload running under this worker, in the attempt ``attempt``."""
        args = [self.prefix, self._now(), self.channel, self.worker_id, job_id]
        self._run("dead_letter", [*args, payload, reason, uuid.uuid4().hex, attempt])

    def remove_job_from_running(self, job: Job) -> None:
        self.remove_jobs_from_running([job])

    def remove_jobs_from_running(self, jobs: Sequence[Job]) -> None:
        """Forget many ended jobs in one round trip (the result notifier's batches)."""
        if jobs:
            attempts = [part for job in jobs for part in (job.id, job.attempt or "")]
            self._run("finish", [self.prefix, self.channel, self.worker_id, *attempts])

    def return_jobs(self, jobs: Sequence[Job]) -> None:
        payloads = [job_codec.encode(job) for job in jobs]
        if not jobs:
            return
        items: list[Any] = []
        for job, payload in zip(jobs, payloads, strict=True):
            items += [job.id, job.queue, payload, job.attempt or ""]
        statuses = self._run_once("return_jobs", [self.channel, self.worker_id], items)
        for job, status in zip(jobs, statuses, strict=True):
            job.status = JobStatus[_text(status)]

    def dead_letter(self, job: Job, reason: str) -> None:
        args = [self.prefix, self._now(), self.channel, self.worker_id, job.id]
        letter = [job_codec.encode(job), reason, uuid.uuid4().hex, job.attempt or ""]
        self._run("dead_letter", [*args, *letter])

    def move_future_jobs(self) -> int:
        args = [self.prefix, self._now(), self.channel, self.move_batch_size]
        return int(self._run("move_future_jobs", args))

    def next_future_job_delta(self) -> float | None:
        due = self._run("next_due", [])
        return None if due is None else float(due) - self.now()

    def register_periodic_tasks(self, tasks: Iterable[Task]) -> None:
        tasks = list(tasks)
        periodic: list[Any] = []
        for task in tasks:
            if task.periodicity is not None:
                period = task.periodicity.total_seconds()
                periodic += [task.name, period, _periodic_info(task, period)]
        others = [task.name for task in tasks if task.periodicity is None]
        self._run("register_periodic_tasks", [self._now(), len(periodic) // 3, *periodic, *others])

    def set_concurrency_keys(self, tasks: Iterable[Task]) -> None:
        args: list[Any] = [self.channel]
        for task in tasks:
            limit, rate = task.max_concurrency, task.rate
            args += [task.name, "" if limit is None else limit]
            args += ["", ""] if rate is None else [repr(rate.interval), repr(rate.tolerance)]
        self._run("set_concurrency_keys", args)

    def is_queue_empty(self, queue: str) -> bool:
        pipe = self._snapshot()
        for name in [queue, *priority.bands(queue)]:
            pipe.llen(self.queue_key(name))
        return not any(pipe.execute())

    # -- worker liveness -----------------------------------------------------------------

    def register_worker(self, info: WorkerInfo) -> None:
        now = self._now()
        data = info.to_dict()
        data["started_at"] = info.started_at or now
        del data["last_heartbeat"]  # the heartbeats sorted set holds it
        info_json = json.dumps(data)
        self._run("register_worker", [info.id, now, info_json])
        self._info_json = info_json

    def heartbeat(self) -> None:
        args = [self.worker_id, self._now(), self._info_json or ""]
        if self._run("heartbeat", args) == 2:
            logger.warning(
                "Worker %s was declared dead (no heartbeat for too long) and registered "
                "again; its running jobs may have been recovered by other workers",
                self.worker_id,
            )

    def deregister_worker(self) -> None:
        self._run("deregister_worker", [self.prefix, self.worker_id])
        self._info_json = None

    def recover_dead_workers(self, threshold: float) -> list[Job]:
        now = self._now()
        lost = self._run("expire_dead_workers", [self.prefix, now - threshold, self.worker_id])
        if not lost:
            return []
        items: list[Any] = []
        jobs: dict[str, Job] = {}
        for job_id, owner, payload in _groups(lost, 3):
            job_id, owner = _text(job_id), _text(owner)
            job, action = _recovery_of(payload)
            if job is None:
                items += [job_id, owner, "dead", "", payload, action]
                continue
            jobs[job_id] = job
            items += [job_id, owner, action, job.queue, job_codec.encode(job), ""]
        replied = self._run_once("recover_jobs", [self.channel], items)
        recovered = {_text(job_id) for job_id in replied}
        return [job for job_id, job in jobs.items() if job_id in recovered]

    # -- dead letters --------------------------------------------------------------------

    def list_dead_letters(self) -> list[DeadLetter]:
        pipe = self._snapshot()
        pipe.zrange(self.key("dead_order"), 0, -1)
        for name in ("dead", "dead_queue", "dead_reason", "dead_time"):
            pipe.hgetall(self.key(name))
        order, payloads, queues, reasons, times = pipe.execute()
        return [
            DeadLetter(
                _text(letter_id),
                _text(queues.get(letter_id, b"")),
                _text(payloads.get(letter_id, b"")),
                _text(reasons.get(letter_id, b"")),
                float(times.get(letter_id, 0.0)),
            )
            for letter_id in order
        ]

    def retry_dead_letters(self, ids: Iterable[str] | None = None) -> int:
        selection = self._dead_letter_selection(ids)
        if selection is None:
            return 0
        retried, *kept = self._run_once("retry_dead_letters", [self.channel], selection)
        log_kept_dead_letters(_groups([_text(item) for item in kept], 3))
        return int(retried)

    def purge_dead_letters(self, ids: Iterable[str] | None = None) -> int:
        selection = self._dead_letter_selection(ids)
        if selection is None:
            return 0
        return int(self._run_once("purge_dead_letters", [], selection))

    @staticmethod
    def _dead_letter_selection(ids: Iterable[str] | None) -> list[str] | None:
        """Script arguments selecting dead letters; None when none is selected."""
        if ids is None:
            return ["all"]
        wanted = list(dict.fromkeys(ids))
        return ["some", *wanted] if wanted else None

    # -- inspection ----------------------------------------------------------------------

    def queue_lengths(self) -> dict[str, int]:
        names = sorted(_text(name) for name in self._redis.smembers(self.key("queues")))
        pipe = self._redis.pipeline(transaction=False)
        for name in names:
            pipe.llen(self.queue_key(name))
        return {name: length for name, length in zip(names, pipe.execute(), strict=True) if length}

    def scheduled_jobs(self) -> list[Job]:
        return self._future_jobs(self._redis.zrange(self.key("future"), 0, -1, withscores=True))

    def _future_jobs(self, entries: Any) -> list[Job]:
        """The jobs of the future set's ``(id, due time)`` entries, each due when its score
        says (a job deferred by its rate limit keeps its old ``at`` in its payload)."""
        scored = _scored(entries)
        if not scored:
            return []
        payloads = self._redis.hmget(self.key("future_jobs"), [job_id for job_id, _ in scored])
        return [
            _due(_decoded(payload, JobStatus.WAITING), at)
            for (_, at), payload in zip(scored, payloads, strict=True)
            if payload is not None
        ]

    def running_jobs(self) -> dict[str, list[Job]]:
        pipe = self._snapshot()
        pipe.hgetall(self.key("running"))
        pipe.hgetall(self.key("running_meta"))
        payloads, metas = pipe.execute()
        by_worker: dict[str, list[Job]] = {}
        for job_id, payload in payloads.items():
            meta = json.loads(metas[job_id]) if job_id in metas else {}
            job = _decoded(payload, JobStatus.RUNNING)
            job.attempt = meta.get("a") or None  # so remove_job_from_running finds it
            by_worker.setdefault(meta.get("w", ""), []).append(job)
        return by_worker

    def workers(self) -> list[WorkerInfo]:
        pipe = self._snapshot()
        pipe.hgetall(self.key("workers"))
        pipe.zrange(self.key("heartbeats"), 0, -1, withscores=True)
        infos, heartbeats = pipe.execute()
        workers = []
        for worker_id, last_heartbeat in heartbeats:
            if worker_id in infos:
                info = WorkerInfo.from_dict(json.loads(infos[worker_id]))
                info.last_heartbeat = last_heartbeat
                workers.append(info)
        return workers

    def inspect_periodic_tasks(self) -> list[tuple[float, str]]:
        entries = self._redis.zrange(self.key("periodic"), 0, -1, withscores=True)
        return [(score, _text(name)) for name, score in _scored(entries)]

    def queue_jobs(self, queue: str, offset: int = 0, limit: int = 50) -> list[Job]:
        payloads = self._redis.lrange(self.queue_key(queue), offset, offset + limit - 1)
        return _decodable(cast("list[bytes]", payloads), JobStatus.QUEUED)

    def scheduled_counts(self) -> dict[str, int]:
        queues = self._redis.hvals(self.key("future_queues"))
        return dict(Counter(_text(queue) for queue in cast("list[bytes]", queues)))

    def scheduled_count(self) -> int:
        return int(self._redis.zcard(self.key("future")))

    def scheduled_page(self, offset: int = 0, limit: int = 50) -> tuple[list[Job], int]:
        if limit <= 0:  # no job (ZRANGE 0 -1 would read them all)
            return [], self.scheduled_count()
        pipe = self._snapshot()
        pipe.zrange(self.key("future"), offset, offset + limit - 1, withscores=True)
        pipe.zcard(self.key("future"))
        entries, total = pipe.execute()
        return self._future_jobs(entries), int(total)

    def dead_letter_count(self) -> int:
        return int(self._redis.zcard(self.key("dead_order")))

    def running_since(self) -> dict[str, float]:
        owners = [_text(w) for w in self._redis.hkeys(self.key("running_owners"))]
        pipe = self._redis.pipeline(transaction=False)
        for worker in owners:
            pipe.zrange(self.key(f"running_of/{worker}"), 0, -1, withscores=True)
        return {_text(i): at for entries in pipe.execute() for i, at in _scored(entries)}

    def record_history(
        self, records: Sequence[HistoryRecord], retention: float, max_records: int
    ) -> None:
        if not records:
            return
        items: list[Any] = []
        for record in records:
            items += [record.id, float(record.finished_at), record.queue, record.to_json()]
        fixed = [float(retention), int(max_records), FINISHED_COUNT_MINUTES]
        self._run_once("record_history", fixed, items)

    def history(self, offset: int = 0, limit: int = 50) -> list[HistoryRecord]:
        ids = self._redis.zrevrange(self.key("history"), offset, offset + limit - 1)
        if not ids:
            return []
        texts = self._redis.hmget(self.key("history_jobs"), cast("list[bytes]", ids))
        return [HistoryRecord.from_json(text) for text in texts if text is not None]

    def history_record(self, job_id: str) -> HistoryRecord | None:
        text = self._redis.hget(self.key("history_jobs"), job_id)
        return None if text is None else HistoryRecord.from_json(cast("bytes", text))

    def finished_counts(self, minutes: int) -> dict[str, list[int]]:
        fields = self._redis.hgetall(self.key("finished_counts"))
        counts = {_text(f): int(n) for f, n in cast("dict[bytes, bytes]", fields).items()}
        return counts_by_queue(counts, self._now(), minutes)

    def flush(self) -> None:
        self._run("flush", [self.prefix])

    # -- shared state (see Broker): one command or one script each, in the namespace's slot

    def claim(self, name: str, ttl: float) -> bool:
        keys = [self.key(name)]

        def run(token: str) -> Any:  # a claim retried after a lost reply reuses its token
            return self._run("claim", [token, _millis(ttl)], keys)

        return bool(self._with_call_id(("claim", *keys), run))

    def increment(self, name: str, ttl: float, by: int = 1) -> int:
        keys = [self.key(name), self.key("replies"), self.key("replies_at")]
        return int(self._run_once("increment", [_millis(ttl), int(by)], [], keys))

    def set_values(self, values: Mapping[str, str], ttl: float) -> None:
        if values:
            keys = [self.key(name) for name in values]
            self._run("set_values", [_millis(ttl), *values.values()], keys)

    def get_values(self, names: Sequence[str]) -> list[str | None]:
        if not names:
            return []
        return [None if value is None else _text(value) for value in self.get_bytes(names)]

    def delete(self, names: Sequence[str]) -> None:
        if names:
            self._redis.delete(*[self.key(name) for name in names])

    def add_members(self, name: str, until: Mapping[str, float]) -> None:
        args: list[Any] = [self._now()]
        for member, at in until.items():
            args += [float(at), member]
        self._run("add_members", args, [self.key(name)])

    def members(self, name: str) -> dict[str, float]:
        entries = self._redis.zrangebyscore(
            self.key(name), f"({self._now()!r}", "+inf", withscores=True
        )
        return {_text(member): float(at) for member, at in _scored(entries)}

    def hash_set(self, name: str, field: str, value: str, ttl: float | None = None) -> None:
        expiry = "" if ttl is None else _millis(ttl)
        self._run("hash_set", [field, value, expiry], [self.key(name)])

    def hash_get(self, name: str, field: str) -> str | None:
        value = self._redis.hget(self.key(name), field)
        return None if value is None else _text(value)

    def hash_delete(self, name: str, field: str) -> None:
        self._redis.hdel(self.key(name), field)

    def publish_value(
        self, name: str, value: str | bytes, ttl: float | None, keep_status: str | None = None
    ) -> bool:
        args = [value, 0 if ttl is None else _millis(ttl), keep_status or ""]
        return bool(self._run("publish_value", args, [self.key(name)]))

    def get_bytes(self, names: Sequence[str]) -> list[bytes | None]:
        if not names:
            return []
        keys = [self.key(name) for name in names]
        if isinstance(self._redis, RedisCluster) and any(isinstance(n, Unscoped) for n in names):
            values = self._redis.mget_nonatomic(keys)  # several slots
        else:
            values = self._redis.mget(keys)
        return cast("list[bytes | None]", values)  # a binary client: bytes only

    @contextmanager
    def watch(self, names: Sequence[str], timeout: float | None = None) -> Iterator[Watch]:
        """On pub/sub, each thread through one connection (see ``redis_watch``)."""
        with self.watchers.watch({self.key(name): name for name in names}, timeout) as watch:
            yield watch

    # -- notifications -------------------------------------------------------------------

    def run_subscriber(self, stopping: threading.Event) -> None:
        """Relay the namespace's notifications (``relay_notification``) until ``stopping``.

        Reconnects after a connection error, with capped exponential backoff and jitter,
        logging once when an outage starts and once when it ends. Every (re)subscription
        also wakes the arbiter, as notifications sent meanwhile were missed. A cluster
        client (which finds the nodes as it is built) is built again after a failure, so
        the subscriber follows a failover to any node still up.
        """
        client: Client | None = None
        outage = Outage(
            f"Subscriber of worker {self.worker_id}",
            base_delay=self.reconnect_base_delay,
            max_delay=self.reconnect_max_delay,
        )
        try:
            while not stopping.is_set():
                try:
                    client = client or self._subscriber_client()
                    self._listen(client, stopping, outage)
                except Exception as exc:  # the thread must live on, whatever happened
                    if isinstance(client, RedisCluster):
                        close(client)
                        client = None
                    stopping.wait(outage.failed(exc))
        finally:
            if client is not None:
                close(client)

    def _listen(
        self,
        client: Client,
        stopping: threading.Event,
        outage: Outage,
    ) -> None:
        """Subscribe and relay messages until ``stopping`` or a connection error."""
        handed = self.handover_channel.encode()
        with client.pubsub(ignore_subscribe_messages=True) as pubsub:
            pubsub.subscribe(self.channel, handed)
            outage.succeeded()
            self._listening = True  # the next fetch may register for hand-overs
            try:
                self.notify_local()
                while not stopping.is_set():
                    message = pubsub.get_message(timeout=self.subscriber_poll_interval)
                    if message is None:
                        continue
                    if message["channel"] == handed:
                        self._handed_over(message["data"])
                        continue
                    self.notifications_received += 1
                    self.relay_notification()
            finally:
                self._listening = False  # messages are missed: fetches collect the jobs

    def _subscriber_client(self) -> Client:
        """A client for the subscriber alone, whose errors reach ``run_subscriber`` at once,
        so its own backoff and ``stopping`` stay in charge.

        redis-py neither retries nor reconnects it (no error is retryable): a PubSub that
        reconnected by itself would subscribe again only to be closed by our loop. A
        cluster's ``ClusterPubSub`` listens through the client of one node, which redis-py
        builds without retries; a twin keeps ``stop`` from closing it under the thread.
        """
        if isinstance(self._redis, RedisCluster):
            return cluster_twin(self._redis, RedisCluster)
        pool = self._redis.connection_pool
        no_retry = Retry(NoBackoff(), 0, supported_errors=())
        kwargs = {**self._redis.get_connection_kwargs(), "retry": no_retry}
        return redis_py.Redis(
            connection_pool=type(pool)(connection_class=pool.connection_class, **kwargs)
        )


@dataclasses.dataclass(frozen=True)
class _FetchCall:
    """One fetch, kept to be sent again with the same ids when its reply is lost."""

    id: str
    registered: str | None  #: the fetch id registered before, whose handed jobs it collects
    next_id: str | None  #: the fetch id it registers the worker under when idle
    received: frozenset[str]  #: job ids handed to ``registered`` and delivered already


def _groups(flat: Sequence[Any], size: int) -> list[tuple[Any, ...]]:
    """A flat script reply as tuples of ``size`` items."""
    return [tuple(flat[i : i + size]) for i in range(0, len(flat), size)]


def _millis(seconds: float) -> int:
    """A TTL in whole milliseconds, at least 1 (Redis refuses 0)."""
    return max(1, round(seconds * 1000))


def _reason(exc: BaseException) -> str:
    """Why a payload is a dead letter, worded as the in-memory broker does."""
    return str(exc) if isinstance(exc, InvalidPayloadError) else repr(exc)


def _deserialize_error(payload: bytes | str) -> str | None:
    """Why ``Job.deserialize`` rejects a payload, or None when it accepts it."""
    try:
        job_codec.decode(payload)
    except Exception as exc:
        return _reason(exc)
    return None


def _decodable(payloads: Sequence[bytes], status: JobStatus) -> list[Job]:
    """The jobs of ``payloads`` that decode, with ``status``; the others left out."""
    jobs = []
    for payload in payloads:
        with contextlib.suppress(InvalidPayloadError):
            jobs.append(_decoded(payload, status))
    return jobs


def _decoded(payload: bytes | str, status: JobStatus) -> Job:
    job = job_codec.decode(payload)
    job.status = status
    return job


def _recovery_of(payload: bytes) -> tuple[Job | None, str]:
    """A lost job with its recovery action: ``retry`` (one more retry counted) or
    ``fail``; or no job and why its payload cannot be decoded."""
    try:
        job = job_codec.decode(payload)
    except Exception as exc:
        return None, _reason(exc)
    if job.should_retry:
        job.retries += 1
        job.status = JobStatus.QUEUED
        return job, "retry"
    job.status = JobStatus.FAILED
    return job, "fail"


def _periodic_info(task: Task, period: float) -> str:
    """What move_future_jobs needs to fire a periodic task: its period, its queue, and the
    template of its jobs (``job_codec.template``: every field but the id and due time,
    which the script fills in)."""
    job = task.new_job(0.0)  # its queue is the task's priority band (spinach.priority)
    return json.dumps({"period": period, "queue": job.queue, "tail": job_codec.template(job)})


def _due(job: Job, at: float) -> Job:
    """``job`` due at ``at``, its score in the future set."""
    job.at_timestamp = at
    return job


def _scored(entries: Any) -> list[tuple[bytes, float]]:
    """A ``withscores`` reply as redis-py gives it (its stubs type the reply loosely)."""
    return cast("list[tuple[bytes, float]]", entries)
