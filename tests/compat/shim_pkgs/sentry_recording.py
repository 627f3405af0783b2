"""A Sentry transport keeping the events it is given, instead of sending them."""

from __future__ import annotations

import threading
from typing import Any

from sentry_sdk.transport import Transport

DSN = "https://key@sentry.invalid/1"  #: never reached: the transport below sends nothing


class Recording(Transport):
    events: list[dict[str, Any]] = []
    seen = threading.Event()  #: set at the first event

    def capture_envelope(self, envelope: Any) -> None:
        event = envelope.get_event()
        if event is not None:
            Recording.events.append(event)
            Recording.seen.set()
