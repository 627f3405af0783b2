"""Defaults shared by the engine, the workers and the brokers."""

#: The version of the package (upstream Spinach code imports it from here).
VERSION = "0.1.0"

#: Queue used when neither the task nor the registry names one.
DEFAULT_QUEUE = "spinach"

#: Namespace used when the engine is not given one.
DEFAULT_NAMESPACE = "spinach"

#: Number of worker threads started by default. More threads overlap more I/O-bound jobs
#: at the cost of memory and of contention on the GIL for CPU-bound ones.
DEFAULT_WORKER_NUMBER = 5

#: Retries of a task that does not say otherwise: 0 makes jobs at-most-once by default.
DEFAULT_MAX_RETRIES = 0

#: ``max_retries`` meaning "as many as the task asks for": the task itself decides when to
#: stop (the Celery facade's ``self.retry`` does). Logs then show no total.
UNLIMITED_RETRIES = 2**31 - 1

#: Base delay of the retry backoff, in seconds: the first retry waits between half of it and
#: all of it. Lower retries sooner, higher spares a struggling dependency.
RETRY_BASE_DELAY = 3.0

#: Cap of the retry backoff, in seconds. Lower bounds how late a retry can be, higher bounds
#: how hard a long outage is hammered.
RETRY_MAX_DELAY = 20 * 60.0

#: How long an idle arbiter waits for a broker notification before polling anyway, in
#: seconds. Notifications make this matter only when one is missed: lower recovers faster
#: from a missed one at the cost of more idle round trips.
IDLE_POLL_INTERVAL = 1.0

#: Seconds between two heartbeats of a worker process. Lower notices dead workers sooner
#: (the threshold must stay several intervals above it) at the cost of broker traffic.
HEARTBEAT_INTERVAL = 2.0

#: Seconds without heartbeat after which a worker process is declared dead and its running
#: jobs recovered. Lower recovers sooner; too low risks running a job twice when a live
#: worker is only slow (a long GC pause, a network partition).
DEAD_WORKER_THRESHOLD = 15.0

#: Seconds between two dead-worker checks by one worker process. Recovery takes at most the
#: threshold plus this interval.
DEAD_WORKER_CHECK_INTERVAL = 2.0
