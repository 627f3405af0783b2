"""The beat command as real processes over Redis: django-celery-beat's DatabaseScheduler,
redbeat, two beats sharing the lease, and the configuration errors it reports.

Each beat runs ``python -m spinach_compat -A ... beat`` with ``--lease-term 1`` (a standby
takes over within about two seconds) and a loop interval of 0.5 s; the tests wait on the
lines beat logs, never on the clock.
"""

from __future__ import annotations

import itertools
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

import spinach_compat
from tests.support.processes import LogReader

ROOT = Path(__file__).resolve().parents[2]
SENT = r"Sending due task {} "
STAMP = re.compile(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}): INFO/\S+\] Scheduler: Sending "
                   r"due task (\S+) ", re.M)  # fmt: skip
TIMEOUT = 30.0  #: seconds a test waits for a beat process to print what it expects


def _env(url: str, tmp_path: Path, shim: bool = False, **extra: str) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "BEAT_BROKER_URL": url,
           "BEAT_DJANGO_DB": str(tmp_path / "db.sqlite3"), **extra}  # fmt: skip
    env.pop("SPINACH_AS_CELERY", None)
    if shim:
        env["SPINACH_AS_CELERY"] = "1"
    return env


class Beat:
    """A beat process; its output (banner and logs) read as it comes."""

    def __init__(self, app: str, args: list[str], env: dict[str, str]):
        command = [sys.executable, "-m", "spinach_compat", "-A", app, "beat", "-l", "INFO",
                   "--lease-term", "1", *args]  # fmt: skip
        self.process = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True,
        )  # fmt: skip
        self.log = LogReader(self.process.stdout, name="beat-log")  # type: ignore[arg-type]

    def sends(self, name: str, count: int) -> None:
        """Wait until it sent ``name`` ``count`` times in all."""
        self.log.wait_for(SENT.format(re.escape(name)), count, TIMEOUT)

    def sent(self, name: str) -> int:
        return len(re.findall(SENT.format(re.escape(name)), self.log.text))

    def stop(self, sig: int = signal.SIGTERM) -> int:
        """Send ``sig`` (if it still runs); its exit status."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
        return self.wait()

    def wait(self) -> int:
        """Its exit status, once it ended by itself."""
        status = self.process.wait(TIMEOUT)
        self.log.join()
        return status


@pytest.fixture
def beats() -> Iterator[list[Beat]]:
    """Beat processes started by a test, killed if still running at its end."""
    started: list[Beat] = []
    yield started
    for beat in started:
        beat.stop(signal.SIGKILL)


def _queue_lengths(url: str, namespace: str) -> dict[str, int]:
    app = spinach_compat.Celery(namespace, broker=url, set_as_current=False)
    return app.engine.broker.queue_lengths()


def _admin(tmp_path: Path, url: str, *args: str) -> None:
    command = [sys.executable, "-m", "tests.compat.beat_proj.admin", *args]
    done = subprocess.run(command, cwd=ROOT, env=_env(url, tmp_path), capture_output=True,
                          text=True, timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr


# -- django-celery-beat ----------------------------------------------------------------------


def test_django_celery_beat_entries_edited_while_beat_runs(redis_url, tmp_path, beats) -> None:
    pytest.importorskip("django_celery_beat")
    _admin(tmp_path, redis_url, "migrate")
    beat = Beat("tests.compat.beat_proj.djproj", ["-S", "django"],
                _env(redis_url, tmp_path, shim=True))  # fmt: skip
    beats.append(beat)
    beat.log.wait_for("beat: leading", timeout=TIMEOUT)
    _admin(tmp_path, redis_url, "add", "every:dj-every", "clock:dj-clock", "once:dj-once:one_off")
    beat.sends("every", 2)  # created while beat runs: picked up at its next check
    beat.sends("once", 1)
    _admin(tmp_path, redis_url, "disable", "every")
    before = beat.sent("every")
    clock = beat.sent("clock")
    beat.sends("clock", clock + 3)  # beat looked at the schedule several times since
    assert beat.sent("every") <= before + 1  # at most one in flight when it was disabled
    assert beat.sent("once") == 1
    assert beat.stop() == 0
    lengths = _queue_lengths(redis_url, "beatdj")  # sent through the app, to their queues
    assert (lengths["dj-every"], lengths["dj-once"]) == (beat.sent("every"), 1)


def test_django_celery_beat_without_its_migrations_names_the_table(redis_url, tmp_path):
    pytest.importorskip("django_celery_beat")
    beat = Beat("tests.compat.beat_proj.djproj", ["-S", "django"],
                _env(redis_url, tmp_path, shim=True))  # fmt: skip
    assert beat.wait() == 1  # a configuration error: it ends by itself
    assert re.search(r"Error: .*no such table: django_celery_beat_\w+", beat.log.text)
    assert "migrate" in beat.log.text and "Traceback" not in beat.log.text


# -- redbeat ---------------------------------------------------------------------------------


def test_redbeat_entry_added_with_its_api_fires(redis_url, tmp_path, beats) -> None:
    pytest.importorskip("redbeat")
    env = _env(redis_url, tmp_path, shim=True)
    beat = Beat("tests.compat.beat_proj.app", ["-S", "redbeat.RedBeatScheduler"], env)
    beats.append(beat)
    beat.log.wait_for("beat: leading", timeout=TIMEOUT)
    add = (
        "import spinach_compat; spinach_compat.install_as_celery()\n"
        "from celery.schedules import schedule\n"
        "from redbeat import RedBeatSchedulerEntry\n"
        "from tests.compat.beat_proj.app import app\n"
        "RedBeatSchedulerEntry('dyn', 'beatproj.tick', schedule(1), app=app,\n"
        "                      options={'queue': 'redbeat'}).save()\n"
    )
    done = subprocess.run([sys.executable, "-c", add], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr
    beat.sends("dyn", 2)
    assert beat.stop() == 0
    assert _queue_lengths(redis_url, "beatproj")["redbeat"] == beat.sent("dyn")


# -- two beats, one lease --------------------------------------------------------------------


def _send_times(*beats: Beat) -> list[datetime]:
    stamps = [m.group(1) for b in beats for m in STAMP.finditer(b.log.text)]
    return sorted(datetime.strptime(s, "%Y-%m-%d %H:%M:%S,%f") for s in stamps)


def test_two_beats_send_each_period_once_and_the_standby_takes_over(redis_url, tmp_path, beats):
    env = _env(redis_url, tmp_path, BEAT_TICK="1")
    leader = Beat("tests.compat.beat_proj.app", ["-s", str(tmp_path / "a")], env)
    beats.append(leader)
    leader.log.wait_for("beat: leading", timeout=TIMEOUT)
    standby = Beat("tests.compat.beat_proj.app", ["-s", str(tmp_path / "b")], env)
    beats.append(standby)
    standby.log.wait_for("beat: Starting", timeout=TIMEOUT)
    leader.sends("tick", 3)
    assert standby.sent("tick") == 0 and "leading" not in standby.log.text
    leader.stop(signal.SIGKILL)  # no release: the standby waits for the lease to run out
    standby.sends("tick", 3)
    assert standby.stop() == 0
    times = _send_times(leader, standby)
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(times)]
    assert min(gaps) > 0.5, gaps  # never twice in one period (of 1 s)
    published = _queue_lengths(redis_url, "beatproj")["ticks"]
    # a leader killed between noting a run and publishing it loses that one (at most once)
    assert len(times) - 1 <= published <= len(times)


# -- configuration errors --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "extra", "shim", "says"),
    [
        (["-S", "no_such_module:Scheduler"], {}, False,
         "beat scheduler 'no_such_module:Scheduler' cannot be loaded: importing "
         "'no_such_module' failed: ModuleNotFoundError"),
        ([], {"BEAT_SCHEDULER": "tests.compat.beat_proj.app:NoScheduler"}, True,
         "beat scheduler 'tests.compat.beat_proj.app:NoScheduler' cannot be loaded: module "
         "'tests.compat.beat_proj.app' has no attribute 'NoScheduler'"),
        (["-S", "redbeat.RedBeatScheduler"], {}, False,
         "beat scheduler 'redbeat.RedBeatScheduler' (redbeat.schedulers) is built on real "
         "Celery's celery.beat.Scheduler: run the command with SPINACH_AS_CELERY=1"),
    ],
)  # fmt: skip
def test_a_scheduler_that_does_not_load_exits_1_naming_it(redis_url, tmp_path, args, extra,
                                                          shim, says) -> None:  # fmt: skip
    beat = Beat("tests.compat.beat_proj.app", args, _env(redis_url, tmp_path, shim, **extra))
    assert beat.wait() == 1
    assert f"Error: {says}" in beat.log.text and "Traceback" not in beat.log.text


def test_refused_beat_flags_exit_2(redis_url, tmp_path) -> None:
    beat = Beat("tests.compat.beat_proj.app", ["--detach"], _env(redis_url, tmp_path))
    assert beat.wait() == 2
    assert "beat option --detach is not supported" in beat.log.text
