"""Helpers shared by the conformance tests."""

from __future__ import annotations

from spinach.brokers.base import Broker, WorkerInfo
from spinach.job import Job

THRESHOLD = 30.0  #: dead-worker threshold of these tests, seconds


def ids(jobs: list[Job]) -> list[str]:
    return [job.id for job in jobs]


def register(*brokers: Broker) -> None:
    """Register each broker's worker process, consuming queue ``q`` with 4 threads."""
    for broker in brokers:
        broker.register_worker(WorkerInfo(id=broker.worker_id, queues=["q"], threads=4))
