"""Small applications the CLI tests load, as ``MODULE:ATTR`` from this directory.

Each builds an Engine on a MemoryBroker and queues its jobs at import, so that a
``spinach worker ... --stop-when-queue-empty`` run in a fresh process has work to do.
"""
