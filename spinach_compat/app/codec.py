"""Task arguments through JSON, as Celery's default serializer carries them.

kombu's JSON encoder carries datetimes, dates, times, UUIDs and Decimals with type markers;
tuples become lists. Native job payloads keep the marked form (plain JSON), and the worker
decodes it back before calling the task.
"""

from __future__ import annotations

import json
from typing import Any

from kombu.utils import json as kombu_json


def encode(args: tuple | list, kwargs: dict) -> tuple[list, dict]:
    """Arguments as plain JSON values (type markers kept as dicts)."""
    plain = json.loads(kombu_json.dumps([list(args), kwargs]))
    return plain[0], plain[1]


def decode(args: list | tuple, kwargs: dict) -> tuple[list, dict]:
    """Arguments back from ``encode``: markers turned into their Python values."""
    values = kombu_json.loads(json.dumps([list(args), kwargs]))
    return values[0], values[1]


def roundtrip(args: Any, kwargs: Any) -> tuple[list, dict]:
    """What a task receives for these arguments once through the JSON serializer."""
    values = kombu_json.loads(kombu_json.dumps([list(args or ()), dict(kwargs or {})]))
    return values[0], values[1]
