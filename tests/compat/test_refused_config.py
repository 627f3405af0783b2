"""Unsupported result backends and brokers are refused at first use and at worker start."""

from __future__ import annotations

import pytest

from spinach_compat.exceptions import UnsupportedFeature

from .worker_process import run_command

UNSUPPORTED_BACKENDS = [
    "db+sqlite:///results.db", "sqla+postgresql://u:secret@h/db",
    "mongodb://h:27017/", "rpc://", "cache+memcached://127.0.0.1:11211/",
]  # fmt: skip


@pytest.mark.parametrize("url", UNSUPPORTED_BACKENDS)
def test_the_app_raises_at_its_first_use_of_the_backend(make_app, url):
    app = make_app(backend=url)
    result = app.AsyncResult("some-id")
    with pytest.raises(UnsupportedFeature) as caught:
        _ = result.state
    message = str(caught.value)
    assert message.startswith("result_backend=") and "redis://" in message
    assert "secret" not in message  # the URL is sanitized
    with pytest.raises(UnsupportedFeature):
        _ = app.backend  # every use, not the first only


def test_a_backend_given_as_an_object_is_refused(make_app):
    with pytest.raises(UnsupportedFeature, match=r"result_backend=.*give a URL"):
        _ = make_app(backend=object()).backend


def test_disabled_results_are_fine(make_app):
    assert make_app(backend=None).backend is not None


def test_the_worker_refuses_to_start_with_one_line(redis_url):
    done = run_command(redis_url, "--result-backend", "db+sqlite:///r.db", "worker", "-c", "1")
    assert done.returncode == 1, done.stderr
    assert done.stderr.strip().splitlines() == [
        "ERROR: result_backend='db+sqlite:///r.db': the 'db+sqlite' result backend is not "
        "supported by spinach_compat; use redis://, rediss://, unix://, memory://, "
        "cache+memory://, django-db, django-cache, or None (disabled) (see migration_guide/)"
    ]


def test_the_worker_refuses_an_unsupported_broker_with_one_line():
    done = run_command("amqp://guest:pw@localhost//", "worker", "-c", "1")
    assert done.returncode == 1, done.stderr
    [line] = done.stderr.strip().splitlines()
    assert line.startswith("ERROR: broker_url='amqp://guest:**@localhost//': the 'amqp'")
