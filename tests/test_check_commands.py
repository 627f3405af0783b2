"""``spinach-compat check`` on Celery's sub-commands other than worker and beat: its verdicts
agree with what ``spinach-compat`` runs (see tests/compat/test_commands.py, test_multi.py)."""

from __future__ import annotations

from spinach_compat import check

DEPLOY = """\
celery -A proj multi start w1 w2 -c 4 -Q:1 images --pidfile=/run/%n.pid --logfile=/l/%n%I.log
celery -A proj multi stopwait w1 w2 -KILL --pidfile=/run/%n.pid --nosplash
celery -A proj status -t 5
celery -A proj control -d w1@h shutdown
celery -A proj control revoke abc
celery -A proj call proj.add --args '[1,2]' --countdown 10 --queue q
celery -A proj result abc --traceback
celery -A proj shell --python
celery -A proj events --camera x
celery -A proj multi start w1 --autoscale=4,1
celery -A proj report
"""


def test_verdicts_on_command_lines(tmp_path) -> None:
    (tmp_path / "deploy.sh").write_text(DEPLOY)
    found = {(f.line, f.api): f for f in check.check_path(tmp_path).findings}
    statuses = {key: finding.status for key, finding in found.items()}
    unsupported = {key for key, status in statuses.items() if status == check.UNSUPPORTED}
    assert unsupported == {(9, "celery events --camera")}
    assert statuses[(9, "celery events")] == check.SUPPORTED  # --dump; the camera refused
    assert "--dump" in found[(9, "celery events --camera")].note
    assert found[(9, "celery events")].section.endswith("#monitoring-events-and-flower")
    assert statuses[(10, "--autoscale")] == check.SUPPORTED  # the prefork pool's
    for line, api in [(1, "celery multi"), (1, "-Q"), (1, "--pidfile"), (2, "celery multi"),
                      (3, "celery status"), (4, "celery control shutdown"),
                      (5, "celery control revoke"), (6, "celery call"),
                      (6, "celery call --queue"), (7, "celery result --traceback"),
                      (8, "celery shell --python")]:  # fmt: skip
        assert statuses[(line, api)] == check.SUPPORTED, (line, api)
    assert statuses[(11, "celery report")] == check.DIFFERENT
    assert unsupported == {(9, "celery events --camera")}
    assert statuses[(9, "celery events")] == check.SUPPORTED  # --dump; the camera refused
    assert "--dump" in found[(9, "celery events --camera")].note
    assert found[(9, "celery events")].section.endswith("#monitoring-events-and-flower")
    assert not any(api.endswith("-KILL") or api == "--nosplash" for _, api in found)
