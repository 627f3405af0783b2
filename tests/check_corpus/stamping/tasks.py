from uuid import uuid4

from celery import Celery
from celery.canvas import Signature, StampingVisitor

app = Celery("stamping", broker="redis://localhost:6379/0")


class MonitoringIdStampingVisitor(StampingVisitor):
    def on_signature(self, sig: Signature, **headers) -> dict:
        return {"monitoring_id": str(uuid4())}


@app.task
def identity(x):
    return x


def run():
    sig = identity.s(42)
    sig.stamp(visitor=MonitoringIdStampingVisitor())
    return sig.delay()
