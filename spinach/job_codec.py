"""The job codec: the one list of a job's persistent fields, and how a job travels as JSON.

Every broker stores jobs through ``encode`` and reads them through ``decode``; the Redis
scripts check payloads with the field list rendered by ``lua_declarations`` (prepended to
every script), and build the payloads of periodic jobs from a ``template`` encoded here, so
Lua spells no field. Adding a field is one entry of ``FIELDS`` (and the ``Job`` attribute
holding it): an optional field with a default keeps older payloads decoding.
"""

from __future__ import annotations

import json
import operator
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .exc import InvalidPayloadError, UnserializableArgumentError
from .job import Job

#: Python types of each JSON kind; bool is an int to Python, never a number to JSON.
_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "number": (int, float),
    "integer": (int,),
    "array": (list,),
    "object": (dict,),
}


@dataclass(frozen=True)
class Field:
    """One persistent field of a job."""

    name: str  #: its key in a payload, and the keyword of ``Job()`` taking it
    kind: str  #: its JSON type (a key of ``_TYPES``), checked when it is required
    required: bool = True  #: a payload without it is invalid (else ``default`` is taken)
    default: Any = None  #: the value of an optional field a payload lacks (older payloads)
    attr: str = ""  #: the ``Job`` attribute holding it, when not ``name``
    nonempty: bool = False  #: an empty string is invalid
    load: Callable[[Any], Any] | None = None  #: converts the decoded value for ``Job()``

    @property
    def attribute(self) -> str:
        return self.attr or self.name


#: The persistent fields of a job, in payload order (the order of earlier versions, so
#: the same job encodes to the same bytes: dead letters compare payloads).
FIELDS: tuple[Field, ...] = (
    Field("id", "string", nonempty=True),
    Field("task_name", "string", nonempty=True),
    Field("queue", "string"),
    Field("at", "number", attr="at_timestamp", load=float),
    Field("max_retries", "integer"),
    Field("retries", "integer"),
    Field("max_concurrency", "integer", required=False),
    Field("task_args", "array"),
    Field("task_kwargs", "object"),
    Field("meta", "object", required=False),
)

#: The fields a payload template leaves out, filled in when a job is built from it.
HEAD = ("id", "at")

_NAMES = tuple(f.name for f in FIELDS)
_VALUES = operator.attrgetter(*(f.attribute for f in FIELDS))
_DEFAULTS = tuple((f.name, f.default) for f in FIELDS)
_LOADS = tuple((f.name, f.load) for f in FIELDS if f.load is not None)
_REQUIRED = tuple((f.name, _TYPES[f.kind]) for f in FIELDS if f.required)
_EXACT = tuple((f.name, _TYPES[f.kind]) for f in FIELDS if f.required)
_NONEMPTY = tuple(f.name for f in FIELDS if f.nonempty)
_SEPARATORS = (",", ":")
#: One encoder for every payload: ``json.dumps`` with options builds a new one per call.
COMPACT_JSON = json.JSONEncoder(separators=_SEPARATORS)


def to_dict(job: Job) -> dict[str, Any]:
    """The job's persistent fields, as they travel in a payload."""
    return dict(zip(_NAMES, _VALUES(job), strict=True))


def encode(job: Job) -> str:
    """The job as a JSON payload; an argument JSON cannot carry raises
    ``UnserializableArgumentError`` naming it."""
    try:
        return COMPACT_JSON.encode(dict(zip(_NAMES, _VALUES(job), strict=True)))
    except (TypeError, ValueError) as exc:
        raise _unserializable_argument(job) from exc


def decode(raw: str | bytes) -> Job:
    """Rebuild a job from its payload, or raise ``InvalidPayloadError`` saying why not."""
    try:
        data = json.loads(raw.decode() if isinstance(raw, bytes) else raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidPayloadError(f"payload is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise InvalidPayloadError("payload is not a JSON object")
    return from_dict(data)


def from_dict(data: dict[str, Any]) -> Job:
    """Rebuild a job from its persistent fields, checking each required one."""
    check(data)
    get = data.get
    values = {name: get(name, default) for name, default in _DEFAULTS}
    for name, load in _LOADS:
        values[name] = load(values[name])
    return Job(**values)


def check(data: dict[str, Any]) -> None:
    """Raise ``InvalidPayloadError`` naming the first field missing or of the wrong type."""
    if not _looks_right(data):
        _refuse(data)


def _looks_right(data: dict[str, Any]) -> bool:
    """The fast path of every job fetched: exact types, non-empty names."""
    get = data.get
    for name, types in _EXACT:
        if type(get(name)) not in types:
            return False
    return all(data[name] for name in _NONEMPTY)


def _refuse(data: dict[str, Any]) -> None:
    """Raise ``InvalidPayloadError`` saying what is wrong with ``data``."""
    for name, types in _REQUIRED:
        if name not in data:
            raise InvalidPayloadError(f"payload has no '{name}' field")
        value = data[name]
        if not isinstance(value, types) or isinstance(value, bool):
            raise InvalidPayloadError(f"payload field '{name}' has the wrong type: {value!r}")
    raise InvalidPayloadError("payload has an empty task name or id")


def template(job: Job) -> str:
    """The payload of ``job`` without its ``HEAD`` fields (id, due time): the rest of
    the JSON object after them, which ``job_from_template`` in ``_common.lua`` completes."""
    fields = to_dict(job)
    for name in HEAD:
        del fields[name]
    return encode_dict(fields)[1:]


def encode_dict(fields: dict[str, Any]) -> str:
    """Fields as compact JSON, as payloads are written."""
    return COMPACT_JSON.encode(fields)


def lua_declarations() -> str:
    """The field list as Lua, prepended to the Redis scripts (``decode_job`` and
    ``job_from_template`` of ``_common.lua`` read it)."""
    required = ", ".join(f"{{'{f.name}', '{f.kind}'}}" for f in FIELDS if f.required)
    nonempty = ", ".join(f"'{name}'" for name in _NONEMPTY)
    head = ", ".join(f"'{name}'" for name in HEAD)
    return (
        "-- Generated by spinach.job_codec.lua_declarations from its FIELDS.\n"
        f"local JOB_FIELDS = {{{required}}}\n"
        f"local JOB_NONEMPTY = {{{nonempty}}}\n"
        f"local JOB_HEAD = {{{head}}}\n"
    )


def _unserializable_argument(job: Job) -> UnserializableArgumentError:
    """Name the first argument of ``job`` that JSON cannot carry."""
    named = [(f"argument {i}", v) for i, v in enumerate(job.task_args)]
    named += [(f"argument '{k}'", v) for k, v in job.task_kwargs.items()]
    named += [(f"meta '{k}'", v) for k, v in job.meta.items()]
    for label, value in named:
        try:
            json.dumps(value)
        except (TypeError, ValueError):
            return UnserializableArgumentError(
                f"{label} of task '{job.task_name}' cannot be serialized to JSON: "
                f"{type(value).__name__} value {value!r:.80}"
            )
    return UnserializableArgumentError(f"a job of task '{job.task_name}' cannot be serialized")
