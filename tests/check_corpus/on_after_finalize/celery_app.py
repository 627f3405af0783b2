from celery import Celery

app = Celery("proj", broker="redis://localhost:6379/0")


@app.on_after_finalize.connect
def setup_periodic_tasks(sender, **kwargs):
    sender.add_periodic_task(10.0, ping.s())


@app.task
def ping():
    return "pong"
