"""Scraping ``/metrics`` in tests: the samples of a Prometheus text page, summed by label."""

from __future__ import annotations

import socket
import urllib.request
from collections.abc import Callable

from prometheus_client.parser import text_string_to_metric_families

from tests.helpers import wait_until

Samples = dict[tuple[str, frozenset], float]

#: Seconds a scrape waits for an answer.
SCRAPE_TIMEOUT = 10.0


def free_port() -> int:
    """A TCP port free now on 127.0.0.1 (the server started next binds it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def scrape(port: int) -> Samples:
    """Every sample of ``http://127.0.0.1:PORT/metrics``: (name, labels) -> value."""
    url = f"http://127.0.0.1:{port}/metrics"
    with urllib.request.urlopen(url, timeout=SCRAPE_TIMEOUT) as reply:
        text = reply.read().decode()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    """The sum of the samples of ``name`` whose labels include ``labels``."""
    wanted = set(labels.items())
    return sum(v for (n, lbls), v in samples.items() if n == name and wanted <= lbls)


def scrape_until(port: int, done: Callable[[Samples], bool]) -> Samples:
    """Scrape until ``done(samples)`` holds (another process is counting); fail on timeout."""
    last: list[Samples] = [{}]

    def check() -> bool:
        try:
            last[0] = scrape(port)
        except OSError:  # not serving yet
            return False
        return done(last[0])

    if not wait_until(check):
        counts = {k: v for k, v in last[0].items() if k[0].endswith("_total")}
        raise AssertionError(f"metrics never got there; last counters: {counts}")
    return last[0]
