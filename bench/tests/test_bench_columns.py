"""The bench's bare-thread and partitioned columns, Redis CPU per job and cluster workload,
on real servers.

In the default test paths (pyproject.toml); alone: ``bash scripts/test.sh bench/tests -q``
(they start the bench's own redis-servers and workers, under a minute).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from redis.crc import key_slot

from spinach.brokers.redis_layout import partition_tags

BENCH = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BENCH))

from benchlib import DEFAULT_WORKLOADS  # noqa: E402
from benchlib.impls import BY_NAME, Impl  # noqa: E402
from benchlib.redis_cluster import RedisCluster  # noqa: E402
from benchlib.redis_server import RedisServer  # noqa: E402
from benchlib.report import legend, summarize, table  # noqa: E402
from benchlib.venvs import Venv  # noqa: E402
from benchlib.workloads import BROKERLESS_NOTE, Bench, ImplResult, Options, partitioned  # noqa: E402

sys.path.insert(0, str(BENCH / "impls"))
import bare_threads  # noqa: E402


@dataclass(frozen=True)
class HereVenv(Venv):
    """The test's own interpreter (it has redis-py and spinach) in place of a bench venv."""

    @property
    def python(self) -> Path:
        return Path(sys.executable)


HERE = HereVenv("ours", None)


def here(name: str) -> Impl:
    """The implementation ``name`` run with the test's interpreter."""
    return replace(BY_NAME[name], venv=HERE)


@pytest.fixture
def server():
    with RedisServer() as redis_server:
        yield redis_server


def bench(server: RedisServer, tmp_path: Path, workloads: set[int], jobs: int = 300) -> Bench:
    options = Options(runs=1, jobs=jobs, batch_size=100, threads=4, phase_timeout=120)
    options.workloads = frozenset(workloads)
    return Bench(options, server, tmp_path / "logs")


@pytest.mark.parametrize(("target", "parts"), [(0, 1), (7, 1), (7, 2), (1000, 3), (2, 3)])
def test_bare_thread_shares_add_up_to_the_target(target, parts):
    shares = [bare_threads.share(target, part, parts) for part in range(parts)]
    assert sum(shares) == target
    assert max(shares) - min(shares) <= 1


def test_cpu_seconds_grow_with_the_servers_work(server):
    before = server.cpu_seconds()
    for n in range(2000):
        server.client.set(f"k{n}", n)
    assert server.cpu_seconds() > before > 0


def test_bare_column_runs_the_execution_workloads_in_one_and_two_processes(server, tmp_path):
    result = ImplResult()
    bench(server, tmp_path, {1, 3, 4, 8}).run_once(here("bare"), result, 1)
    assert result.errors == []
    assert set(result.metrics) == {
        "exec", "redis_us_exec", "exec_p1", "redis_us_exec_p1", "exec_p2", "redis_us_exec_p2",
    }  # fmt: skip
    assert all(value > 0 for values in result.metrics.values() for value in values)
    # only the broker workloads asked for are n/a, and say why
    assert set(result.notes) == {
        "enqueue_single", "redis_us_enqueue_single", "latency_p50", "latency_p99"
    }  # fmt: skip
    assert set(result.notes.values()) == {BROKERLESS_NOTE}


def test_ours_gets_redis_cpu_per_job_for_each_phase(server, tmp_path):
    result = ImplResult()
    bench(server, tmp_path, {1, 2, 3}).run_once(here("ours"), result, 1)
    assert result.errors == []
    for metric in ("redis_us_enqueue_single", "redis_us_enqueue_batch", "redis_us_exec"):
        (value,) = result.metrics[metric]
        assert 0 < value < 10_000, metric  # microseconds per job, not seconds nor a total


def test_table_shows_ours_as_a_share_of_the_bare_threads():
    ours, bare = ImplResult(), ImplResult()
    ours.add("exec", 900.0)
    ours.add("redis_us_exec", 200.0)
    bare.add("exec", 1000.0)
    bare.add("redis_us_exec", 50.0)
    bare.notes["enqueue_single"] = BROKERLESS_NOTE
    results = {"ours": ours, "bare": bare}
    summary = summarize(results)
    assert summary["ours"]["jobs_per_redis_core"] == pytest.approx(5000)
    lines = table([BY_NAME["ours"], BY_NAME["bare"]], summary, results).splitlines()
    row = {line.split("(")[0].strip(): line.split()[-3:] for line in lines[2:]}
    assert row["3 execute, 1 process"] == ["900", "1000", "0.9x"]
    assert row["3 Redis CPU per job"] == ["200", "50.0", "4.0x"]
    assert row["1 enqueue one at a time"][-1] == "n/a"


