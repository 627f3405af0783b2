"""The request of a running task: ``self.request`` in a bound task."""

from __future__ import annotations

from typing import Any

from ..utils.saferepr import ARGS_REPR_MAXSIZE, REPR_MAXLEVELS, saferepr

#: How the default reprs are cut, as by Celery's producers.
_CUT = (ARGS_REPR_MAXSIZE, REPR_MAXLEVELS)


class Context:
    """What a task knows about the current run; fields default as in Celery (``utc``: True
    in a worker's request, None in an eager one)."""

    id: str | None = None
    task: str | None = None
    args: Any = None
    kwargs: Any = None
    retries = 0
    eta: str | None = None
    expires: str | None = None
    is_eager = False
    headers: dict | None = None
    delivery_info: dict | None = None
    reply_to: str | None = None
    correlation_id: str | None = None
    root_id: str | None = None
    parent_id: str | None = None
    origin: str | None = None
    group: str | None = None
    group_index: int | None = None
    chord: dict[str, Any] | None = None
    chain: list[dict[str, Any]] | None = None
    callbacks: list[dict[str, Any]] | None = None
    errbacks: list[dict[str, Any]] | None = None
    timelimit: tuple[float | None, float | None] | None = None
    hostname: str | None = None
    called_directly = True
    ignore_result: bool | None = None
    utc = True
    shadow: str | None = None
    taskset: str | None = None
    replaced_task_nesting = 0
    properties: dict | None = None
    # No argsrepr/kwargsrepr here: as in Celery, only a worker's request has them
    # (``JobContext``); an eager request has no such attribute.
    stamped_headers: list[str] | None = None
    stamps: dict[str, Any] | None = None
    #: Set by ``Task.retry`` while the retry is being sent (``app.retry``).
    pending_retry: Any = None

    def __init__(self, *args: Any, **kwargs: Any):
        self.update(*args, **kwargs)

    def update(self, *args: Any, **kwargs: Any) -> None:
        """Set fields from mappings and keyword arguments."""
        for mapping in (*args, kwargs):
            self.__dict__.update(mapping or {})

    def clear(self) -> None:
        self.__dict__.clear()

    def get(self, key: str, default: Any = None) -> Any:
        return getattr(self, key, default)

    def as_execution_options(self) -> dict[str, Any]:
        """The options that send this request again (used by ``retry``)."""
        return {
            "task_id": self.id,
            "root_id": self.root_id,
            "parent_id": self.parent_id,
            "group_id": self.group,
            "group_index": self.group_index,
            "shadow": self.shadow,
            "chord": self.chord,
            "chain": self.chain,
            "link": self.callbacks,
            "link_error": self.errbacks,
            "expires": self.expires,
            "soft_time_limit": (self.timelimit or (None, None))[1],
            "time_limit": (self.timelimit or (None, None))[0],
            "headers": self.headers,
            "retries": self.retries,
            "reply_to": self.reply_to,
            "replaced_task_nesting": self.replaced_task_nesting,
            "origin": self.origin,
        }

    def __repr__(self) -> str:
        return f"<Context: {vars(self)!r}>"

    @property
    def children(self) -> list:
        """The results of the tasks sent while this request runs (``Task.add_trail``)."""
        children = self.__dict__.get("_children")
        if children is None:
            children = self.__dict__["_children"] = []
        return children


class JobContext(Context):
    """The request of a worker's job: ``argsrepr`` and ``kwargsrepr`` (the reprs of its
    arguments, which task events and some result backends show, cut as Celery's producers
    cut them) are made when first read, from the arguments as they are then: most jobs
    never need them."""

    @property
    def argsrepr(self) -> str:
        value = self.__dict__.get("argsrepr")
        if value is None:
            value = self.__dict__["argsrepr"] = saferepr(tuple(self.args or ()), *_CUT)
        return value

    @argsrepr.setter
    def argsrepr(self, value: str | None) -> None:
        self.__dict__["argsrepr"] = value

    @property
    def kwargsrepr(self) -> str:
        value = self.__dict__.get("kwargsrepr")
        if value is None:
            value = self.__dict__["kwargsrepr"] = saferepr(self.kwargs or {}, *_CUT)
        return value

    @kwargsrepr.setter
    def kwargsrepr(self, value: str | None) -> None:
        self.__dict__["kwargsrepr"] = value
