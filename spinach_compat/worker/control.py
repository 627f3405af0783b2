"""Remote-control commands a worker node answers (Celery's ``celery.worker.control``).

``Panel`` maps each command name to its handler, called ``handler(state, **arguments)`` by
the node's mailbox thread (``spinach_compat.worker.pidbox``); its return value is the reply
sent back as ``{nodename: reply}``. ``state`` has ``app``, ``hostname`` and ``consumer``: a
``spinach_compat.worker.consumer.NodeConsumer`` of the node (its pool, queues, task
counts and the broker's bookkeeping of its jobs), not Celery's Consumer.

Custom commands register as in Celery::

    @inspect_command()
    def current_load(state):
        return {"ok": len(state.consumer.active_requests())}

    @control_command(args=[("n", int)], signature="[N=1]")
    def bump(state, n=1):
        ...

A handler that raises is answered ``{"error": "<repr of the exception>"}`` and the node
keeps running.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple

from kombu.utils.encoding import safe_repr

if TYPE_CHECKING:
    from .consumer import NodeConsumer

#: Task attributes ``registered`` shows by default, as Celery's worker.
DEFAULT_TASK_INFO_ITEMS = ("exchange", "routing_key", "rate_limit")

Handler = Callable[..., Any]


class CommandInfo(NamedTuple):
    """What the command line knows of a command (Celery's ``controller_info_t``)."""

    alias: str | None
    type: str
    visible: bool
    default_timeout: float
    help: str
    signature: str | None
    args: list[tuple[str, Callable[[str], Any]]] | None
    variadic: str | None


class State:
    """What a handler receives: the node's app, name and consumer."""

    def __init__(self, app: Any, hostname: str, consumer: NodeConsumer):
        self.app = app
        self.hostname = hostname
        self.consumer = consumer


class WorkerShutdown(SystemExit):
    """Raised by ``shutdown`` once the node stops: kombu sends no reply (as Celery's)."""


def ok(value: Any) -> dict[str, Any]:
    """A successful reply."""
    return {"ok": value}


def nok(value: Any) -> dict[str, Any]:
    """An error reply."""
    return {"error": value}


class Panel:
    """Every remote-control command: ``data`` (name -> handler) and ``meta`` (name -> info)."""

    data: dict[str, Handler] = {}
    meta: dict[str, CommandInfo] = {}

    @classmethod
    def register(cls, *args: Any, **kwargs: Any) -> Any:
        """``Panel.register(fun)`` or ``@Panel.register(name=..., type=...)``."""
        if args:
            return cls._register(**kwargs)(*args)
        return cls._register(**kwargs)

    @classmethod
    def _register(
        cls, name: str | None = None, alias: str | None = None, type: str = "control",
        visible: bool = True, default_timeout: float = 1.0, help: str | None = None,
        signature: str | None = None, args: Any = None, variadic: str | None = None,
    ) -> Callable[[Handler], Handler]:  # fmt: skip
        def register(fun: Handler) -> Handler:
            command = name or fun.__name__
            text = help or (fun.__doc__ or "").strip().split("\n")[0]
            cls.data[command] = fun
            cls.meta[command] = CommandInfo(
                alias, type, visible, default_timeout, text, signature, args, variadic
            )
            if alias:
                cls.data[alias] = fun
            return fun

        return register


def control_command(**kwargs: Any) -> Callable[[Handler], Handler]:
    """Register a command changing the worker (``celery control NAME``)."""
    return Panel.register(type="control", **kwargs)


def inspect_command(**kwargs: Any) -> Callable[[Handler], Handler]:
    """Register a command reading the worker (``celery inspect NAME``)."""
    return Panel.register(type="inspect", **kwargs)


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return [value] if isinstance(value, (str, bytes, dict)) else list(value)


def _as_bool(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on", "y")
    return bool(value)


# -- app -------------------------------------------------------------------------------


@inspect_command()
def report(state: State) -> dict[str, Any]:
    """Information about the installation, for bug reports."""
    from ..bin.report import bugreport

    return ok(bugreport(state.app))


@inspect_command(alias="dump_conf", signature="[include_defaults=False]",
                 args=[("with_defaults", _as_bool)])  # fmt: skip
def conf(state: State, with_defaults: bool = False, **kwargs: Any) -> dict[str, Any]:
    """The settings (secrets masked): those changed, or all ``with_defaults``."""
    from ..bin.report import censor, changed_settings

    app = state.app
    table = censor(dict(app.conf.items())) if _as_bool(with_defaults) else changed_settings(app)
    return {key: _jsonable(value) for key, value in table.items()
            if isinstance(key, str) and not key.startswith("__")}  # fmt: skip


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, (list, tuple)):
        return [_jsonable(item) for item in value]
    if isinstance(value, dict):
        return {str(key): _jsonable(item) for key, item in value.items()}
    return safe_repr(value)


@inspect_command()
def clock(state: State, **kwargs: Any) -> dict[str, Any]:
    """The node's logical clock."""
    return {"clock": state.consumer.clock.value}


@inspect_command(visible=False)
def hello(state: State, from_node: str, revoked: Any = None, **kwargs: Any) -> Any:
    """Celery's mingle sync: the revoked ids (shared anyway) and the clock."""
    if from_node == state.hostname:
        return None
    return {"revoked": state.app.control.revoked.ids(), "clock": state.consumer.clock.forward()}


@inspect_command(default_timeout=0.2)
def ping(state: State, **kwargs: Any) -> dict[str, Any]:
    """Ping worker(s)."""
    return ok("pong")


@inspect_command()
def stats(state: State, **kwargs: Any) -> dict[str, Any]:
    """Worker statistics: pid, pool, task totals, broker, uptime, rusage."""
    return state.consumer.stats()


# -- tasks -----------------------------------------------------------------------------


@inspect_command(alias="dump_active")
def active(state: State, safe: bool = False, **kwargs: Any) -> list[dict[str, Any]]:
    """The tasks running on the node; ``safe``: their arguments as ``argsrepr``/``kwargsrepr``."""
    return state.consumer.active_requests(bool(safe))


@inspect_command(alias="dump_reserved")
def reserved(state: State, **kwargs: Any) -> list[dict[str, Any]]:
    """The jobs fetched and held for a free thread (prefetched), not started yet."""
    return state.consumer.reserved_requests()


@inspect_command(alias="dump_schedule")
def scheduled(state: State, **kwargs: Any) -> list[dict[str, Any]]:
    """Tasks due later (countdown, eta, retries) in the node's queues."""
    return state.consumer.scheduled_requests()


@inspect_command(variadic="ids", signature="[id1 [id2 [... [idN]]]]")
def query_task(state: State, ids: Any, **kwargs: Any) -> dict[str, Any]:
    """``{task id: [state, info]}`` of these ids: 'active' or 'scheduled' here."""
    wanted = set(_as_list(ids))
    found = {i["id"]: ["active", i] for i in state.consumer.active_requests() if i["id"] in wanted}
    for info in state.consumer.reserved_requests():
        if info["id"] in wanted:
            found[info["id"]] = ["reserved", info]
    for entry in state.consumer.scheduled_requests():
        request = entry["request"]
        if request["id"] in wanted:
            found[request["id"]] = ["scheduled", request]
    return found


@inspect_command(alias="dump_revoked")
def revoked(state: State, **kwargs: Any) -> list[str]:
    """The revoked task ids (shared by every worker of the broker)."""
    return state.app.control.revoked.ids()


@inspect_command(alias="dump_tasks", variadic="taskinfoitems",
                 signature="[attr1 [attr2 [... [attrN]]]]")  # fmt: skip
def registered(
    state: State, taskinfoitems: Any = None, builtins: bool = False, **kwargs: Any
) -> list[str]:
    """The registered tasks, with these attributes (exchange, routing_key, rate_limit)."""
    tasks = state.app.tasks
    items = [i for i in (_as_list(taskinfoitems) or DEFAULT_TASK_INFO_ITEMS)
             if isinstance(i, str) and not i.startswith("_")]  # fmt: skip
    names = sorted(n for n in tasks if builtins or not n.startswith("celery."))

    def described(name: str) -> str:
        task = tasks[name]
        fields = [(i, getattr(task, i, None)) for i in items]
        shown = " ".join(f"{i}={v}" for i, v in fields if v is not None)
        return f"{name} [{shown}]" if shown else name

    return [described(name) for name in names]


@inspect_command()
def active_queues(state: State, **kwargs: Any) -> list[dict[str, Any]]:
    """The queues the node consumes."""
    return [_queue_dict(name) for name in state.consumer.queues()]


def _queue_dict(name: str) -> dict[str, Any]:
    """A queue as Celery's ``Queue.as_dict(recurse=True)`` shows a default direct one."""
    exchange = {
        "name": name, "type": "direct", "arguments": None, "durable": True, "passive": False,
        "auto_delete": False, "delivery_mode": None, "no_declare": False,
    }  # fmt: skip
    return {
        "name": name, "exchange": exchange, "routing_key": name, "queue_arguments": None,
        "binding_arguments": None, "consumer_arguments": None, "durable": True,
        "exclusive": False, "auto_delete": False, "no_ack": False, "alias": None,
        "bindings": [], "no_declare": None, "expires": None, "message_ttl": None,
        "max_length": None, "max_length_bytes": None, "max_priority": None,
    }  # fmt: skip


# -- debugging (refused) -------------------------------------------------------------------

_NO_MEMORY_DEBUG = (
    "{} is not supported by spinach_compat workers: profile the worker process with a "
    "memory profiler (tracemalloc, memray) instead"
)


@inspect_command(default_timeout=60.0, args=[("type", str), ("num", int), ("max_depth", int)],
                 signature="[object_type=Request] [num=200 [max_depth=10]]")  # fmt: skip
def objgraph(state: State, **kwargs: Any) -> dict[str, Any]:
    """Refused: memory debugging."""
    return nok(_NO_MEMORY_DEBUG.format("objgraph"))


@inspect_command()
def memsample(state: State, **kwargs: Any) -> dict[str, Any]:
    """Refused: memory debugging."""
    return nok(_NO_MEMORY_DEBUG.format("memsample"))


@inspect_command(args=[("samples", int)], signature="[n_samples=10]")
def memdump(state: State, **kwargs: Any) -> dict[str, Any]:
    """Refused: memory debugging."""
    return nok(_NO_MEMORY_DEBUG.format("memdump"))


from . import control_commands  # noqa: E402,F401  (the commands changing the node)
