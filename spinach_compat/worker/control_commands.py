"""The remote-control commands that change a worker node (registered in ``Panel``).

Revocations stay shared (``app.control``'s store in the broker): a node told to revoke
stores them for every worker, including those started later. What a node changes in itself
(pool size, queues, rate and time limits) acts on its consumer
(``spinach_compat.worker.consumer``): at once in a threads/solo worker; in a prefork pool
the supervisor applies it, replacing the children gracefully when they must learn it.
"""

from __future__ import annotations

from typing import Any

from ..app.ratelimit import parse_rate
from ..app.terminate import TERM_SIGNAME
from .control import State, WorkerShutdown, control_command, nok, ok


def _ids(value: Any) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else [str(one) for one in value]


@control_command(variadic="task_id", signature="[id1 [id2 [... [idN]]]]")
def revoke(
    state: State, task_id: Any, terminate: bool = False, signal: Any = None, **kwargs: Any
) -> dict[str, Any]:
    """Revoke task ids (for every worker); with ``terminate``, stop them where they run."""
    ids = _ids(task_id)
    here = {request["id"] for request in state.consumer.active_requests()}
    state.app.control.store_revocation(ids, terminate=bool(terminate), signal=signal)
    if not terminate:
        return ok(f"tasks {set(ids)} flagged as revoked")
    stopped = [one for one in ids if one in here]
    return ok(f"terminate: {', '.join(stopped) if stopped else 'tasks unknown'}")


@control_command(variadic="task_id", args=[("signal", str)],
                 signature="<signal> [id1 [id2 [... [idN]]]]")  # fmt: skip
def terminate(
    state: State, signal: Any = TERM_SIGNAME, task_id: Any = None, **kwargs: Any
) -> dict[str, Any]:
    """Terminate task ids where they run (with SIGTERM unless ``signal`` says)."""
    return revoke(state, task_id, terminate=True, signal=signal)


@control_command(variadic="headers",
                 signature="[key1=value1 [key2=value2 [... [keyN=valueN]]]]")  # fmt: skip
def revoke_by_stamped_headers(
    state: State, headers: Any, terminate: bool = False, signal: Any = None, **kwargs: Any
) -> dict[str, Any]:
    """Revoke the tasks carrying these stamps (for every worker)."""
    if isinstance(headers, (list, tuple)):
        headers = dict(str(h).split("=", 1) for h in headers)
    state.app.control.store_stamped_revocation(headers, terminate=bool(terminate), signal=signal)
    if not terminate:
        return ok(f"headers {headers} flagged as revoked, but not terminated")
    return ok(f"headers {headers} revoked")


@control_command(args=[("task_name", str), ("rate_limit", str)],
                 signature="<task_name> <rate_limit (e.g., 5/s | 5/m | 5/h)>")  # fmt: skip
def rate_limit(state: State, task_name: str, rate_limit: Any, **kwargs: Any) -> dict[str, Any]:
    """Change a task's rate limit on this node."""
    try:
        parse_rate(rate_limit)
    except ValueError as exc:
        return nok(f"Invalid rate limit string: {exc!r}")
    if task_name not in state.app.tasks:
        return nok("unknown task")
    state.consumer.set_rate_limit(task_name, rate_limit)
    if not rate_limit:
        return ok("rate limit disabled successfully")
    return ok("new rate limit set successfully")


@control_command(args=[("task_name", str), ("soft", float), ("hard", float)],
                 signature="<task_name> <soft_secs> [hard_secs]")  # fmt: skip
def time_limit(
    state: State, task_name: str | None = None, hard: Any = None, soft: Any = None, **kwargs: Any
) -> dict[str, Any]:
    """Change a task's soft and hard time limits on this node."""
    if task_name not in state.app.tasks:
        return nok("unknown task")
    state.consumer.set_time_limits(str(task_name), soft, hard)
    return ok("time limits set successfully")


_PREFORK_EVENTS = (
    "switching task events remotely is not supported by the prefork pool of spinach_compat "
    "(its children send them): start the worker with -E, or use -P threads"
)


_NO_POOL_RESTART = (
    "pool_restart is not supported by spinach_compat workers: restart the worker (a warm "
    "shutdown with SIGTERM, then start it again) to load new code"
)

#: The commands a facade worker answers with an error: why, and what to do instead.
REFUSED = {
    "election": "elections (worker gossip) are not supported by spinach_compat workers",
    "pool_restart": _NO_POOL_RESTART,
}  # fmt: skip


@control_command()
def enable_events(state: State, **kwargs: Any) -> dict[str, Any]:
    """Tell the worker to send task events (as ``-E``)."""
    return _switch_task_events(state, True)


@control_command()
def disable_events(state: State, **kwargs: Any) -> dict[str, Any]:
    """Tell the worker to stop sending task events."""
    return _switch_task_events(state, False)


def _switch_task_events(state: State, enabled: bool) -> dict[str, Any]:
    from ..events.worker import set_task_events

    if getattr(state.consumer, "pool", None) == "prefork":
        return nok(_PREFORK_EVENTS)
    if not set_task_events(enabled):
        return nok("event dispatcher unavailable")
    return ok(f"task events {'enabled' if enabled else 'disabled'}")


@control_command()
def heartbeat(state: State, **kwargs: Any) -> None:
    """Send a worker-heartbeat event at once (no reply, as Celery's)."""
    from ..events.worker import heartbeat_now

    heartbeat_now()


@control_command()
def election(state: State, id: str, topic: str, action: Any = None, **kwargs: Any) -> Any:
    """Refused: no gossip between workers."""
    return nok(REFUSED["election"])


@control_command(args=[("n", int)], signature="[N=1]")
def pool_grow(state: State, n: int = 1, **kwargs: Any) -> dict[str, Any]:
    """Grow the pool by n processes."""
    return state.consumer.grow(int(n))


@control_command(args=[("n", int)], signature="[N=1]")
def pool_shrink(state: State, n: int = 1, **kwargs: Any) -> dict[str, Any]:
    """Shrink the pool by n processes."""
    return state.consumer.shrink(int(n))


@control_command()
def pool_restart(state: State, modules: Any = None, reload: bool = False, **kwargs: Any) -> Any:
    """Refused: restart the worker to load new code."""
    return nok(_NO_POOL_RESTART)


@control_command(args=[("max", int), ("min", int)], signature="[max [min]]")
def autoscale(state: State, max: Any = None, min: Any = None, **kwargs: Any) -> dict[str, Any]:
    """Change the autoscale bounds."""
    return state.consumer.autoscale(max, min)


@control_command()
def shutdown(state: State, msg: str = "Got shutdown from remote", **kwargs: Any) -> Any:
    """Warm shutdown of the node (no reply, as Celery's)."""
    state.consumer.shutdown(msg)
    raise WorkerShutdown(0)


@control_command(args=[("queue", str), ("exchange", str), ("exchange_type", str),
                       ("routing_key", str)],
                 signature="<queue> [exchange [type [routing_key]]]")  # fmt: skip
def add_consumer(state: State, queue: str, exchange: Any = None, exchange_type: Any = None,
                 routing_key: Any = None, **options: Any) -> dict[str, Any]:  # fmt: skip
    """Consume from one more queue."""
    state.consumer.add_queue(str(queue))
    return ok(f"add consumer {queue}")


@control_command(args=[("queue", str)], signature="<queue>")
def cancel_consumer(state: State, queue: str, **kwargs: Any) -> dict[str, Any]:
    """Stop consuming from a queue."""
    state.consumer.cancel_queue(str(queue))
    return ok(f"no longer consuming from {queue}")
