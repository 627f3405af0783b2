"""How many partitions a Redis namespace is spread over, and the guard against changing it.

A namespace of one partition keeps every key under ``{<ns>}/``; one of N > 1 partitions
under ``{<ns>~0}/`` ... ``{<ns>~N-1}/`` (``redis_partitions``). The count is asked for with
``RedisBroker(..., partitions=N)`` or ``?partitions=N`` in the URL, and recorded at
``start()`` in ``{<ns>}/partitions``: a broker started with another count on a live
namespace is refused (``PartitionLayoutError``), as jobs stored under one layout are not
seen under another.
"""

from __future__ import annotations

import re
import zlib
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

#: The query parameter of a Redis URL giving the partition count.
URL_PARAMETER = "partitions"
#: The key (after ``{<ns>}/``) recording the count of a partitioned namespace.
MARKER = "partitions"
#: Keys (after ``{<ns>}/``) whose presence says a one-partition namespace is in use:
#: jobs queued, due later, running or dead, or worker processes registered.
LIVE_KEYS = ("queued_ids", "future", "running", "dead_order", "workers")

_DIGITS = re.compile(r"[0-9]+")


class PartitionLayoutError(RuntimeError):
    """A broker asked for a partition count other than the one the namespace runs with."""


def check_count(value: Any) -> int:
    """``value`` as a partition count (an int >= 1), else a ``ValueError`` saying why."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"partitions must be an int >= 1, not {value!r}")
    return value


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
        raise ValueError(f"partitions in the Redis URL must be an int >= 1, not {given!r}")
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
