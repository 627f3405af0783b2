"""Task arguments through JSON, as Celery's default serializer carries them.

kombu's JSON encoder carries datetimes, dates, times, UUIDs and Decimals with type markers;
tuples become lists. Native job payloads keep the marked form (plain JSON), and the worker
decodes it back before calling the task.
"""

from __future__ import annotations

import json
from typing import Any

from kombu.utils import json as kombu_json

#: Types JSON carries as they are: arguments made only of these skip the round trip.
_JSON_SCALARS = frozenset({str, int, float, bool, type(None)})


def encode(args: tuple | list, kwargs: dict) -> tuple[list, dict]:
    """Arguments as plain JSON values (type markers kept as dicts)."""
    args = list(args)
    if _is_plain_json(args) and _is_plain_json(kwargs):  # the common case, kept cheap
        return args, dict(kwargs)
    plain = json.loads(kombu_json.dumps([args, kwargs]))
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


def decode(args: list | tuple, kwargs: dict) -> tuple[list, dict]:
    """Arguments back from ``encode``: markers turned into their Python values."""
    values = kombu_json.loads(json.dumps([list(args), kwargs]))
    return values[0], values[1]


def roundtrip(args: Any, kwargs: Any) -> tuple[list, dict]:
    """What a task receives for these arguments once through the JSON serializer."""
    values = kombu_json.loads(kombu_json.dumps([list(args or ()), dict(kwargs or {})]))
    return values[0], values[1]
