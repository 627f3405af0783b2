"""Tasks shared by both sides of the interop tests, registered on any app by ``register``.

Names are explicit (``interop.*``) so a Celery producer, the facade and a Celery worker
agree on them whatever module defines them.
"""

import time

import redis

#: The Redis set where ``record`` notes each run (one member per task argument).
RUNS_KEY = "interop:runs"
#: The Redis counter of ``record`` runs (duplicates included).
RUN_COUNT_KEY = "interop:run_count"


def register(app):
    """Define the project's tasks on ``app`` (real Celery or the facade)."""

    @app.task(name="interop.add")
    def add(a, b):
        return a + b

    @app.task(name="interop.fail")
    def fail(message):
        raise ValueError(message)

    @app.task(name="interop.stamp")
    def stamp():
        return time.time()

    @app.task(name="interop.flaky", bind=True, max_retries=3)
    def flaky(self, succeed_at):
        if self.request.retries < succeed_at:
            raise self.retry(countdown=0.1)
        return self.request.retries

    @app.task(name="interop.request", bind=True)
    def request(self):
        r = self.request
        return {"id": r.id, "root_id": r.root_id, "parent_id": r.parent_id,
                "retries": r.retries, "timelimit": list(r.timelimit or ())}  # fmt: skip

    @app.task(name="interop.reprs", bind=True)
    def reprs(self, *args, **kwargs):
        return [self.request.argsrepr, self.request.kwargsrepr]

    @app.task(name="interop.record")
    def record(number):
        client = redis.Redis.from_url(app.conf.broker_url)
        try:
            # counted first: a kill between the two calls leaves a run counted, not lost
            client.incr(RUN_COUNT_KEY)
            client.sadd(RUNS_KEY, number)
        finally:
            client.close()
        return number

    @app.task(name="interop.legacy_mul")
    def legacy_mul(a, b):
        return a * b

    @app.task(name="interop.legacy_reprs", bind=True)
    def legacy_reprs(self, *args, **kwargs):
        return [self.request.argsrepr, self.request.kwargsrepr]

    @app.task(name="interop.legacy_fail")
    def legacy_fail(message):
        raise KeyError(message)
