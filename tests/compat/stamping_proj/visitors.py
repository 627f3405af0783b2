"""Stamping visitors: a per-task monitoring id, a fixed stamp, one of every hook."""

import os
from uuid import uuid4

if os.environ.get("PROJ_IMPL") == "celery":
    from celery.canvas import StampingVisitor
else:
    from spinach_compat.canvas import StampingVisitor


class MonitoringId(StampingVisitor):
    def on_signature(self, sig, **headers):
        return {"monitoring_id": uuid4().hex}


class Doomed(StampingVisitor):
    def on_signature(self, sig, **headers):
        return {"fate": "doomed"}


class EveryHook(StampingVisitor):
    def on_signature(self, sig, **headers):
        return {"signature_hook": sig.name}

    def on_callback(self, sig, **headers):
        return {"callback_hook": True}

    def on_errback(self, sig, **headers):
        return {"errback_hook": True}

    def on_chain_start(self, sig, **headers):
        return {"chain_hook": True}

    def on_group_start(self, sig, **headers):
        return {"group_hook": True}

    def on_chord_header_start(self, sig, **headers):
        found = super().on_chord_header_start(sig, **headers)
        return {**found, "header_hook": True}

    def on_chord_body(self, sig, **headers):
        return {"body_hook": True}