def test_cluster_usage_counts_each_nodes_commands():
    with RedisCluster() as cluster:
        first = cluster.ports[0]
        client = cluster.clients[first]
        key = _key_on(client, first)
        before = cluster.usage()
        for _ in range(50):
            client.execute_command("INCR", key)
        spent = [after.since(old) for after, old in zip(cluster.usage(), before, strict=True)]
    assert [usage.port for usage in spent] == cluster.ports
    assert spent[0].calls["incr"] == 50
    assert spent[0].served() == 50  # the snapshots' own INFO left out
    assert all("incr" not in usage.calls for usage in spent[1:])
    assert all(usage.cpu >= 0 for usage in spent)


def _key_on(client, port: int) -> str:
    """A key of a slot the node on ``port`` serves."""
    slots = client.execute_command("CLUSTER SLOTS")
    ranges = [(start, end) for start, end, master, *_ in slots if int(master[1]) == port]
    return next(
        f"k{n}" for n in range(10_000)
        if any(start <= key_slot(f"k{n}".encode()) <= end for start, end in ranges)
    )  # fmt: skip


def test_cluster_workload_runs_ours_on_three_masters(server, tmp_path):
    result = ImplResult()
    runner = bench(server, tmp_path, {10}, jobs=200)
    runner.run_once(here("ours"), result, 1)
    assert result.errors == []
    assert result.metrics["cluster_exec"][0] > 0
    (nodes,) = result.cluster_nodes
    # one slot per namespace: one node serves the broker's scripts, the others nearly nothing
    assert sum(nodes[0]["calls"].values()) > 200
    assert result.metrics["cluster_node1_calls"][0] > 10 * result.metrics["cluster_node2_calls"][0]
    text = legend([BY_NAME["ours"]], {"ours": result}, runner.options)
    assert f"node 1 (port {nodes[0]['port']})" in text


def test_the_cluster_workload_runs_only_when_named():
    assert 10 not in DEFAULT_WORKLOADS
    assert [impl.name for impl in BY_NAME.values() if impl.cluster] == ["ours", "ours-part"]


# -- the partitioned column ------------------------------------------------------------------


def test_the_partition_count_goes_in_the_broker_url():
    ours, part = BY_NAME["ours"], BY_NAME["ours-part"]
    assert partitioned("redis://h:1/0", ours) == "redis://h:1/0"
    assert partitioned("redis://h:1/0", part) == "redis://h:1/0?partitions=4"
    assert partitioned("redis+cluster://h:1", part, on_cluster=True).endswith("?partitions=3")
    assert not BY_NAME["ours-part"].by_default  # a variant, run when named


def test_the_partitioned_column_runs_on_partitions_of_the_one_redis(server, tmp_path):
    result = ImplResult()
    runner = bench(server, tmp_path, {3})
    runner.run_once(here("ours-part"), result, 1)
    assert result.errors == []
    assert result.metrics["exec"][0] > 0
    assert server.client.get("{bench}/partitions") == "4"  # the namespace's recorded count
    assert runner.env.get("BENCH_BROKER_URL") is None  # the next column gets the one slot


def test_the_partitioned_column_spreads_the_cluster_workload_over_the_nodes(server, tmp_path):
    result = ImplResult()
    runner = bench(server, tmp_path, {10}, jobs=300)
    runner.run_once(here("ours-part"), result, 1)
    assert result.errors == []
    assert len(result.cluster_nodes) == 1
    calls = [result.metrics[f"cluster_node{n}_calls"][0] for n in (1, 2, 3)]
    # the partitions' hash tags are in three thirds of the slots: one per node
    assert {key_slot(tag.encode()) * 3 // 16384 for tag in partition_tags("bench", 3)} == {0, 1, 2}
    assert min(calls) > sum(calls) / 5, calls
    text = legend([BY_NAME["ours-part"]], {"ours-part": result}, runner.options)
    assert "3 partitions spread by their hash tags" in text
