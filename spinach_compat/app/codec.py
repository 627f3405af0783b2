"""Task arguments through kombu's serializer registry, as Celery's messages carry them.

JSON (the default) stays on the fast path: kombu's JSON encoder carries datetimes, dates,
times, UUIDs and Decimals with type markers, tuples become lists, and the native job keeps
the marked form (plain JSON) in its ``task_args``/``task_kwargs``.

Any other serializer (``pickle``, ``msgpack``, ``yaml``) or a compression (``zlib``,
``gzip``, ``bzip2``, ...) makes ``[args, kwargs]`` an encoded *body* carried in the job's
meta as ``{"data": <base64>, "content_type", "content_encoding", "compression"}``: the
native payload stays JSON. The worker decodes a body only when its content type is in the
app's ``accept_content``; otherwise kombu's ``ContentDisallowed`` is raised before any byte
of it is deserialized (nothing is unpickled without opt-in).
"""

from __future__ import annotations

import base64
import functools
import json
from collections.abc import Iterable
from typing import Any

from kombu import compression as kombu_compression
from kombu.exceptions import ContentDisallowed, DecodeError, EncodeError
from kombu.serialization import dumps, loads, prepare_accept_content, registry
from kombu.utils import json as kombu_json

from ..exceptions import UnsupportedFeature

#: The key of an encoded body in a native job's meta.
BODY = "body"

#: Names and content type of JSON, the serializer of the fast path.
JSON_NAMES = frozenset({"json", "application/json"})

#: Accepted when ``accept_content`` is None: JSON only (Celery would accept anything;
#: the facade never deserializes an unsafe format without an explicit opt-in).
DEFAULT_ACCEPT = ("json",)

#: Types JSON carries as they are: arguments made only of these skip the round trip.
_JSON_SCALARS = frozenset({str, int, float, bool, type(None)})

#: Serializers refused with a way out rather than left to fail at the first message.
REFUSED_SERIALIZERS = {
    "auth": "message signing (app.setup_security(), the 'auth' serializer) is not supported: "
    "use TLS to the broker (rediss://) and Redis ACLs to restrict who may publish",
}


def is_json(serializer: str | None) -> bool:
    """Whether ``serializer`` (a name or content type; None: the default) is JSON."""
    return serializer is None or serializer in JSON_NAMES


def check_serializer(serializer: Any, where: str) -> None:
    """Refuse a serializer kombu has not registered, or one the facade does not support."""
    if serializer is None or serializer in JSON_NAMES:
        return
    name = registry.type_to_name.get(serializer, serializer)
    if name in REFUSED_SERIALIZERS:
        raise UnsupportedFeature(f"{where}={serializer!r}: {REFUSED_SERIALIZERS[name]}")
    if name not in registry.name_to_type:
        raise UnsupportedFeature(
            f"{where}={serializer!r}: no such serializer is installed in kombu's registry "
            f"(installed: {sorted(registry.name_to_type)})"
        )


def check_compression(compression: Any, where: str) -> None:
    """Refuse a compression kombu does not know."""
    if compression is None:
        return
    try:
        kombu_compression.get_encoder(compression)
    except KeyError:
        raise UnsupportedFeature(
            f"{where}={compression!r}: no such compression is installed in kombu "
            f"(installed: {sorted(kombu_compression.encoders())})"
        ) from None


def encode(
    args: tuple | list,
    kwargs: dict,
    serializer: str | None = None,
    compression: str | None = None,
) -> tuple[list, dict, dict | None]:
    """``(task_args, task_kwargs, body)`` of a native job: plain JSON arguments and no body
    (JSON, uncompressed), else no arguments and the encoded body. ``EncodeError`` when the
    serializer cannot carry an argument, as Celery's ``apply_async``."""
    if is_json(serializer) and not compression:
        plain_args, plain_kwargs = _encode_json(args, kwargs)
        return plain_args, plain_kwargs, None
    return [], {}, encode_body([list(args), dict(kwargs)], serializer or "json", compression)


