"""The worker's process options: ``%`` abbreviations, ``--uid``/``--gid``, ``-D``, ``-S``."""

from __future__ import annotations

import grp
import os
import pwd
import signal
import socket
from pathlib import Path

import pytest

from spinach_compat.worker.daemon import (
    DaemonError,
    drop_privileges,
    node_format,
    parse_umask,
    without_detach,
)

from ..helpers import wait_until
from .worker_process import run_command

WAIT = 60.0


def test_node_format_expands_as_celery():
    nodename = "w1@box.example.com"

    assert node_format("/var/log/%n%I.log", nodename, index=0) == "/var/log/w1.log"
    assert node_format("/var/log/%n%I.log", nodename, index=2) == "/var/log/w1-2.log"
    assert node_format("%h|%d|%p|%i|%%", nodename, index=3) == (
        "box.example.com|example.com|w1@box.example.com|3|%"
    )
    assert node_format("%n.pid", "box", index=0) == "celery.pid"  # Celery's default name
    assert node_format(None, nodename) is None


def test_node_format_refuses_an_unknown_abbreviation():
    with pytest.raises(DaemonError, match="unknown abbreviation %x"):
        node_format("%x.log", "w1@box", index=0)


def test_matches_celerys_node_format():
    celery = pytest.importorskip("celery.utils.nodenames")
    host = socket.gethostname()
    for text in ("%n.log", "%h-%d.pid", "%p"):
        assert node_format(text, f"w1@{host}", index=0) == celery.node_format(text, f"w1@{host}")


def test_dropping_to_the_current_user_and_group_is_accepted():
    user = pwd.getpwuid(os.getuid()).pw_name
    drop_privileges(user, str(os.getgid()))
    drop_privileges(str(os.getuid()), None)
    assert os.getuid() == pwd.getpwnam(user).pw_uid


@pytest.mark.parametrize(
    ("uid", "gid", "message"),
    [("no-such-user-xyz", None, "--uid no-such-user-xyz: no such user"),
     (None, "no-such-group-xyz", "--gid no-such-group-xyz: no such group")],
)  # fmt: skip
def test_unknown_users_and_groups_are_clear_errors(uid, gid, message):
    with pytest.raises(DaemonError, match=message):
        drop_privileges(uid, gid)


@pytest.mark.skipif(os.getuid() == 0, reason="root may switch to any user")
def test_switching_to_another_user_needs_root():
    other = next(p for p in pwd.getpwall() if p.pw_uid != os.getuid())
    with pytest.raises(DaemonError, match="only root can drop privileges"):
        drop_privileges(other.pw_name, None)


def test_umask_and_argv():
    assert parse_umask("022") == 0o22 and parse_umask("18") == 18 and parse_umask(None) is None
    assert without_detach(["-A", "p", "worker", "-D", "--detach", "-c", "2"]) == [
        "-A", "p", "worker", "-c", "2",
    ]  # fmt: skip


def test_unknown_user_stops_the_worker_command(redis_server):
    done = run_command(redis_server.url_for(8), "worker", "--uid", "no-such-user-xyz")
    assert done.returncode == 2
    assert "Error: --uid no-such-user-xyz: no such user" in done.stderr


def test_detached_worker_writes_its_pidfile_and_logs(redis_server, tmp_path: Path):
    import spinach_compat

    url = redis_server.url_for(8)
    user, group = pwd.getpwuid(os.getuid()).pw_name, grp.getgrgid(os.getgid()).gr_name
    done = run_command(
        url, "worker", "-D", "-c", "1", "-l", "info", "-n", "w1@%h",
        "--pidfile", str(tmp_path / "%n.pid"), "--logfile", str(tmp_path / "%n%I.log"),
        "--uid", user, "--gid", group, "-S", "worker.state",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    pidfile, log = tmp_path / "w1.pid", tmp_path / "w1.log"
    assert wait_until(lambda: pidfile.exists() and "PROJ-READY" in log.read_text(), WAIT)
    pid = int(pidfile.read_text())
    app = spinach_compat.Celery("proj", broker=url, backend=url, set_as_current=False)
    try:
        result = app.send_task("tests.compat.proj.tasks.add", args=(2, 3))
        assert result.get(timeout=WAIT) == 5
    finally:
        os.kill(pid, signal.SIGTERM)
    assert wait_until(lambda: not pidfile.exists(), WAIT)  # removed at exit
    text = log.read_text()
    assert "--statedb worker.state: not needed, revocations persist in the broker" in text
    assert "concurrency: 1 (prefork" in text
    assert "succeeded" in (tmp_path / "w1-1.log").read_text()  # the child's own log (%I)


def test_detach_refuses_a_pidfile_held_by_a_live_process(redis_server, tmp_path: Path):
    pidfile = tmp_path / "held.pid"
    pidfile.write_text(f"{os.getpid()}\n")  # this test process: alive
    done = run_command(redis_server.url_for(8), "worker", "-D", "--pidfile", str(pidfile))
    assert done.returncode == 1
    assert "Pidfile" in done.stderr and "already running" in done.stderr
