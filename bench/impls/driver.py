"""The producer side of the benchmark, run by the harness in an implementation's venv.

    python driver.py IMPL ACTION [options]

``IMPL`` names the module ``impl_<IMPL>`` beside this file; ``ACTION`` is one of
``enqueue-single``, ``enqueue-batch``, ``enqueue-pool`` (workload 9), ``latency``,
``timing``, ``roundtrip`` (each prints one JSON object on stdout) or ``worker`` (runs the
worker of an implementation that has no worker command of its own). Needs
``BENCH_REDIS_URL``. Stdlib and redis-py only, besides the implementation itself.
"""

from __future__ import annotations

import argparse
import importlib
import json
import time
from collections.abc import Callable
from types import ModuleType
from typing import Any

import _jobs

#: Seconds the first job gets to start: the worker may still be importing its app.
WARM_UP_TIMEOUT = 120.0

#: Jobs sent (and awaited) one by one before measuring latencies, so that connections and
#: code paths are warm on both sides.
WARM_UP_JOBS = 3

#: Seconds one awaited job gets before the driver gives up.
JOB_TIMEOUT = 30.0


class NotSupported(Exception):
    """The implementation has no API for this workload."""


def enqueue_single(impl: ModuleType, args: argparse.Namespace) -> dict[str, Any]:
    """Enqueue ``--count`` no-op jobs one call each; the seconds it took."""
    started = time.perf_counter()
    for _ in range(args.count):
        impl.enqueue_one()
    return {"seconds": time.perf_counter() - started, "count": args.count}


def enqueue_batch(impl: ModuleType, args: argparse.Namespace) -> dict[str, Any]:
    """Enqueue ``--count`` no-op jobs in batches of ``--batch-size``; the seconds it took."""
    batch = getattr(impl, "enqueue_batch", None)
    if batch is None:
        raise NotSupported("no batch or group API")
    started = time.perf_counter()
    left = args.count
    while left > 0:
        size = min(left, args.batch_size)
        _call_or_unsupported(batch, size)
        left -= size
    return {"seconds": time.perf_counter() - started, "count": args.count}


def enqueue_pool(impl: ModuleType, args: argparse.Namespace) -> dict[str, Any]:
    """Enqueue ``--count`` jobs of workload 9 of ``--kind`` (cpu or io), untimed."""
    left = args.count
    while left > 0:
        size = min(left, args.batch_size)
        impl.enqueue_kind(args.kind, size)
        left -= size
    return {"count": args.count}


def _call_or_unsupported(func: Callable, *args: Any) -> Any:
    """Call ``func``; an error saying the feature is unsupported becomes ``NotSupported``."""
    try:
        return func(*args)
    except Exception as exc:
        if type(exc).__name__ in ("UnsupportedFeature", "NotImplementedError"):
            raise NotSupported(f"{type(exc).__name__}: {exc}") from exc
        raise


def _next_stamp(client: Any, timeout: float) -> tuple[float, float]:
    """The ``(start, sent)`` times of the next latency job to start."""
    reply = client.blpop([_jobs.STARTS_KEY], timeout=timeout)
    if reply is None:
        raise TimeoutError(f"no job started within {timeout}s")
    started, sent = reply[1].split()
    return float(started), float(sent)


def warm_up(impl: ModuleType, client: Any) -> None:
    """Send jobs one by one until the worker runs them (it may still be starting)."""
    client.delete(_jobs.STARTS_KEY)
    for n in range(WARM_UP_JOBS):
        impl.send_stamp(time.time())
        _next_stamp(client, WARM_UP_TIMEOUT if n == 0 else JOB_TIMEOUT)


def latency(impl: ModuleType, args: argparse.Namespace) -> dict[str, Any]:
    """Send ``--count`` jobs one at a time to an idle worker; each start minus send time."""
    client = _jobs.client()
    warm_up(impl, client)
    samples = []
    for _ in range(args.count):
        sent = time.time()
        impl.send_stamp(sent)
        started, _ = _next_stamp(client, JOB_TIMEOUT)
        samples.append(started - sent)
    return {"latencies": samples}


def timing(impl: ModuleType, args: argparse.Namespace) -> dict[str, Any]:
    """Schedule ``--count`` jobs ``--ahead`` seconds ahead, ``--spacing`` apart; lateness."""
    client = _jobs.client()
    warm_up(impl, client)
    first_due = time.time() + args.ahead
    for n in range(args.count):
        impl.schedule_stamp(first_due + n * args.spacing)
    wait = args.ahead + args.count * args.spacing + JOB_TIMEOUT
    lateness = []
    for _ in range(args.count):
        started, due = _next_stamp(client, wait)
        lateness.append(started - due)
    return {"lateness": lateness}


def roundtrip(impl: ModuleType, args: argparse.Namespace) -> dict[str, Any]:
    """``--count`` times ``delay(...).get()`` in a row; the seconds of each."""
    call = getattr(impl, "roundtrip", None)
    if call is None:
        raise NotSupported("no result backend")
    call(-1, WARM_UP_TIMEOUT)  # the worker may still be starting
    samples = []
    for n in range(args.count):
        started = time.perf_counter()
        if call(n, JOB_TIMEOUT) != n:
            raise RuntimeError("the round trip returned another value")
        samples.append(time.perf_counter() - started)
    return {"seconds": samples}


def worker(impl: ModuleType, args: argparse.Namespace) -> dict[str, Any]:
    """Run the implementation's worker until a signal stops it."""
    impl.run_worker(args.threads)
    return {}


ACTIONS: dict[str, Callable[[ModuleType, argparse.Namespace], dict[str, Any]]] = {
    "enqueue-single": enqueue_single,
    "enqueue-batch": enqueue_batch,
    "enqueue-pool": enqueue_pool,
    "latency": latency,
    "timing": timing,
    "roundtrip": roundtrip,
    "worker": worker,
}


def main() -> None:
    """Parse the command line, run the action, print its JSON result."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("impl")
    parser.add_argument("action", choices=sorted(ACTIONS))
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--ahead", type=float, default=2.0)
    parser.add_argument("--spacing", type=float, default=0.02)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--kind", choices=["cpu", "io"], default="io")
    args = parser.parse_args()
    impl = importlib.import_module(f"impl_{args.impl}")
    try:
        result = {"supported": True, **ACTIONS[args.action](impl, args)}
    except NotSupported as exc:
        result = {"supported": False, "note": str(exc)}
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
