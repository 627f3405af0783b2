"""Celery protocol 2 messages, as kombu's Redis transport stores them, to native jobs.

An envelope is the JSON kombu LPUSHes onto the queue's list: ``{"body": <base64>,
"content-type", "content-encoding", "headers": {...}, "properties": {...}}``. The body is
``[args, kwargs, {"callbacks", "errbacks", "chain", "chord"}]``. ``convert`` turns one into
the native job of the same task name, with the Celery task id as job id, or says why it
cannot: such a message becomes a dead letter, never an exception.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from kombu.exceptions import KombuError

from spinach.job import Job

from ..app import codec
from ..app.call_options import REPRS

if TYPE_CHECKING:
    from ..app.base import Celery

#: Content types the bridge carries as plain JSON arguments; others (pickle, yaml, msgpack)
#: and compressed bodies stay encoded, for the worker to decode if its app accepts them.
JSON_CONTENT_TYPES = frozenset({"application/json"})

#: The header that routes a job's results to Celery's result keys too (see ``results``).
CELERY_RESULT_HEADER = "spinach_celery_result"

#: Headers the job's fields or meta carry; the others are kept in ``meta["headers"]``.
_HANDLED = frozenset(
    {"lang", "task", "id", "eta", "expires", "retries", "timelimit", "root_id", "parent_id",
     "origin", "ignore_result", "argsrepr", "kwargsrepr", "stamped_headers", "stamps"}
)  # fmt: skip


class InvalidMessage(ValueError):
    """A message the bridge cannot turn into a job; its text is the dead letter's reason."""


@dataclass
class Converted:
    """One message converted: a job to store, or a dead letter (``reason`` set)."""

    id: str
    at: float
    payload: str | bytes  #: the job's JSON, or the message as is when it cannot be read
    reason: str = ""

    @property
    def dead(self) -> bool:
        return bool(self.reason)


def convert(app: Celery, queue: str, raw: bytes, fallback_id: str) -> Converted:
    """The native job of a Celery message, or its dead letter with why. Never raises."""
    try:
        job = to_job(app, queue, raw)
    except InvalidMessage as exc:
        return Converted(_id_of(raw) or fallback_id, 0.0, raw, f"Celery message: {exc}")
    except Exception as exc:  # a bug or an odd message: set aside, never lost
        return Converted(_id_of(raw) or fallback_id, 0.0, raw, f"Celery message: {exc!r}")
    payload = job.serialize()
    if job.task_name not in app.tasks:
        reason = f"unknown task {job.task_name!r}: no task of that name is registered"
        return Converted(job.id, job.at_timestamp, payload, reason)
    return Converted(job.id, job.at_timestamp, payload)


def to_job(app: Celery, queue: str, raw: bytes) -> Job:
    """The native job of a message; ``InvalidMessage`` when it is not one we can run."""
    envelope = _loads(raw, "the envelope is not JSON")
    if not isinstance(envelope, dict):
        raise InvalidMessage("the envelope is not a JSON object")
    headers = envelope.get("headers")
    if not isinstance(headers, dict) or not headers.get("task") or not headers.get("id"):
        raise InvalidMessage("no 'task' and 'id' headers: not a Celery protocol 2 message")
    args, kwargs, encoded = _body(app, envelope, headers.get("compression"))
    at, eta = _eta(headers.get("eta"))
    meta = _meta(headers, eta)
    if encoded is not None:
        meta[codec.BODY] = encoded
    job = app.build_native_job(
        str(headers["task"]), at, args, kwargs, str(headers["id"]), queue, meta
    )
    job.retries = _int(headers.get("retries"), "retries")
    return job


