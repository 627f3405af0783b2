"""What the dashboard shows, as JSON-ready dicts: each page's template renders one of
these, and ``/api/...`` returns the same dict as JSON.

Every function reads the broker through its inspection contract (``spinach.brokers.base``)
and the history (``spinach.history``); none changes anything but the dead-letter actions.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from ..brokers.base import Broker, DeadLetter
from ..history import FINISHED_COUNT_MINUTES, HistoryRecord, args_preview
from ..job import Job

#: Jobs per page of a queue, of the scheduled jobs and of the history: more per page, or
#: lighter pages and polls.
PAGE_SIZE = 50

#: Minutes of finished-job counts the overview shows per queue (at most
#: ``FINISHED_COUNT_MINUTES``, what the brokers keep).
RATE_MINUTES = 5

#: History records a search or the periodic tasks' "last run" look through, newest first:
#: finds older jobs, or keeps each request light.
HISTORY_SCAN = 2000

#: Jobs of each queue a look-up by id looks through (a queue is a list: no index by id).
QUEUE_SCAN = 1000

#: Characters of a dead letter's payload shown in the list (the job page shows it whole).
PAYLOAD_PREVIEW = 200

#: States a search can ask for.
STATES = ("queued", "scheduled", "running", "succeeded", "failed", "dead")

#: A facade app's result of a job id: ``{"status", "result", "traceback", ...}`` or None.
ResultLookup = Callable[[str], "dict[str, Any] | None"]


@dataclass
class Source:
    """Where the dashboard reads: a broker, and for facade apps their results."""

    broker: Broker
    address: str  #: where the broker is, password masked
    results: ResultLookup | None = None


def _job(job: Job, **extra: Any) -> dict[str, Any]:
    """A waiting or running job as the pages show it."""
    data = {
        "id": job.id, "task": job.task_name, "queue": job.queue, "at": job.at_timestamp,
        "attempts": job.retries + 1, "max_retries": job.max_retries, "args": args_preview(job),
        "state": job.status.name.lower(),
    }  # fmt: skip
    data.update(extra)
    return data


def _letter(letter: DeadLetter, whole: bool = False) -> dict[str, Any]:
    payload = letter.payload if whole or len(letter.payload) <= PAYLOAD_PREVIEW else (
        letter.payload[: PAYLOAD_PREVIEW - 3] + "..."
    )  # fmt: skip
    return {
        "id": letter.id, "queue": letter.queue, "reason": letter.reason,
        "failed_at": letter.failed_at, "payload": payload, "state": "dead",
    }  # fmt: skip


def _record(record: HistoryRecord) -> dict[str, Any]:
    data = asdict(record)
    data["state"] = record.status
    return data


def _paged(items: list[Any], page: int, total: int | None = None) -> dict[str, Any]:
    return {"page": page, "page_size": PAGE_SIZE, "items": items, "total": total}


# -- pages ---------------------------------------------------------------------------------


def overview(src: Source) -> dict[str, Any]:
    """Per queue: ready, future, running, finished per minute; workers alive."""
    broker = src.broker
    ready = broker.queue_lengths()
    future = broker.scheduled_counts()
    running = _count_by_queue([j for jobs in broker.running_jobs().values() for j in jobs])
    rates = broker.finished_counts(min(RATE_MINUTES, FINISHED_COUNT_MINUTES))
    names = sorted(set(ready) | set(future) | set(running) | set(rates))
    queues = [
        {
            "name": name, "ready": ready.get(name, 0), "future": future.get(name, 0),
            "running": running.get(name, 0),
            "finished_per_minute": rates.get(name, [0] * RATE_MINUTES),
        }
        for name in names
    ]  # fmt: skip
    workers = broker.workers()
    return {
        "now": broker.now(), "queues": queues, "workers_alive": len(workers),
        "threads": sum(w.threads for w in workers),
        "dead_letters": broker.dead_letter_count(),
    }  # fmt: skip


def _count_by_queue(jobs: list[Job]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for job in jobs:
        counts[job.queue] = counts.get(job.queue, 0) + 1
    return counts


def workers(src: Source) -> dict[str, Any]:
    """Each live worker process with its heartbeat age and its running jobs."""
    broker = src.broker
    now = broker.now()
    running = broker.running_jobs()
    since = broker.running_since()
    listed = []
    for info in sorted(broker.workers(), key=lambda w: (w.hostname, w.pid, w.id)):
        jobs = [
            _job(job, run_time=now - since[job.id] if job.id in since else None)
            for job in running.get(info.id, [])
        ]
        listed.append(info.to_dict() | {"heartbeat_age": now - info.last_heartbeat, "jobs": jobs})
    return {"now": now, "workers": listed}


def queues(src: Source) -> dict[str, Any]:
    """The queues with jobs waiting, and those the live workers consume."""
    broker = src.broker
    lengths = broker.queue_lengths()
    consumed = {q for info in broker.workers() for q in info.queues}
    names = sorted(set(lengths) | consumed)
    return {"queues": [{"name": n, "ready": lengths.get(n, 0)} for n in names]}


def queue(src: Source, name: str, page: int) -> dict[str, Any] | None:
    """A page of the jobs waiting in queue ``name``, next first; None for a queue nobody
    knows (no job waits in it and no live worker consumes it)."""
    if name not in {q["name"] for q in queues(src)["queues"]}:
        return None
    jobs = src.broker.queue_jobs(name, page * PAGE_SIZE, PAGE_SIZE)
    total = src.broker.queue_lengths().get(name, 0)
    return {"name": name} | _paged([_job(j) for j in jobs], page, total)


def scheduled(src: Source, page: int) -> dict[str, Any]:
    """A page of the jobs due later, soonest first."""
    jobs, total = src.broker.scheduled_page(page * PAGE_SIZE, PAGE_SIZE)
    return _paged([_job(j) for j in jobs], page, total)


def periodic(src: Source) -> dict[str, Any]:
    """Each periodic task with its next run, and its last run found in the history."""
    last: dict[str, float] = {}
    for record in src.broker.history(0, HISTORY_SCAN):
        last.setdefault(record.task, record.started_at)
    tasks = [
        {"task": name, "next_run": at, "last_run": last.get(name)}
        for at, name in src.broker.inspect_periodic_tasks()
    ]
    return {"tasks": tasks}


def dead_letters(src: Source) -> dict[str, Any]:
    """Every dead letter, oldest first, with its task when its payload names one, its
    payload cut to a preview."""
    return {"dead_letters": [_dead_as_job(letter) for letter in src.broker.list_dead_letters()]}


def history(src: Source, page: int) -> dict[str, Any]:
    """A page of the finished jobs, newest first."""
    records = src.broker.history(page * PAGE_SIZE, PAGE_SIZE)
    return _paged([_record(r) for r in records], page)


# -- one job, and the search -------------------------------------------------------------------


def job(src: Source, job_id: str) -> dict[str, Any] | None:
    """Everything known of job ``job_id``: where it is now (or how it ended), and for a
    facade app its result; None when nothing is known of it."""
    found = _live_job(src.broker, job_id)
    record = src.broker.history_record(job_id)
    if found is None and record is not None:
        found = _record(record)
    result = src.results(job_id) if src.results is not None else None
    if found is None and result is None:
        return None
    data = found or {"id": job_id, "state": "unknown"}
    data["result"] = result
    return data


def _live_job(broker: Broker, job_id: str) -> dict[str, Any] | None:
    """Job ``job_id`` running, queued, scheduled or dead-lettered, else None."""
    since = None
    for jobs in broker.running_jobs().values():
        for running in jobs:
            if running.id == job_id:
                since = broker.running_since().get(job_id)
                return _job(running, started_at=since)
    for name in broker.queue_lengths():
        for queued in broker.queue_jobs(name, 0, QUEUE_SCAN):
            if queued.id == job_id:
                return _job(queued)
    for waiting in broker.scheduled_jobs():
        if waiting.id == job_id:
            return _job(waiting)
    for letter in broker.list_dead_letters():
        if letter.id == job_id:
            return _letter(letter, whole=True)
    return None


def search(src: Source, task: str, state: str) -> dict[str, Any]:
    """Jobs of task ``task`` (any when empty) in ``state`` (any when empty): the live ones,
    then the finished ones among the latest ``HISTORY_SCAN`` records."""
    found = [j for j in _live_jobs(src.broker, state) if not task or j["task"] == task]
    if state in ("", "succeeded", "failed"):
        for record in src.broker.history(0, HISTORY_SCAN):
            if (not task or record.task == task) and (not state or record.status == state):
                found.append(_record(record))
    return {"task": task, "state": state, "items": found[: PAGE_SIZE * 2]}


def _live_jobs(broker: Broker, state: str) -> list[dict[str, Any]]:
    jobs: list[dict[str, Any]] = []
    if state in ("", "running"):
        jobs += [_job(j) for js in broker.running_jobs().values() for j in js]
    if state in ("", "queued"):
        for name in broker.queue_lengths():
            jobs += [_job(j) for j in broker.queue_jobs(name, 0, QUEUE_SCAN)]
    if state in ("", "scheduled"):
        jobs += [_job(j) for j in broker.scheduled_jobs()]
    if state in ("", "dead"):
        jobs += [_dead_as_job(letter) for letter in broker.list_dead_letters()]
    return jobs


def _dead_as_job(letter: DeadLetter) -> dict[str, Any]:
    """A dead letter with its task when its payload names one (else "")."""
    try:
        task = json.loads(letter.payload).get("task_name", "")
    except (ValueError, AttributeError):
        task = ""
    return _letter(letter) | {"task": task if isinstance(task, str) else ""}
