"""A receiver of Celery's events, as Flower is in production: it subscribes as kombu's
receivers do (``PSUBSCRIBE``, here to every channel of the ``celeryev`` exchange, whatever
its prefix) and reads and discards every message, so that a worker sending events encodes
and publishes them all (with nobody listening it would pause its task events).

Run by the ``ours-facade-events`` column beside the worker, in its own process; at SIGTERM
it stores how many messages it read in ``HEARD_KEY`` (the bench's tests check it heard).
"""

from __future__ import annotations

import signal
import sys

import _jobs

#: Messages this listener read, stored at its end.
HEARD_KEY = "bench:events:heard"
#: What it subscribes to: the channels of kombu's fanout exchange ``celeryev`` (its
#: ``/<db>.celeryev/<routing key>`` topics with fanout patterns, ``/<db>.celeryev`` without).
PATTERN = "*celeryev*"


def main() -> None:
    client = _jobs.client()
    heard = 0

    def stop(*_: object) -> None:
        client.set(HEARD_KEY, heard)
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    with client.pubsub(ignore_subscribe_messages=True) as pubsub:
        pubsub.psubscribe(PATTERN)
        for _message in pubsub.listen():
            heard += 1


if __name__ == "__main__":
    main()
