from celery import Celery

app = Celery("proj", broker="redis://localhost:6379/0")
app.control.revoke("a-task-id", terminate=True)
app.control.revoke("b-task-id", destination=["w1@host"])
app.control.rate_limit("proj.tasks.add", "1/s")
app.control.pool_restart()
app.control.enable_events()
inspector = app.control.inspect()
inspector.active()
inspector.not_an_inspect_method_xyz()
