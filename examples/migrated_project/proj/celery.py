"""The Celery app of the example project."""

import os

from spinach_compat import Celery

BROKER_URL = os.environ.get("BROKER_URL", "redis://localhost:6379/0")

app = Celery("proj", broker=BROKER_URL, backend=BROKER_URL, include=["proj.tasks"])
app.conf.update(
    task_default_queue="proj",
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    result_expires=3600,
    task_time_limit=60,
    beat_schedule={
        "heartbeat-every-minute": {
            "task": "proj.tasks.heartbeat",
            "schedule": 60.0,
            "args": ("beat",),
            "options": {"expires": 30},
        },
    },
)
