"""The task events' JSON written by templates (``records.JsonWriter``) is, byte for byte,
the JSON ``json.dumps`` writes of the events the usual path makes; and the reprs a no-op
job's events carry are Celery's."""

from __future__ import annotations

import json
from typing import Any

import pytest
from celery.utils.saferepr import saferepr as celerys_saferepr

from spinach_compat.events import records
from spinach_compat.events.dispatcher import EventDispatcher
from spinach_compat.utils.saferepr import saferepr

NODE = "json@t\u00e9sthost"

#: Texts JSON escapes: unicode (outside the BMP too), quotes, backslashes, control
#: characters, the line separators JavaScript minds.
TEXTS = [
    "plain", "caf\u00e9 \u4e2d\u6587 \U0001f600", "quote \" and ' and \\ backslash",
    "\x00\x01\x1f\x7f\t\n\r\b\f", "\u2028\u2029", "",
]  # fmt: skip
#: Results of every shape, shown by their reprs (the job's thread makes them).
RESULTS = [None, 2**70, -(2**64), 1.5e300, {"a": [1, (2, "x'y\\z")], "\u00e9": {"n": None}}]


def _dumped(dispatcher: EventDispatcher, entries: list[Any]) -> str:
    """The usual path's events of ``entries``, as ``json.dumps`` writes a list of them."""
    clock = dispatcher.clock.value
    events = [event for entry in entries for event in dispatcher._stamped(entry)]
    dispatcher.clock.value = clock  # the templated run stamps the same clocks
    return json.dumps(events, separators=(",", ":"))


@pytest.mark.parametrize("text", TEXTS)
@pytest.mark.parametrize("result", RESULTS)
def test_the_templated_json_is_json_dumps_text(make_app, text: str, result: Any) -> None:
    """Ids, names, reprs and results with any character, large ints as retries, nested
    results: the same text as ``json.dumps``."""
    dispatcher = EventDispatcher(app=make_app(), hostname=NODE, buffered=True)
    dispatcher._start_thread = lambda: None  # type: ignore[method-assign]
    retries = 2**70 if result == 2**70 else 3
    dispatcher.record(records.received, f"id-{text}", f"proj.{text}", repr((text,)),
                      repr({text: text}), text or None, None, retries, text, None)  # fmt: skip
    dispatcher.record(records.succeeded, f"id-{text}", saferepr(result, 1024), 1e-7)
    entries = list(dispatcher._buffer)
    expected = _dumped(dispatcher, entries)
    body, end = dispatcher._json_run(entries, 0)
    assert body is not None and end == len(entries)
    assert body.text == expected
    assert json.loads(body.text)[2]["result"] == celerys_saferepr(result, 1024)


@pytest.mark.parametrize("value", [None, (), [], {}, (None,), {"k": ()}, [[]], "", 0])
@pytest.mark.parametrize("maxlen", [None, 1, 2, 3, 4, 1024])
def test_the_reprs_of_empty_values_are_celerys(value: Any, maxlen: int | None) -> None:
    """The shortcut for None and empty containers (a no-op job's result and arguments)
    writes Celery's text, cut as Celery cuts it."""
    theirs = celerys_saferepr(value) if maxlen is None else celerys_saferepr(value, maxlen)
    assert saferepr(value, maxlen) == theirs
