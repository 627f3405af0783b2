"""``spinach dead-letters retry|purge`` without ``--id``: in batches, with progress."""

from __future__ import annotations

import sys

import pytest

from spinach import cli
from spinach.brokers.base import WorkerInfo
from spinach.job import Job

from .test_cli import APPS


@pytest.fixture
def dead_letters(redis_broker_factory, redis_url, monkeypatch):
    """Five dead letters in the namespace of tests/cli_apps/redis_app.py, loaded afresh."""
    monkeypatch.setenv("CLI_REDIS_URL", redis_url)
    monkeypatch.chdir(APPS)
    monkeypatch.delitem(sys.modules, "redis_app", raising=False)
    monkeypatch.setattr(cli, "DEAD_LETTER_BATCH", 2)
    broker = redis_broker_factory(namespace="startup")
    broker.register_worker(WorkerInfo(id=broker.worker_id))
    broker.enqueue_jobs([Job("gone", "q", broker.now(), 0, [i]) for i in range(5)])
    for job in broker.get_jobs_from_queue("q", 5):
        broker.dead_letter(job, "unknown task")
    yield broker
    monkeypatch.delitem(sys.modules, "redis_app", raising=False)


@pytest.mark.parametrize("action, verb", [("retry", "Retried"), ("purge", "Purged")])
def test_all_dead_letters_in_batches_with_progress(dead_letters, capsys, action, verb):
    assert cli.main(["dead-letters", action, "redis_app:spin"]) == 0
    out, err = capsys.readouterr()
    assert [line for line in err.splitlines() if "dead letter" in line] == [
        f"{verb} 2 of 5 dead letter(s) (40%)",
        f"{verb} 4 of 5 dead letter(s) (80%)",
        f"{verb} 5 of 5 dead letter(s) (100%)",
    ]
    assert "5 dead letter(s) of namespace 'startup'" in out
    assert dead_letters.list_dead_letters() == []
    assert len(dead_letters.queue_jobs("q")) == (5 if action == "retry" else 0)


def test_given_ids_go_in_one_call_without_progress(dead_letters, capsys):
    ids = [letter.id for letter in dead_letters.list_dead_letters()[:3]]
    argv = ["dead-letters", "purge", "redis_app:spin"]
    for letter_id in ids:
        argv += ["--id", letter_id]
    assert cli.main(argv) == 0
    out, err = capsys.readouterr()
    assert "Purged 3 dead letter(s)" in out and "of 5" not in err
