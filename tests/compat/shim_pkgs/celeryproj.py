"""A project whose code says ``import celery``, with no shim of its own (see
``SPINACH_AS_CELERY``); imported without the shim, it imports real Celery."""

import celery

app = celery.Celery("celeryproj", broker="memory://", backend="memory://")


@app.task
def add(x: int, y: int) -> int:
    return x + y
