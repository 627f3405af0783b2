"""The Django app against real Django: a small project on SQLite run by ``manage.py``.

Each step is a ``manage.py`` process, as in production (Django's settings are global to a
process, and the compat tests set up another project in the test process).
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("django")

SITE = Path(__file__).resolve().parent / "django_site"
#: Seconds one ``manage.py`` command gets.
COMMAND_TIMEOUT = 60


def manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=SITE, capture_output=True, text=True,
        timeout=COMMAND_TIMEOUT, env={**os.environ, **env},
    )  # fmt: skip


@pytest.fixture
def base_env(tmp_path: Path, redis_url: str) -> dict[str, str]:
    return {"DB_PATH": str(tmp_path / "db.sqlite3"), "SPINACH_BROKER": redis_url,
            "EMAIL_DIR": str(tmp_path / "mails")}  # fmt: skip


@pytest.fixture
def site_env(base_env: dict[str, str]) -> dict[str, str]:
    env = base_env
    migrated = manage("migrate", "--run-syncdb", "-v", "0", env=env)
    assert migrated.returncode == 0, migrated.stderr
    return env


SCHEDULE = """
from django.core.mail import send_mail
from spinach.contrib.spinachd import spin
from notes.tasks import write
spin.schedule(write, "first")
spin.schedule(write, "second")
send_mail("Welcome", "Hello there", "site@example.com", ["user@example.com"])
"""


def test_manage_py_spinach_runs_jobs_writing_rows_and_mails(site_env, tmp_path):
    scheduled = manage("shell", "-c", SCHEDULE, env=site_env)
    assert scheduled.returncode == 0, scheduled.stderr
    assert not (tmp_path / "mails").exists()  # sent by the job, not by send_mail
    ran = manage("spinach", "--threads", "1", "--stop-when-queue-empty", env=site_env)
    assert ran.returncode == 0, ran.stderr
    with sqlite3.connect(site_env["DB_PATH"]) as db:
        rows = db.execute("SELECT text, connection_was_closed FROM notes_note ORDER BY id")
        # each job found the connection closed by close_old_connections after the previous
        assert rows.fetchall() == [("first", 1), ("second", 1)]
    [mail] = (tmp_path / "mails").iterdir()
    assert "Subject: Welcome" in mail.read_text()
    assert "spinachd:clear_expired_sessions" in ran.stderr  # the periodic task ran too


def test_an_unknown_broker_url_scheme_is_refused_naming_the_setting(base_env):
    checked = manage("check", env={**base_env, "SPINACH_BROKER": "amqp://guest@localhost//"})
    assert checked.returncode != 0
    assert "ImproperlyConfigured" in checked.stderr
    assert "SPINACH_BROKER in the Django settings has an unknown URL scheme 'amqp'" in (
        checked.stderr
    )


def test_one_task_name_in_two_apps_is_refused_naming_both_modules(base_env):
    checked = manage("check", env={**base_env, "EXTRA_APPS": "dupes"})
    assert checked.returncode != 0
    assert "task 'notes:write' is registered by both notes.tasks and dupes.tasks" in (
        checked.stderr
    )


ROUND_TRIP = """
import json
from email.mime.text import MIMEText
from django.core.mail import EmailMessage, EmailMultiAlternatives
from spinach.contrib.spinachd.mail import deserialize_email_messages, serialize_email_messages
m = EmailMultiAlternatives("Hi", "text", "a@example.com", ["b@example.com"], cc=["c@example.com"],
                           headers={"X-Tag": "1"})
m.attach_alternative("<p>html</p>", "text/html")
m.attach("data.bin", b"\\x00\\xff", "application/octet-stream")
carried = json.loads(json.dumps(serialize_email_messages([m])))
[back] = deserialize_email_messages(carried)
print(back.subject, back.cc, back.extra_headers, back.alternatives[0][0], back.attachments[0][1])
bad = EmailMessage("Bad", "x", "a@example.com", ["b@example.com"])
bad.attach(MIMEText("inline"))
try:
    serialize_email_messages([bad])
except ValueError as exc:
    print(exc)
"""


def test_mails_travel_as_json_and_mime_attachments_are_refused(base_env):
    shown = manage("shell", "-c", ROUND_TRIP, env=base_env)
    assert shown.returncode == 0, shown.stderr
    carried, refused = shown.stdout.splitlines()[-2:]  # after shell's banner
    assert carried == "Hi ['c@example.com'] {'X-Tag': '1'} <p>html</p> b'\\x00\\xff'"
    assert "cannot carry the MIME attachment of the e-mail 'Bad'" in refused
