"""The benchmark harness behind ``bench/run.py`` (see bench/README.md).

Only ``venvs``, ``impls`` and this module are used before the venvs exist (stdlib only);
the rest runs inside the ``ours`` venv, which has redis-py.
"""

#: Workload numbers and the names ``--workloads`` also takes.
WORKLOADS = {
    1: "enqueue", 2: "batch", 3: "exec", 4: "latency", 5: "timing", 6: "roundtrip",
    7: "rss", 8: "scaling", 9: "pools", 10: "cluster",
}  # fmt: skip

#: Workloads run when ``--workloads`` is not given: the cluster (10) starts three more
#: redis-servers and measures ours only, so it is run when named.
DEFAULT_WORKLOADS = frozenset(WORKLOADS) - {10}
