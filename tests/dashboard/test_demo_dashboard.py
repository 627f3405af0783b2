"""``python -m spinach.demo --dashboard``: the demo serves its own in-process dashboard."""

from __future__ import annotations

import io
import json
import urllib.request

from spinach import demo


def test_the_demo_serves_the_dashboard_of_its_in_process_broker():
    seen: dict[str, object] = {}
    out = io.StringIO()

    def look(url: str) -> None:
        with urllib.request.urlopen(f"{url}/api/history", timeout=10) as response:
            seen["history"] = json.load(response)["items"]
        with urllib.request.urlopen(f"{url}/api/periodic", timeout=10) as response:
            seen["periodic"] = json.load(response)["tasks"]

    result = demo.run(out, then=lambda spin: demo.serve_dashboard(spin, 0, out, wait=look))
    assert result.complete
    assert "Dashboard of the demo: http://127.0.0.1:" in out.getvalue()
    finished = {record["task"] for record in seen["history"]}  # type: ignore[union-attr]
    assert {"greet", "square", "flaky", "doomed", "tick"} <= finished
    assert [task["task"] for task in seen["periodic"]] == ["tick"]  # type: ignore[union-attr]
