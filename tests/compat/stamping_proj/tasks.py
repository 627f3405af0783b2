"""Tasks of the stamping project: some replace themselves, stamping the replacement."""

import os

from .config import app
from .visitors import Doomed, EveryHook, MonitoringId

if os.environ.get("PROJ_IMPL") == "celery":
    from celery import Task
    from celery.canvas import maybe_signature
else:
    from spinach_compat import Task
    from spinach_compat.canvas import maybe_signature


def describe(task):
    """What a run sees: its argument repr, its stamp names, its callbacks' stamp names."""
    request = task.request
    links = [maybe_signature(link) for link in request.callbacks or []]
    return {
        "argsrepr": request.argsrepr,
        "stamped_headers": sorted(request.stamped_headers or []),
        "link_stamps": [sorted(link.options.get("stamped_headers", [])) for link in links],
    }


class StampsReplacement(Task):
    def on_replace(self, sig):
        sig.stamp(EveryHook())
        sig.stamp(Doomed())
        return super().on_replace(sig)


class MonitorsReplacement(Task):
    def on_replace(self, sig):
        sig.stamp(MonitoringId(), append_stamps=False)
        return super().on_replace(sig)


@app.task(bind=True)
def identity_task(self, x):
    return x


@app.task(bind=True)
def described(self, x):
    return [x, describe(self)]


@app.task(bind=True, base=MonitorsReplacement)
def replaced_identity(self, x):
    replacement = described.s(x)
    replacement.stamp(MonitoringId())
    return self.replace(replacement)


@app.task(bind=True, base=StampsReplacement)
def identity(self, x):
    return self.replace(replaced_identity.s(x))


@app.task
def mul(x, y):
    return x * y


@app.task
def xsum(numbers):
    return sum(numbers)


@app.task
def finish(total):
    return f"finished after {total}"


@app.task(bind=True, base=StampsReplacement)
def finish_unless_revoked(self, total):
    """Replaced by ``finish``, stamped ``fate: doomed`` by ``on_replace``."""
    return self.replace(finish.s(total))