def _body(app: Celery, envelope: dict, compression: Any) -> tuple[list, dict, dict | None]:
    """``(args, kwargs, None)`` of a JSON body; another content type (or a compressed body)
    is kept encoded for the worker, ``([], {}, body)``, which decodes it only if its app
    accepts the type (see ``codec``). Callbacks and canvas refused."""
    content_type = envelope.get("content-type")
    raw = _raw_body(envelope)
    if content_type in JSON_CONTENT_TYPES and not compression:
        args, kwargs = _args_of(_loads(raw, "the body is not JSON"))
        return args, kwargs, None
    if not isinstance(content_type, str) or not content_type:
        raise InvalidMessage("the message has no content type")
    if raw is None:
        raise InvalidMessage("the message has no body")
    encoded = {
        "data": base64.b64encode(raw).decode("ascii"),
        "content_type": content_type,
        "content_encoding": envelope.get("content-encoding"),
        "compression": compression or None,
    }
    if content_type in codec.accept_set(app.conf.accept_content):  # opted in: check it now
        try:
            _args_of(codec.decode_body(encoded, app.conf.accept_content))
        except (KombuError, ValueError, TypeError) as exc:
            raise InvalidMessage(f"the {content_type} body cannot be decoded: {exc}") from None
    return [], {}, encoded  # not accepted: the worker refuses it unread, as Celery's


def _raw_body(envelope: dict) -> bytes | None:
    """The body's bytes: base64-decoded when the transport encoded it so."""
    body = envelope.get("body")
    encoding = (envelope.get("properties") or {}).get("body_encoding")
    if encoding == "base64":
        try:
            return base64.b64decode(body or "", validate=True)
        except (binascii.Error, TypeError, ValueError) as exc:
            raise InvalidMessage(f"the body is not valid base64: {exc}") from None
    if encoding is not None:
        raise InvalidMessage(f"body encoding {encoding!r} is not supported")
    if body is None or isinstance(body, bytes):
        return body
    if isinstance(body, str):
        return body.encode()
    raise InvalidMessage(f"the body is {type(body).__name__}, not text nor bytes")


def _args_of(decoded: Any) -> tuple[list, dict]:
    """``(args, kwargs)`` of a decoded ``[args, kwargs, embed]``; links refused."""
    if not (isinstance(decoded, (list, tuple)) and len(decoded) == 3):
        raise InvalidMessage("the body is not [args, kwargs, embed]")
    args, kwargs, embed = decoded
    if not isinstance(args, (list, tuple)) or not isinstance(kwargs, dict):
        raise InvalidMessage("the body's args is not a list or its kwargs not an object")
    links = [k for k in ("callbacks", "errbacks", "chain", "chord") if (embed or {}).get(k)]
    if links:
        raise InvalidMessage(f"{', '.join(links)} are not supported by spinach_compat")
    return list(args), kwargs


def _meta(headers: dict, eta: str | None) -> dict:
    """The job's meta as ``publish`` writes it, read back by ``Task.request_from_job``; the
    producer's ``argsrepr``/``kwargsrepr`` kept, shown in place of the arguments."""
    limit = headers.get("timelimit")
    extra = {k: v for k, v in headers.items() if k not in _HANDLED}
    return {
        "eta": eta,
        "expires": _iso(headers.get("expires"), "expires"),
        "headers": {**extra, CELERY_RESULT_HEADER: True},
        "ignore_result": headers.get("ignore_result"),
        "root_id": headers.get("root_id") or headers["id"],
        "parent_id": headers.get("parent_id"),
        "origin": headers.get("origin"),
        "timelimit": list(limit) if isinstance(limit, list) and any(limit) else None,
        **{name: headers[name] for name in REPRS if headers.get(name) is not None},
    }


def _eta(value: Any) -> tuple[datetime, str | None]:
    """When the job is due: the ``eta`` header (naive is UTC), else now."""
    iso = _iso(value, "eta")
    if iso is None:
        return datetime.now(timezone.utc), None
    return datetime.fromisoformat(iso), iso


def _iso(value: Any, name: str) -> str | None:
    """An ISO datetime header, made aware (UTC when naive); None stays None."""
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(str(value))
    except ValueError:
        raise InvalidMessage(f"header {name!r} is not an ISO datetime: {value!r}") from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)).isoformat()


def _int(value: Any, name: str) -> int:
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidMessage(f"header {name!r} is not a count: {value!r}")
    return value


def _loads(data: Any, why: str) -> Any:
    try:
        return json.loads(data)
    except (ValueError, TypeError) as exc:
        raise InvalidMessage(f"{why}: {exc}") from None


def _id_of(raw: bytes) -> str | None:
    """The task id of a message, when it can be read (to name its dead letter)."""
    try:
        task_id = json.loads(raw)["headers"]["id"]
    except Exception:
        return None
    return task_id if isinstance(task_id, str) and task_id else None
