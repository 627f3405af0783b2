"""The tasks of the example project: a plain one, a bound one that retries, an autoretry one."""

from celery import shared_task
from celery.utils.log import get_task_logger

from .celery import app

logger = get_task_logger(__name__)

#: How many times each flaky call failed so far (a stand-in for a real remote service).
_failures: dict[str, int] = {}


class ServiceUnavailable(Exception):
    """The remote service is busy: worth retrying."""


def call_service(key: str, fail_times: int) -> str:
    """A remote call that fails ``fail_times`` times for ``key``, then answers."""
    seen = _failures.get(key, 0)
    if seen < fail_times:
        _failures[key] = seen + 1
        raise ServiceUnavailable(f"{key}: busy ({seen + 1}/{fail_times})")
    return f"{key}: ok"


@app.task
def add(x: int, y: int) -> int:
    return x + y


@app.task(bind=True, max_retries=5, default_retry_delay=1)
def fetch_report(self, report_id: str, fail_times: int = 0) -> dict:
    """Retries itself explicitly when the service is busy."""
    try:
        body = call_service(f"report-{report_id}", fail_times)
    except ServiceUnavailable as exc:
        logger.info("report %s not ready, retry %d", report_id, self.request.retries + 1)
        raise self.retry(exc=exc, countdown=0.1) from exc
    return {"report": report_id, "body": body, "retries": self.request.retries}


@shared_task(
    bind=True,
    autoretry_for=(ServiceUnavailable,),
    retry_backoff=False,
    retry_kwargs={"max_retries": 3, "countdown": 0.1},
)
def sync_account(self, account: str, fail_times: int = 0) -> str:
    """Retried automatically on ``ServiceUnavailable``."""
    return f"{call_service(f'account-{account}', fail_times)} after {self.request.retries} retries"


@app.task(ignore_result=True)
def heartbeat(source: str) -> None:
    logger.info("heartbeat from %s", source)
