import celery as c
from celery import shared_task as st
from celery.app.task import Task as Base

app = c.Celery("proj", broker="redis://localhost:6379/0")
celery_app = app


class MyTask(Base):
    retries_seen = 0

    def on_failure(self, exc, task_id, args, kwargs, einfo):
        self.retries_seen += 1
        self.definitely_not_a_celery_method_xyz()


@celery_app.task(bind=True, base=MyTask)
def fetch(self, url):
    self.replace(other.s(url))
    self.also_not_a_celery_method_xyz()


@st(bind=True)
def other(self, url):
    return self.request.id


c.current_app.not_an_app_attribute_xyz
