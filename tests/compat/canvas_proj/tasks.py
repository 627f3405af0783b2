"""Tasks replacing themselves (with a signature, a group, a chain) and plain arithmetic."""

import os

from .celery import app

if os.environ.get("PROJ_IMPL") == "celery":
    from celery import Task, group
else:
    from spinach_compat import Task, group


@app.task
def add(a, b):
    return a + b


@app.task
def double(x):
    return 2 * x


@app.task
def total(values):
    return sum(values)


@app.task
def collect(values):
    return values


@app.task
def fail(message):
    raise ValueError(message)


@app.task(bind=True)
def note_failure(self, failed_id):
    """An errback: records the id of the failed task under ``<id>-errback``."""
    self.update_state(task_id=f"{failed_id}-errback", state="SUCCESS", meta=failed_id)


def _replacement(kind):
    return {
        "sig": lambda: add.s(1, 2),
        "group": lambda: group(add.s(1, 1), add.s(2, 2)),
        "chain": lambda: add.s(1, 1) | add.s(10),
        "chain-to-group": lambda: add.s(1, 1) | group(double.s(), double.s()),
        "fail": lambda: fail.s("replaced"),
    }[kind]()


@app.task(bind=True)
def replaced(self, kind):
    """Hands its place to the replacement ``kind`` names."""
    return self.replace(_replacement(kind))


class Hooked(Task):
    def on_replace(self, sig):
        """Records the replacement's task name under ``<id>-hook``, then sends it."""
        self.update_state(task_id=f"{self.request.id}-hook", state="SUCCESS", meta=sig.name)
        return super().on_replace(sig)


@app.task(bind=True, base=Hooked)
def hooked(self, kind):
    return self.replace(_replacement(kind))


@app.task
def square(i):
    return i * i


@app.task
def squared_later(i):
    """Sends ``square(i)``: its result is this task's child."""
    return square.delay(i).id


@app.task
def fan_out(how_many):
    """Sends a group of ``squared_later``: the group's result is this task's child."""
    return group(squared_later.s(i) for i in range(how_many))().id


@app.task
def adopts_one(a, b):
    """Sends ``add`` twice, the second with ``add_to_parent=False``: the ids, in order."""
    return [add.delay(a, b).id, add.apply_async((a, b), add_to_parent=False).id]


@app.task(bind=True)
def stamps_seen(self, *args):
    """The stamps of this run, as the worker gives them."""
    return [sorted(self.request.stamped_headers or []), self.request.stamps]


@app.task(bind=True)
def spin(self, seconds):
    """Stores PROGRESS, then loops in Python (never in a C call) for ``seconds``, unless
    stopped."""
    import time

    self.update_state(state="PROGRESS")
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        pass
    return "finished"


@app.task(bind=True)
def grow(self, n, added_id, lazy=False):
    """A chord header task adding ``add(n, n)`` (task id ``added_id``) to its chord."""
    sig = add.s(n, n).set(task_id=added_id)
    added = self.add_to_chord(sig, lazy=lazy)
    if lazy:
        added.delay()
    return n
