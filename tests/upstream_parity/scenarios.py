"""Scenarios of upstream Spinach's public API, run alike by upstream 0.0.25 and by ours.

``python scenarios.py REDIS_URL NAMESPACE_PREFIX`` prints one JSON object: the outcome of
every scenario. tests/test_upstream_parity.py runs it under both and compares. It is kept
to what upstream 0.0.25 offers (no type hints of newer syntax, no API of ours only).
"""

import json
import sys
import threading
from datetime import datetime, timedelta, timezone

from redis import Redis

from spinach import Batch, Engine, MemoryBroker, RedisBroker, Tasks, const, signals
from spinach.exc import SpinachError

tasks = Tasks()


@tasks.task(name="add")
def add(a, b):
    return a + b


@tasks.task(name="record", max_retries=1)
def record(label):
    RAN.append(label)


RAN = []


def error_name(call):
    """The class name of the error ``call`` raises, with whether it is a SpinachError."""
    try:
        call()
    except Exception as exc:
        return [type(exc).__name__, isinstance(exc, SpinachError)]
    return None


def registry():
    """The decorator, Tasks.add, names, tasks, get, and the errors of bad registrations."""
    local = Tasks(queue="q")
    local.add(add, name="again")
    return {
        "returns_function": add(1, 2),
        "task_name": add.task_name,
        "names": sorted(tasks.names),
        "tasks": sorted(tasks.tasks),
        "task_queue": tasks.tasks["record"].queue,
        "task_max_retries": tasks.tasks["record"].max_retries,
        "default_queue": local.tasks["again"].queue,
        "get_by_function": tasks.get(add).name,
        "duplicate": error_name(lambda: local.add(record, name="again")),
        "unnamed_lambda": error_name(lambda: local.add(lambda: None, name="")),
        "reserved_queue": error_name(lambda: local.add(record, name="x", queue="_q")),
        "periodic": str(periodic_registry().tasks["tick"].periodicity),
    }


def periodic_registry():
    local = Tasks(periodicity=timedelta(minutes=5))
    local.add(tick, name="tick")
    return local


def tick():
    pass


def engine_calls():
    """Engine.execute, schedule, schedule_at, schedule_batch, and their errors."""
    spin = Engine(MemoryBroker(), namespace="calls")
    spin.attach_tasks(tasks)
    batch = Batch()
    batch.schedule("add", 1, 2)
    batch.schedule(add, 3, 4)
    return {
        "execute": spin.execute(add, 2, 3),
        "execute_by_name": spin.execute("add", 2, 3),
        "schedule": spin.schedule(add, 1, 2).task_name,
        "status": spin.schedule("add", 1, 2).status.name,
        "batch": [job.task_name for job in spin.schedule_batch(batch)],
        "unknown": error_name(lambda: spin.schedule("nope")),
        "bad_arguments": error_name(lambda: spin.schedule(add, 1)),
        "unattached": error_name(lambda: Tasks().schedule("add", 1, 2)),
        "schedule_at": spin.schedule_at(
            add, datetime.now(timezone.utc) + timedelta(hours=1), 1, 2
        ).status.name,
    }


def constants():
    names = ["DEFAULT_QUEUE", "DEFAULT_NAMESPACE", "DEFAULT_MAX_RETRIES", "DEFAULT_WORKER_NUMBER"]
    return {name: getattr(const, name) for name in names}


def several_engines(url, prefix):
    """One registry, a producer and a worker engine in one namespace and a second namespace
    beside them: each job runs once, in the namespace it was scheduled to."""
    finished = []
    lock = threading.Lock()

    def on_finished(namespace, job=None, **kwargs):
        with lock:
            finished.append([namespace, job.task_args[0]])

    signals.job_finished.connect(on_finished)
    first = prefix + "-first"
    producer = Engine(RedisBroker(Redis.from_url(url)), namespace=first)
    other = Engine(RedisBroker(Redis.from_url(url)), namespace=prefix + "-other")
    worker = Engine(RedisBroker(Redis.from_url(url)), namespace=first)
    producer.attach_tasks(tasks)
    tasks.schedule(record, "from-producer")
    other.attach_tasks(tasks)
    tasks.schedule(record, "from-other")
    worker.attach_tasks(tasks)
    tasks.schedule(record, "from-worker")
    worker.start_workers(number=2, stop_when_queue_empty=True)
    first_ran = sorted(RAN)
    other.start_workers(number=1, block=False)
    other.stop_workers(_join_arbiter=True)  # stops at once or after its job: both fine
    signals.job_finished.disconnect(on_finished)
    return {
        "first_namespace_ran": first_ran,
        "finished_in_first": sorted(label for namespace, label in finished if namespace == first),
    }


def main():
    url, prefix = sys.argv[1], sys.argv[2]
    outcome = {
        "registry": registry(),
        "engine": engine_calls(),
        "const": constants(),
        "several_engines": several_engines(url, prefix),
    }
    print(json.dumps(outcome, sort_keys=True))


if __name__ == "__main__":
    main()
