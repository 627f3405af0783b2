"""Tasks exercising values, failures, retries, countdowns, revocation and time limits."""

import os
import time

from .celery import app

if os.environ.get("PROJ_IMPL") == "celery":
    from celery.exceptions import SoftTimeLimitExceeded
else:
    from spinach_compat.exceptions import SoftTimeLimitExceeded


@app.task
def add(a, b):
    return a + b


@app.task
def fail(message):
    raise ValueError(message)


@app.task
def stamp():
    """When it ran, by the clock of this host."""
    return time.time()


@app.task(bind=True, max_retries=3)
def flaky(self, succeed_at):
    if self.request.retries < succeed_at:
        raise self.retry(countdown=0.2)
    return self.request.retries


@app.task(bind=True, max_retries=2)
def always_retry(self):
    raise self.retry(countdown=0)


@app.task(bind=True, autoretry_for=(KeyError,), retry_kwargs={"max_retries": 2, "countdown": 0})
def auto(self):
    if self.request.retries < 2:
        raise KeyError("again")
    return self.request.retries


@app.task(soft_time_limit=0.5)
def soft_limited():
    try:
        while True:
            time.sleep(0.02)
    except SoftTimeLimitExceeded:
        return "cleaned up"


@app.task(time_limit=0.5)
def hard_limited():
    while True:
        time.sleep(0.02)


@app.task
def swallow_hard():
    """Catches everything, yet the hard limit fails it."""
    try:
        while True:
            time.sleep(0.02)
    except BaseException:
        return "swallowed"


@app.task
def sleeper(seconds):
    time.sleep(seconds)
    return seconds


@app.task
def tick(label):
    return label


@app.task
def spin(seconds):
    """Loops in Python (never in a C call) for ``seconds``, unless stopped."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        pass
    return "finished"


@app.task(bind=True)
def membership(self):
    """The group this run belongs to and its position in it (None, None outside a group)."""
    return [self.request.group, self.request.group_index]


@app.task(bind=True)
def reprs(self, card, cvv=None):
    """What this run shows for its arguments (``argsrepr``, ``kwargsrepr``)."""
    return [self.request.argsrepr, self.request.kwargsrepr]


@app.task
def hold(key, seconds=30):
    """Runs until ``key`` exists in the broker's Redis (a test's release from its process),
    ``seconds`` at most."""
    import redis

    client = redis.Redis.from_url(app.conf.broker_url)
    deadline = time.monotonic() + seconds
    while not client.exists(key) and time.monotonic() < deadline:
        time.sleep(0.01)
    return "released"
