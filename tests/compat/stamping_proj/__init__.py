"""A project shaped as Celery's ``examples/stamping`` (visitors, tasks stamping their
replacement in ``on_replace``, a workflow revoked by a stamped header), written for these
tests. ``PROJ_IMPL=celery`` builds it on real Celery, else on ``spinach_compat``."""

from .config import app

__all__ = ["app"]
