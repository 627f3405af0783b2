"""What runs in a worker process: ``Engine.start_workers`` builds a ``Worker`` and runs it.

Thread model of a worker process
--------------------------------
- **Worker threads** (``ThreadWorkers``, or one event-loop thread with
  ``AsyncioWorkers``: ``spinach.workers``) only run task functions and advance each job's
  status (succeeded, failed, or waiting for a retry). They never talk to the broker.
- **The arbiter thread** (``arbiter.Arbiter``) talks to the broker for the workers: it
  moves due future jobs to their queues, fetches as many jobs as there are free workers
  (while jobs are short, a few more held for them: ``spinach.workers.prefetch``; with
  every worker busy it then fetches again only once half the held ones started), hands
  them over, heartbeats and recovers the jobs of dead worker processes, each on its
  own cadence. Idle, it sleeps until a broker notification the subscriber does not take
  in itself (below), a job's end while every worker is busy, the next future job or the
  next bookkeeping, whichever comes first (with ``stop_when_queue_empty`` also each
  report: it stops once every job is reported). A report wakes it for nothing else: a
  freed concurrency slot notifies through the broker, and a round it would run then
  would compete with the next job's fetch.
- **The result notifier thread** (``notifier.ResultNotifier``) reports each finished job
  to the broker (finished, failed, or to retry), in order, retrying through broker
  outages so no outcome is lost; while other jobs run, outcomes ending within
  ``report_gather_delay`` share one round trip.
- **The broker subscriber thread** listens to the broker's notifications (a job was
  enqueued). While the arbiter waits idle, it takes the arbiter's turn
  (``Arbiter.on_notification``): it fetches as many jobs as there are free workers and
  hands them over itself, saving a hand-off between threads on an idle worker's way to a
  job; otherwise (the arbiter is in a round or every worker is busy, or more jobs may
  wait) it wakes the arbiter. On Redis, an idle worker's fetch registers it for jobs
  handed over with their wake-up (``spinach.brokers.redis``, "Hand-over"): such a job
  comes in a message on the worker's own channel, and the subscriber's turn dispatches it
  with no fetch; once the registration is spent (``Broker.room_after_handover``), it
  fetches to register the worker again. A
  lock makes their rounds one at a time, and a stop ends the subscriber's turns before it
  gives back the jobs never started (and those handed over, undelivered). A broker without
  remote notifications (``MemoryBroker``: an enqueue wakes its peers' arbiters directly)
  has an idle subscriber thread.
- **The main thread** starts all of the above (``worker.Worker.run``), then waits for
  SIGTERM or SIGINT (or ``stop_workers``) to shut down gracefully: stop fetching, let
  running jobs finish, report them, give back jobs fetched but not started, deregister. A
  stopper thread does that shutdown while the main thread keeps watching the signals (a
  second one exits at once). Signals are only noted by their handler and handled by the
  main thread: see ``spinach.stop_signals``.

So a worker process has at least five threads. Scheduling (client mode) spawns none.

Modules: ``worker`` (the ``Worker``: start, the main thread's wait, the stop),
``arbiter``, ``notifier``, ``broker_calls`` (broker calls retried through outages, the
count of jobs not yet reported) and ``startup`` (waiting for an unreachable broker at
start, as Celery's ``broker_connection_retry_on_startup``).
"""

from .startup import BrokerUnreachable, ConnectionRetry, wait_for_broker
from .worker import EXIT_INTERRUPTED, RunOptions, Tunables, Worker

__all__ = [
    "EXIT_INTERRUPTED",
    "BrokerUnreachable",
    "ConnectionRetry",
    "RunOptions",
    "Tunables",
    "Worker",
    "wait_for_broker",
]
