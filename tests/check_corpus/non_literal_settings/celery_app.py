import os

from celery import Celery
from environ import Env

env = Env()
app = Celery("proj", broker=os.environ["BROKER_URL"])
app.conf.result_backend = env("RESULT_BACKEND")
