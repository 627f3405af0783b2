"""A throwaway Redis Cluster for the cluster workload: three masters on loopback, no replica,
and what each node spent (CPU, commands) between two snapshots."""

from __future__ import annotations

import shutil
import subprocess
import time
from dataclasses import dataclass

from .redis_server import RedisServer, cpu_seconds, free_port

#: Seconds ``redis-cli --cluster create`` gets, then the nodes to agree the cluster is ok.
JOIN_TIMEOUT = 30.0

#: ``cluster-node-timeout`` in milliseconds: lower joins sooner; too low lets a node
#: stalled on a loaded machine be declared failed in the middle of a measurement.
NODE_TIMEOUT_MS = 5000


class ClusterNode(RedisServer):
    """One ``--cluster-enabled yes`` redis-server, its bus on a free port of its own."""

    def __init__(self, executable: str | None = None):
        super().__init__(executable)
        self.bus_port = free_port()

    def _arguments(self) -> list[str]:
        return [
            *super()._arguments(), "--cluster-enabled", "yes",
            "--cluster-port", str(self.bus_port),
            "--cluster-config-file", str(self._dir / "nodes.conf"),
            "--cluster-node-timeout", str(NODE_TIMEOUT_MS),
        ]  # fmt: skip


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


class RedisCluster:
    """``size`` nodes joined in one cluster, the slots spread evenly; a context manager."""

    def __init__(self, size: int = 3, executable: str | None = None):
        self.nodes = [ClusterNode(executable) for _ in range(size)]

    @property
    def url(self) -> str:
        """The ``redis+cluster://`` URL ``RedisBroker`` takes (the others are discovered)."""
        return f"redis+cluster://127.0.0.1:{self.nodes[0].port}"

    def __enter__(self) -> RedisCluster:
        try:
            for node in self.nodes:
                node.start()
            self._create()
            self._wait_until_ok()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for node in self.nodes:
            node.close()

    def flush(self) -> None:
        """Empty every node."""
        for node in self.nodes:
            node.client.flushall()

    def usage(self) -> list[NodeUsage]:
        """A snapshot of every node's CPU seconds and command calls (``INFO``)."""
        return [
            NodeUsage(node.port, cpu_seconds(node.client), _calls(node.client.info("commandstats")))
            for node in self.nodes
        ]

    def _create(self) -> None:
        cli = shutil.which("redis-cli") or "/usr/bin/redis-cli"
        command = [cli, "--cluster", "create", *(f"127.0.0.1:{node.port}" for node in self.nodes)]
        command += ["--cluster-replicas", "0", "--cluster-yes"]
        done = subprocess.run(command, capture_output=True, text=True, timeout=JOIN_TIMEOUT)
        if done.returncode != 0:
            raise RuntimeError(f"redis-cli --cluster create failed: {done.stdout}{done.stderr}")

    def _wait_until_ok(self) -> None:
        deadline = time.monotonic() + JOIN_TIMEOUT
        while not all(self._is_ok(node) for node in self.nodes):
            if time.monotonic() > deadline:
                raise RuntimeError("the cluster nodes did not agree the cluster is ok")
            time.sleep(0.05)  # polling processes that are starting

    def _is_ok(self, node: ClusterNode) -> bool:
        reply = node.client.execute_command("CLUSTER INFO")
        if isinstance(reply, str):
            reply = dict(line.split(":", 1) for line in reply.split() if ":" in line)
        fields = {str(key): str(value) for key, value in reply.items()}
        return fields.get("cluster_state") == "ok" and fields.get("cluster_known_nodes") == str(
            len(self.nodes)
        )


def _calls(stats: dict) -> dict[str, int]:
    """``{command: calls}`` from ``INFO commandstats`` (``cmdstat_evalsha: {calls: ...}``)."""
    return {
        name.removeprefix("cmdstat_"): int(fields["calls"])
        for name, fields in stats.items()
        if isinstance(fields, dict) and "calls" in fields
    }
