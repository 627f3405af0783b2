"""The cluster workload's Redis Cluster, and what each node spent (CPU, commands) between
two snapshots.

The cluster itself is the tests' starter (``tests/support/redis_cluster.py``: three masters
on loopback, no replica), one definition for both. It lives with the tests rather than in
``spinach`` so that the wheel ships no test code, and the bench always runs from a checkout
(it installs that checkout into its ``ours`` venv), where ``tests/support`` is on disk: the
module needs only redis-py, which that venv has, so the checkout's root is put on the path
here and nothing of pytest is imported.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import redis

from .redis_server import cpu_seconds

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # before any installed package named ``tests``

from tests.support.redis_cluster import RedisClusterServers  # noqa: E402

#: ``cluster-node-timeout`` in milliseconds: lower joins sooner; too low lets a node
#: stalled on a loaded machine be declared failed in the middle of a measurement.
NODE_TIMEOUT_MS = 5000

#: Commands of the harness itself (its snapshots), left out of what a node served.
HARNESS_COMMANDS = frozenset({"info", "flushall", "ping"})


@dataclass
class NodeUsage:
    """What one node had spent at a snapshot: CPU seconds and calls per command."""

    port: int
    cpu: float
    calls: dict[str, int]

    def since(self, before: NodeUsage) -> NodeUsage:
        """What was spent between ``before`` and this snapshot (same node)."""
        calls = {
            name: count - before.calls.get(name, 0)
            for name, count in self.calls.items()
            if count > before.calls.get(name, 0)
        }
        return NodeUsage(self.port, self.cpu - before.cpu, calls)

    def served(self) -> int:
        """The calls made by others than the harness (its ``INFO`` snapshots left out)."""
        return sum(n for name, n in self.calls.items() if name not in HARNESS_COMMANDS)


class RedisCluster(RedisClusterServers):
    """``size`` nodes joined in one cluster, the slots spread evenly; a context manager."""

    def __init__(self, size: int = 3, executable: str | None = None):
        super().__init__(size, executable, node_timeout_ms=NODE_TIMEOUT_MS)
        self.clients: dict[int, redis.Redis] = {}

    def start(self) -> RedisCluster:
        """Start and join the nodes; one client each for the snapshots (opened once, so
        that no snapshot adds a connection's handshake to what a node served)."""
        super().start()
        self.clients = {port: self.node_client(port, decode_responses=True) for port in self.ports}
        return self

    def close(self) -> None:
        for client in self.clients.values():
            client.close()
        super().close()

    def usage(self) -> list[NodeUsage]:
        """A snapshot of every node's CPU seconds and command calls (``INFO``)."""
        return [
            NodeUsage(port, cpu_seconds(client), _calls(client.info("commandstats")))
            for port, client in self.clients.items()
        ]


def _calls(stats: dict) -> dict[str, int]:
    """``{command: calls}`` from ``INFO commandstats`` (``cmdstat_evalsha: {calls: ...}``)."""
    return {
        name.removeprefix("cmdstat_"): int(fields["calls"])
        for name, fields in stats.items()
        if isinstance(fields, dict) and "calls" in fields
    }