def _encode_json(args: tuple | list, kwargs: dict) -> tuple[list, dict]:
    """Arguments as plain JSON values (type markers kept as dicts)."""
    args = list(args)
    if _is_plain_json(args) and _is_plain_json(kwargs):  # the common case, kept cheap
        return args, dict(kwargs)
    try:
        plain = json.loads(kombu_json.dumps([args, kwargs]))
    except (TypeError, ValueError) as exc:  # as kombu's dumps: EncodeError
        raise EncodeError(exc) from exc
    return plain[0], plain[1]


def _is_plain_json(value: Any) -> bool:
    """Whether JSON carries ``value`` unchanged: scalars, lists and str-keyed dicts."""
    kind = type(value)
    if kind in _JSON_SCALARS:
        return True
    if kind is list:
        return all(_is_plain_json(item) for item in value)
    if kind is dict:
        return all(type(key) is str and _is_plain_json(item) for key, item in value.items())
    return False


def encode_body(value: Any, serializer: str, compression: str | None) -> dict:
    """``value`` through kombu's ``dumps`` (and ``compress``), as a JSON-safe dict."""
    content_type, content_encoding, data = dumps(value, serializer=serializer)
    if isinstance(data, str):
        data = data.encode(content_encoding or "utf-8")
    compressed = None
    if compression:
        data, compressed = kombu_compression.compress(data, compression)
    return {
        "data": base64.b64encode(data).decode("ascii"),
        "content_type": content_type,
        "content_encoding": content_encoding,
        "compression": compressed,
    }


def decode(
    args: list | tuple, kwargs: dict, body: dict | None = None, accept: Any = None
) -> tuple[list, dict]:
    """The arguments of a native job: its plain JSON ones, or its body decoded when its
    content type is in ``accept`` (else ``ContentDisallowed``, nothing deserialized)."""
    if body is None:
        values = kombu_json.loads(json.dumps([list(args), kwargs]))
        return values[0], values[1]
    values = decode_body(body, accept)
    if not isinstance(values, (list, tuple)) or len(values) < 2:
        raise DecodeError(f"the body is not [args, kwargs]: {type(values).__name__}")
    return list(values[0]), dict(values[1])


def decode_body(body: dict, accept: Any) -> Any:
    """The value of an encoded body, refused unless its content type is accepted."""
    content_type = body.get("content_type")
    if not content_type:
        raise DecodeError("the encoded body has no content type")
    accepted = accept_set(accept)
    if content_type not in accepted:  # checked before any byte is decompressed or decoded
        raise ContentDisallowed(
            f"Refusing to deserialize content of type {content_type!r}: it is not in "
            f"accept_content {sorted(accepted)}"
        )
    try:
        data = base64.b64decode(body["data"])
    except (KeyError, TypeError, ValueError) as exc:
        raise DecodeError(f"the encoded body is not base64: {exc}") from exc
    if body.get("compression"):
        data = kombu_compression.decompress(data, body["compression"])
    return loads(data, content_type, body.get("content_encoding"), accept=accepted)


def accept_set(accept: Iterable[str] | None) -> frozenset[str]:
    """The content types of an ``accept_content`` setting (None: JSON only)."""
    return _accept_set(tuple(DEFAULT_ACCEPT if accept is None else accept))


@functools.lru_cache(maxsize=64)
def _accept_set(accept: tuple[str, ...]) -> frozenset[str]:
    return frozenset(prepare_accept_content(accept))


def roundtrip(args: Any, kwargs: Any, serializer: str | None = None) -> tuple[list, dict]:
    """What a task receives for these arguments once through ``serializer`` (eager runs)."""
    args, kwargs = list(args or ()), dict(kwargs or {})
    if is_json(serializer):
        try:
            values = kombu_json.loads(kombu_json.dumps([args, kwargs]))
        except (TypeError, ValueError) as exc:
            raise EncodeError(exc) from exc
        return values[0], values[1]
    content_type, content_encoding, data = dumps([args, kwargs], serializer=serializer)
    values = loads(data, content_type, content_encoding, accept=None, force=True)
    return list(values[0]), dict(values[1])


def format_of(body: dict | None) -> tuple[str | None, str | None]:
    """``(serializer, compression)`` of an encoded body (None: plain JSON arguments)."""
    if body is None:
        return None, None
    content_type = body.get("content_type") or "application/json"
    serializer = registry.type_to_name.get(content_type, content_type)
    return (None if is_json(serializer) else serializer), body.get("compression") or None
