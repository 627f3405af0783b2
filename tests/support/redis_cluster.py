"""A throwaway Redis Cluster for tests: three masters on loopback, no replica.

Each node is a ``redis-server --cluster-enabled yes`` in its own temporary directory, on a
free port of 127.0.0.1 (never 6379) with its cluster bus on another free port; ``redis-cli
--cluster create`` joins them and hands out the 16384 slots.

The bench's cluster workload starts its cluster with this module too
(``bench/benchlib/redis_cluster.py``): keep it to the standard library and redis-py (no
pytest, nothing else of the tests), which is all the bench's environment has.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Sequence
from typing import Any

import redis
from redis.cluster import ClusterNode, RedisCluster
from redis.crc import key_slot

from .redis_server import RedisServer, find_executable, free_port

#: Seconds ``redis-cli --cluster create`` gets, then the nodes to agree the cluster is ok.
JOIN_TIMEOUT = 30.0

#: ``cluster-node-timeout`` of the nodes, in milliseconds. Nodes ping the ones they have
#: not heard from for half of it: lower joins the cluster sooner; too low lets a node
#: stalled on a loaded machine be declared failed, which takes its slots down mid-test.
NODE_TIMEOUT_MS = 2000


def find_redis_cli() -> str:
    """The path of ``redis-cli`` (it joins the nodes into a cluster)."""
    return find_executable("redis-cli")


class ClusterNodeServer(RedisServer):
    """One cluster-enabled redis-server; its cluster bus gets a free port of its own (the
    default, port + 10000, may be taken or beyond 65535)."""

    def __init__(self, node_timeout_ms: int = NODE_TIMEOUT_MS, **kwargs: Any):
        super().__init__(**kwargs)
        self.node_timeout_ms = node_timeout_ms
        self.bus_port = 0

    def start(self) -> ClusterNodeServer:
        self.bus_port = free_port()
        super().start()
        return self

    def _arguments(self) -> list[str]:
        args = super()._arguments()
        args += ["--cluster-enabled", "yes", "--cluster-port", str(self.bus_port)]
        args += ["--cluster-config-file", str(self.dir / "nodes.conf")]
        args += ["--cluster-node-timeout", str(self.node_timeout_ms), "--appendonly", "no"]
        return args


class RedisClusterServers:
    """Three (or ``size``) redis-server nodes joined in one cluster, slots spread evenly.

    Use it as a context manager, or ``start`` then ``close``; ``url`` is the
    ``redis+cluster://`` URL ``RedisBroker`` takes, ``client()`` a ``RedisCluster``.
    ``node_timeout_ms`` is each node's ``cluster-node-timeout`` (``NODE_TIMEOUT_MS``).
    """

    def __init__(
        self, size: int = 3, executable: str | None = None,
        node_timeout_ms: int = NODE_TIMEOUT_MS,
    ):  # fmt: skip
        if size < 3:
            raise ValueError("redis-cli --cluster create needs at least three masters")
        self.nodes = [
            ClusterNodeServer(executable=executable, node_timeout_ms=node_timeout_ms)
            for _ in range(size)
        ]

    # -- addresses -------------------------------------------------------------------------

    @property
    def ports(self) -> list[int]:
        return [node.port for node in self.nodes]

    @property
    def url(self) -> str:
        """The ``redis+cluster://`` URL of the first node (the others are discovered)."""
        return f"redis+cluster://127.0.0.1:{self.nodes[0].port}"

    def client(self, **kwargs: Any) -> RedisCluster:
        """A new cluster client; the caller closes it."""
        kwargs.setdefault("socket_timeout", 5.0)
        nodes = [ClusterNode("127.0.0.1", port) for port in self.ports]
        return RedisCluster(startup_nodes=nodes, **kwargs)

    def node_client(self, port: int, **kwargs: Any) -> redis.Redis:
        """A plain client of the node on ``port``; the caller closes it."""
        return redis.Redis(host="127.0.0.1", port=port, socket_timeout=5.0, **kwargs)

    def port_of_slot(self, slot: int) -> int:
        """The port of the node serving hash slot ``slot``."""
        with self.node_client(self.ports[0]) as client:
            for start, end, master, *_ in client.execute_command("CLUSTER SLOTS"):
                if start <= slot <= end:
                    return int(master[1])
        raise LookupError(f"no node serves slot {slot}")

    def port_of_tag(self, tag: str) -> int:
        """The port of the node holding the keys of hash tag ``tag`` (a namespace)."""
        return self.port_of_slot(key_slot(tag.encode()))

    # -- processes -------------------------------------------------------------------------

    def start(self) -> RedisClusterServers:
        """Start the nodes, join them and wait until every node says the cluster is ok."""
        try:
            for node in self.nodes:
                node.start()
            self._create()
            self._wait_until_ok()
        except BaseException:
            self.close()
            raise
        return self

    def flush(self) -> None:
        """Empty every node."""
        for port in self.ports:
            with self.node_client(port) as client:
                client.flushall()

    def close(self) -> None:
        """Stop every node and delete its directory."""
        for node in self.nodes:
            node.close()

    def __enter__(self) -> RedisClusterServers:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _create(self) -> None:
        addresses: Sequence[str] = [f"127.0.0.1:{port}" for port in self.ports]
        command = [find_redis_cli(), "--cluster", "create", *addresses]
        command += ["--cluster-replicas", "0", "--cluster-yes"]
        done = subprocess.run(command, capture_output=True, text=True, timeout=JOIN_TIMEOUT)
        if done.returncode != 0:
            raise RuntimeError(f"redis-cli --cluster create failed: {done.stdout}{done.stderr}")

    def _wait_until_ok(self) -> None:
        deadline = time.monotonic() + JOIN_TIMEOUT
        while not all(self._is_ok(port) for port in self.ports):
            if time.monotonic() > deadline:
                raise RuntimeError("the cluster nodes did not agree the cluster is ok")
            time.sleep(0.05)  # polling starting processes, not timing a test

    def _is_ok(self, port: int) -> bool:
        with self.node_client(port, decode_responses=True) as client:
            fields = _cluster_info(client.execute_command("CLUSTER INFO"))
        return (
            fields.get("cluster_state") == "ok"
            and fields.get("cluster_known_nodes") == str(len(self.nodes))
            and fields.get("cluster_slots_ok") == "16384"
        )


def _cluster_info(reply: dict[str, str] | str) -> dict[str, str]:
    """The fields of a CLUSTER INFO reply (redis-py parses it into a dict, or not)."""
    if isinstance(reply, dict):
        return {str(key): str(value) for key, value in reply.items()}
    return dict(line.split(":", 1) for line in reply.split() if ":" in line)
