"""How many partitions a Redis namespace is spread over, and the guard against changing it.

A namespace of one partition keeps every key under ``{<ns>}/``; one of N > 1 partitions
under ``{<tag i>}/`` for partition i (``partition_tags``: ``<ns>~i``, with a suffix that
spreads the tags over the cluster's slots; see ``redis_partitions``). The count is asked for with
``RedisBroker(..., partitions=N)`` or ``?partitions=N`` in the URL, and recorded at
``start()`` in ``{<ns>}/partitions``: a broker started with another count on a live
namespace is refused (``PartitionLayoutError``), as jobs stored under one layout are not
seen under another.
"""

from __future__ import annotations

import binascii
import functools
import itertools
import re
import zlib
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

#: The query parameter of a Redis URL giving the partition count.
URL_PARAMETER = "partitions"
#: The key (after ``{<ns>}/``) recording the count of a partitioned namespace.
MARKER = "partitions"
#: Most partitions of a namespace: each costs a script per heartbeat and per idle poll.
MAX_PARTITIONS = 1024
#: Hash slots of a Redis Cluster.
SLOTS = 16384
#: Slots a partition's tag keeps off each end of its range: a cluster may round the bounds
#: of its nodes' ranges the other way (``redis-cli --cluster create`` gives node j of M the
#: slots from round(j * 16384 / M)), which puts a tag on the edge on the neighbouring node.
EDGE_SLOTS = 1
#: Keys (after ``{<ns>}/``) whose presence says a one-partition namespace is in use:
#: jobs queued, due later, running or dead, or worker processes registered.
LIVE_KEYS = ("queued_ids", "future", "running", "dead_order", "workers")

_DIGITS = re.compile(r"[0-9]+")
#: How every partition tag ends (``~<index>`` or ``~<index>~<k>``; see ``partition_tags``).
_TAG_END = re.compile(r"~[0-9]+\Z")


class PartitionLayoutError(RuntimeError):
    """A broker asked for a partition count other than the one the namespace runs with."""


def check_count(value: Any) -> int:
    """``value`` as a partition count (an int from 1 to ``MAX_PARTITIONS``), else a
    ``ValueError`` saying why."""
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_PARTITIONS:
        raise ValueError(f"partitions must be an int from 1 to {MAX_PARTITIONS}, not {value!r}")
    return value


def check_namespace(namespace: str) -> None:
    """Refuse a namespace that could share its keys with another one: a name with braces
    (they would end the hash tag), the empty name, or one ending in ``~`` and digits.

    Every partition tag ends so (``<ns>~i`` or ``<ns>~i~k``), and no other name does: then
    a namespace is never another one's partition (``a~0`` against partition 0 of ``a``),
    and two namespaces never share a partition tag (``<x>~i~k`` splits back into one
    ``x``, ``i`` and ``k`` only). Any other ``~`` is harmless."""
    if not namespace or "{" in namespace or "}" in namespace:
        raise ValueError(f"a Redis namespace must be non-empty without braces: {namespace!r}")
    if _TAG_END.search(namespace):
        raise ValueError(
            f"Redis namespace {namespace!r} ends with '~' and digits, as the hash tags of "
            "partitioned namespaces do, so its keys could be another namespace's partition: "
            "rename it (e.g. put a letter after the '~')"
        )


def split_url(url: str) -> tuple[str, int | None]:
    """``url`` without its ``partitions`` parameter (redis-py refuses it), and its value."""
    parts = urlsplit(url)
    if URL_PARAMETER not in parts.query:
        return url, None
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    given = [value for name, value in pairs if name == URL_PARAMETER]
    if not given:
        return url, None
    if len(given) > 1 or not _DIGITS.fullmatch(given[0]) or int(given[0]) < 1:
        raise ValueError(
            f"partitions in the Redis URL must be an int from 1 to {MAX_PARTITIONS}, not {given!r}"
        )
    rest = urlencode([(name, value) for name, value in pairs if name != URL_PARAMETER])
    return urlunsplit(parts._replace(query=rest)), check_count(int(given[0]))


def resolve_count(url_count: int | None, partitions: Any) -> int:
    """The partition count from the keyword (None: not given) and the URL's parameter."""
    if partitions is None:
        return 1 if url_count is None else url_count
    count = check_count(partitions)
    if url_count is not None and url_count != count:
        raise ValueError(
            f"partitions={count} contradicts ?partitions={url_count} in the Redis URL: "
            "give the count once"
        )
    return count


@functools.lru_cache(maxsize=64)
def partition_tags(namespace: str, count: int) -> tuple[str, ...]:
    """The hash tag of each partition: ``<ns>~i``, or ``<ns>~i~k`` with the smallest ``k``
    that puts it in the i-th of ``count`` equal ranges of the cluster's slots, ``EDGE_SLOTS``
    off its ends. A cluster hands out its slots in ranges, so the partitions spread over
    its nodes (with random slots, three partitions share one of three nodes more often
    than not)."""
    tags = []
    for index in range(count):
        low, high = index * SLOTS // count, (index + 1) * SLOTS // count
        base = f"{namespace}~{index}"
        for tag in itertools.chain([base], (f"{base}~{k}" for k in itertools.count(1))):
            if low + EDGE_SLOTS <= _slot(tag) < high - EDGE_SLOTS:
                tags.append(tag)
                break
    return tuple(tags)


def _slot(tag: str) -> int:
    """The Redis Cluster slot of a hash tag: CRC-16 (XMODEM), mod 16384."""
    return binascii.crc_hqx(tag.encode("utf-8"), 0) % SLOTS


def partition_of(key: str, count: int) -> int:
    """The partition of a routing key: a stable hash (CRC-32), the same in every process."""
    return zlib.crc32(key.encode("utf-8")) % count


def check_layout(client: Any, namespace: str, count: int) -> None:
    """Refuse a count other than the namespace's; record it for a new partitioned one.

    One GET for a one-partition broker (it records nothing, keeping today's layout); a
    partitioned one records its count with SET NX, unless a one-partition namespace is live.
    """
    base = f"{{{namespace}}}/"
    recorded = client.get(base + MARKER)
    if recorded is None:
        if count == 1:
            return
        if client.exists(*[base + name for name in LIVE_KEYS]):
            raise _mismatch(namespace, 1, count)
        if client.set(base + MARKER, count, nx=True):
            return
        recorded = client.get(base + MARKER)
    if int(recorded) != count:
        raise _mismatch(namespace, int(recorded), count)


def _mismatch(namespace: str, recorded: int, asked: int) -> PartitionLayoutError:
    return PartitionLayoutError(
        f"namespace {namespace!r} runs with partitions={recorded}, not the {asked} asked: "
        f"jobs stored under one layout are not seen under another. Keep partitions="
        f"{recorded}; or run partitions={recorded} until the queues, future jobs, running "
        f"jobs and dead letters are empty, flush() it (which also forgets the count), then "
        f"start with partitions={asked}"
    )
