"""Celery's sub-commands the facade does not have: each names what to use instead.

``spinach-compat graph``, ``migrate``, ``upgrade``, ``amqp``, ``list`` and
``logtool`` (and ``flower``, a separate program Celery users run as one) print
``Error: ...`` with the replacement and exit with status 2, a usage error, before any app
is loaded: a deployment running one of them stops at once, with no Python traceback (see
``spinach_compat.bin.dispatch``).
"""

from __future__ import annotations

_GUIDE = "see migration_guide/features.md#"

#: Celery's sub-commands the facade refuses, and what to use instead.
REFUSED_COMMANDS = {
    "flower": "Flower is a program of its own: install it (pip install flower) and run it "
    "with real Celery's command on the same broker, `celery --broker=redis://... flower`; it "
    "shows the workers started with -E and their tasks ("
    + _GUIDE
    + "monitoring-events-and-flower)",
    "graph": "there is no bootsteps or worker graph to draw: `spinach-compat -A proj status` "
    "lists the workers (" + _GUIDE + "control-and-inspection)",
    "migrate": "jobs move between brokers as native jobs, not Celery messages: drain the old "
    "broker with a worker (`worker --celery-queues`, " + _GUIDE + "interop-with-celery)",
    "upgrade": "it rewrote Celery 3 settings to Celery 4 names; the facade reads both names: "
    "run `spinach-compat check PATH` to list what a codebase uses (" + _GUIDE + "settings)",
    "amqp": "there is no AMQP broker (jobs live in Redis): `spinach-compat -A proj purge -Q` "
    "empties a queue, app.engine.broker.queue_lengths() counts them ("
    + _GUIDE
    + "control-and-inspection)",
    "list": "`list bindings` is about AMQP exchanges, which the facade does not use: "
    "`spinach-compat -A proj inspect active_queues` lists the queues workers consume",
    "logtool": "worker logs are the standard logging module's lines: read them with your "
    "log tools (grep, your log aggregator)",
}
