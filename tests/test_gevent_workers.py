"""``spinach.workers.gevent.GeventWorkers``: the native engine's jobs as greenlets.

Each run is a subprocess patched by gevent on its first line, as a native program using the
pool must be. Jobs count themselves, then wait on an event that the last one to start sets:
all of them ending proves they ran at once (one would wait forever otherwise).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("gevent")

ROOT = Path(__file__).resolve().parents[1]

PROGRAM = """
from gevent import monkey; monkey.patch_all()
import threading, time
from spinach import Engine, MemoryBroker
from spinach.workers.gevent import GeventWorkers

JOBS = 50
spin = Engine(MemoryBroker(), namespace="gevent-native")
started, all_in = [], threading.Event()

@spin.task(name="meet")
def meet(n):
    started.append(n)
    if len(started) == JOBS:
        all_in.set()
    if not all_in.wait(30):
        raise TimeoutError(f"only {len(started)} jobs ran at once")
    time.sleep(0.001)  # patched: yields

for n in range(JOBS):
    spin.schedule(meet, n)
spin.start_workers(number=JOBS, workers_class=GeventWorkers, block=True,
                   stop_when_queue_empty=True)
print("ran", sorted(started) == list(range(JOBS)))  # each once: none failed and retried
"""


def test_native_gevent_workers_run_every_job_at_once():
    done = subprocess.run(
        [sys.executable, "-c", PROGRAM], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert "ran True" in done.stdout, done.stdout + done.stderr
    assert "Traceback" not in done.stderr


def test_gevent_workers_refuse_an_unpatched_process():
    from spinach.workers.gevent import GeventWorkers

    with pytest.raises(RuntimeError, match=r"gevent\.monkey\.patch_all\(\)"):
        GeventWorkers(2, "unpatched")


STOP_PROGRAM = """
from gevent import monkey; monkey.patch_all()
from spinach.job import Job
from spinach.workers.gevent import GeventWorkers

ran = []
def job_of(n):
    job = Job("t", "q", 0.0, 0, (n,))
    job.task_func = ran.append
    return job

pool = GeventWorkers(3, "stop-test")
jobs = [job_of(n) for n in range(3)]
for job in jobs:
    pool.submit_job(job)  # spawned; none runs before this greenlet yields
unstarted = pool.stop()
print("unstarted", [j.task_args[0] for j in unstarted], "ran", ran, pool.available_slots)

pool = GeventWorkers(1, "stop-test-2")
pool.submit_job(job_of(7))
pool.out_queue.get()  # yields: the job runs and ends
print("then", pool.stop(), ran)
"""


def test_stop_returns_the_jobs_whose_greenlet_never_ran():
    done = subprocess.run(
        [sys.executable, "-c", STOP_PROGRAM], cwd=ROOT, capture_output=True, text=True,
        timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["unstarted [0, 1, 2] ran [] 3", "then [] [7]"]
