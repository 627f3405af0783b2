from celery import Celery
from celery_singleton import Singleton

app = Celery("proj", broker="redis://localhost:6379/0")


@app.task(base=Singleton)
def refresh(key):
    return key
