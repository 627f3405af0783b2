"""An app whose broker holds payloads no worker can run.

At import, two undecodable payloads are already dead letters (a fetch sets them aside, as
a worker's would); a job of an unknown task and a good job wait in the queue: a worker
run dead-letters the first and runs the second.
"""

from spinach import DEFAULT_QUEUE, Engine, Job, MemoryBroker

broker = MemoryBroker()
spin = Engine(broker)


@spin.task(name="ok")
def ok() -> None:
    """A job that runs fine."""


broker.push_raw(DEFAULT_QUEUE, "not json at all")
broker.push_raw(DEFAULT_QUEUE, '{"id": "no-fields"}')
assert broker.get_jobs_from_queue(DEFAULT_QUEUE, 10) == []  # both become dead letters

UNKNOWN = Job("no.such.task", DEFAULT_QUEUE, 0, 0, ["a long argument " * 4], id="unknown-task")
broker.push_raw(DEFAULT_QUEUE, UNKNOWN.serialize())
spin.schedule(ok)
