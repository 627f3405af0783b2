"""A project whose beat sends ``beatproj.tick`` every second (``BEAT_TICK=1``)."""

import os

from spinach_compat import Celery

app = Celery("beatproj", broker=os.environ["BEAT_BROKER_URL"])
app.conf.beat_max_loop_interval = 0.5
app.conf.redbeat_redis_url = os.environ["BEAT_BROKER_URL"]
if os.environ.get("BEAT_TICK"):
    app.conf.beat_schedule = {
        "tick": {"task": "beatproj.tick", "schedule": 1.0, "options": {"queue": "ticks"}},
    }
if os.environ.get("BEAT_SCHEDULER"):
    app.conf.beat_scheduler = os.environ["BEAT_SCHEDULER"]


@app.task(name="beatproj.tick")
def tick() -> str:
    return "tick"
