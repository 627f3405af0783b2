"""bench/script_cost.py: each broker path is measured on a real redis-server."""

from __future__ import annotations

import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BENCH))

import script_cost  # noqa: E402
from benchlib.redis_server import RedisServer  # noqa: E402


def test_every_path_is_measured_and_the_jobs_go_through(capsys) -> None:
    with RedisServer() as server:
        result = script_cost.one_run(server, jobs=40, run=0)
        namespace_keys = server.client.keys("{probe0}/*")
        running = server.client.hlen("{probe0}/running")

    assert len(result) == 8
    for name, used in result.items():
        assert used["cpu"] > 0, name
        assert used["evalsha"] > 0, name  # every path is one script call at least
    assert running == 0  # fetched (all 50 jobs), then finished
    assert "{probe0}/history" in namespace_keys

    script_cost.report([result])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[-4:] == ["cpu", "evalsha", "lua", "inner"]
    assert len(lines) == 9
