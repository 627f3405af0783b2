import os

broker_url = os.environ.get("BROKER_URL", "redis://localhost:6379/0")
result_backend = "db+sqlite:///results.db"
task_serializer = "json"
_private = "not a setting"


def helper():
    worker_pool = "prefork"
    return worker_pool
