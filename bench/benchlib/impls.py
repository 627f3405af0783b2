"""The implementations compared: the columns of the table, and how each runs its workers.

Each worker command runs with the implementation's own venv, in ``bench/impls`` (on
``PYTHONPATH``), with ``BENCH_REDIS_URL`` set; per-job logging is turned down to warnings
everywhere, so that no implementation pays for writing 20,000 log lines.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from .venvs import VENVS, Venv

#: Replaced by the URL of the harness's Redis in worker commands.
REDIS_URL_PLACEHOLDER = "{redis_url}"

#: Commands starting ``processes`` worker processes of ``threads`` threads, given the venv.
WorkerCommands = Callable[[Venv, int, int], list[list[str]]]

#: Workload 9: the command of one worker with ``-P pool -c concurrency``, given the venv.
PoolCommand = Callable[[Venv, str, int], list[str]]


@dataclass(frozen=True)
class Impl:
    """One column of the table."""

    name: str  #: what ``--only`` takes
    title: str  #: column header
    venv: Venv
    module: str  #: ``bench/impls/impl_<module>.py``
    workers: WorkerCommands
    exec_processes: int = 1  #: processes of workload 3 (prefork: its -c 2 children)
    one_job_per_process: bool = False  #: runs ``slow_jobs`` in workloads 3, 7 and 8
    roundtrip: bool = False  #: takes part in workload 6 (``delay().get()``)
    pools: PoolCommand | None = None  #: takes part in workload 9 (Celery's pools)
    ours: bool = False
    brokerless: bool = False  #: no broker: only the execution workloads (3, 7, 8)
    cluster: bool = False  #: takes part in workload 10 (a Redis Cluster of three masters)
    #: Partitions of the namespace on the one Redis (``?partitions=N``; 1: one slot).
    partitions: int = 1
    #: Partitions of the namespace on the cluster of workload 10 (1: one slot, one node).
    cluster_partitions: int = 1
    notes: tuple[str, ...] = field(default=())
    by_default: bool = True  #: in a run without ``--only``


def _ours(venv: Venv, threads: int, processes: int) -> list[list[str]]:
    command = [str(venv.python), "-m", "spinach", "worker", "impl_ours:spin"]
    command += ["--threads", str(threads), "--log-level", "warning"]
    return [command + (["--processes", str(processes)] if processes > 1 else [])]


def _ours_metrics(venv: Venv, threads: int, processes: int) -> list[list[str]]:
    """Ours with the Prometheus metrics on (served on a free port, unscraped: a scrape every
    15 s or so costs nothing next to counting each job)."""
    return [[*command, "--metrics-port", "0"] for command in _ours(venv, threads, processes)]


def _facade(venv: Venv, threads: int, processes: int) -> list[list[str]]:
    command = [str(venv.python), "-m", "spinach", "worker", "impl_facade:app.engine"]
    command += ["--queue", "celery", "--threads", str(threads), "--log-level", "warning"]
    return [command + (["--processes", str(processes)] if processes > 1 else [])]


def _facade_pool(venv: Venv, pool: str, concurrency: int) -> list[str]:
    """``spinach-compat -A impl_facade worker -P POOL -c N`` (the console script)."""
    command = [str(venv.path / "bin" / "spinach-compat"), "-A", "impl_facade", "worker"]
    return [*command, "-P", pool, "-c", str(concurrency), "-l", "WARNING"]


def _celery_pool(venv: Venv, pool: str, concurrency: int) -> list[str]:
    """``celery -A impl_celery worker -P POOL -c N``, without the cluster chatter."""
    command = [str(venv.path / "bin" / "celery"), "-A", "impl_celery", "worker"]
    command += ["--loglevel", "WARNING", "--without-gossip", "--without-mingle"]
    return [*command, "--without-heartbeat", "-P", pool, "-c", str(concurrency)]


def _facade_events(venv: Venv, threads: int, processes: int) -> list[list[str]]:
    """The facade's worker sending Celery's events (``-E``), to weigh their cost, with a
    receiver listening as Flower would (``events_listener.py``, started first: the workers
    wait for its subscription), so that every event is encoded and published."""
    commands = _facade(venv, threads, processes)
    workers = [[word.replace("app.engine", "events_engine") for word in c] for c in commands]
    return [[str(venv.python), "events_listener.py"], *workers]


def _facade_events_unheard(venv: Venv, threads: int, processes: int) -> list[list[str]]:
    """The facade's worker sending Celery's events with nobody listening (it pauses its
    task events: see ``spinach_compat.events.dispatcher``)."""
    commands = _facade(venv, threads, processes)
    return [[word.replace("app.engine", "events_unheard_engine") for word in c] for c in commands]


def _bare(venv: Venv, threads: int, processes: int) -> list[list[str]]:
    """The bare-thread ceiling: ``processes`` processes sharing the jobs, no broker."""
    command = [str(venv.python), "bare_threads.py", "--threads", str(threads)]
    return [[*command, "--part", str(n), "--parts", str(processes)] for n in range(processes)]


def _upstream(venv: Venv, threads: int, processes: int) -> list[list[str]]:
    command = [str(venv.python), "driver.py", "upstream", "worker", "--threads", str(threads)]
    return [command] * processes


def _celery(pool: str) -> WorkerCommands:
    def commands(venv: Venv, threads: int, processes: int) -> list[list[str]]:
        base = [str(venv.path / "bin" / "celery"), "-A", "impl_celery", "worker"]
        base += ["--loglevel", "WARNING", "--without-gossip", "--without-mingle"]
        base += ["--without-heartbeat"]
        if pool == "prefork":  # one worker, ``processes`` forked children
            return [[*base, "--pool", "prefork", "--concurrency", str(processes)]]
        return [
            [*base, "--pool", "threads", "--concurrency", str(threads), "-n", f"w{n}@%h"]
            for n in range(1, processes + 1)
        ]

    return commands


def _dramatiq(venv: Venv, threads: int, processes: int) -> list[list[str]]:
    command = [str(venv.path / "bin" / "dramatiq"), "impl_dramatiq"]
    return [[*command, "--processes", str(processes), "--threads", str(threads)]]


def _huey(venv: Venv, threads: int, processes: int) -> list[list[str]]:
    command = [str(venv.path / "bin" / "huey_consumer"), "impl_huey.huey", "--quiet"]
    return [[*command, "--worker-type", "thread", "--workers", str(threads)]] * processes


def _rq(worker_class: str | None) -> WorkerCommands:
    def commands(venv: Venv, threads: int, processes: int) -> list[list[str]]:
        command = [str(venv.path / "bin" / "rq"), "worker", "--url", REDIS_URL_PLACEHOLDER]
        command += ["--logging_level", "WARNING", "--with-scheduler"]
        if worker_class:
            command += ["--worker-class", worker_class]
        return [[*command, "bench"]] * processes

    return commands


IMPLS = [
    Impl("ours", "ours", VENVS["ours"], "ours", _ours, ours=True, cluster=True),
    Impl(
        "ours-part", "ours-part", VENVS["ours"], "ours", _ours, ours=True, cluster=True,
        partitions=4, cluster_partitions=3, by_default=False,
        notes=("ours-part: ours on a partitioned namespace: ?partitions=4 on the one Redis "
               "(against ours' one slot: does spreading the hot keys help?), ?partitions=3 "
               "on the cluster of workload 10 (one partition per node)",),
    ),
    Impl(
        "ours-metrics", "ours+metrics", VENVS["ours"], "ours", _ours_metrics, ours=True,
        notes=("ours+metrics: ours with --metrics-port (Prometheus metrics counted per job)",),
    ),
    Impl(
        "ours-facade", "ours-facade", VENVS["ours"], "facade", _facade, ours=True,
        roundtrip=True, pools=_facade_pool,
        notes=("ours-facade: the Celery facade (spinach_compat) over our engine; workload 9 "
               "runs spinach-compat worker -P prefork / -P gevent",),
    ),
    Impl(
        "ours-facade-events", "facade -E", VENVS["ours"], "facade", _facade_events, ours=True,
        by_default=False,
        notes=("facade -E: the facade's worker sending Celery's events (task and worker "
               "events, as -E) to a receiver subscribed as Flower (bench/impls/"
               "events_listener.py, its own process; its memory counts in the column's), "
               "against ours-facade to weigh their cost",),
    ),
    Impl(
        "ours-facade-events-unheard", "-E, unheard", VENVS["ours"], "facade",
        _facade_events_unheard, ours=True, by_default=False,
        notes=("-E, unheard: facade -E with nobody listening (the worker then pauses its "
               "task events, publishing one probe a second)",),
    ),
    Impl(
        "bare", "bare threads", VENVS["ours"], "bare", _bare, brokerless=True,
        notes=("bare threads: the ceiling of a threaded worker, no broker: each thread calls "
               "the no-op job's own function in a loop (bench/impls/bare_threads.py); its "
               "ratio is the share of it ours reaches",),
    ),
    Impl(
        "spinach", "spinach-0.0.25", VENVS["spinach-upstream"], "upstream", _upstream,
        notes=("spinach-0.0.25: upstream Spinach; no worker command, start_workers() in a "
               "script",),
    ),
    Impl("celery", "celery-thr", VENVS["celery"], "celery", _celery("threads"), roundtrip=True),
    Impl(
        "celery-prefork", "celery-pf", VENVS["celery"], "celery", _celery("prefork"),
        exec_processes=2, one_job_per_process=True, roundtrip=True, pools=_celery_pool,
        notes=("celery-pf: prefork pool; workloads 3-7 use -c 2 (2 child processes, one job "
               "each at a time), workload 8 uses -c 1 and -c 2; workload 9 runs celery "
               "worker -P prefork -c 2 and -P gevent -c 100",),
    ),
    Impl("dramatiq", "dramatiq", VENVS["dramatiq"], "dramatiq", _dramatiq),
    Impl(
        "huey", "huey", VENVS["huey"], "huey", _huey,
        notes=("huey: batches are map() (one enqueue per job); its scheduler ticks once a "
               "second",),
    ),
    Impl(
        "rq", "rq", VENVS["rq"], "rq", _rq(None), one_job_per_process=True,
        notes=("rq, rq-simple: RQ has no threads: one job at a time per worker process "
               "(rq forks a work horse per job; rq-simple runs it in the worker)",),
    ),
    Impl(
        "rq-simple", "rq-simple", VENVS["rq"], "rq", _rq("rq.worker.SimpleWorker"),
        one_job_per_process=True,
    ),
]  # fmt: skip

BY_NAME = {impl.name: impl for impl in IMPLS}
