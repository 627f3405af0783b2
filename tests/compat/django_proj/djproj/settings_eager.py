"""The test-suite variant: tasks run eagerly, as many Django projects configure their tests."""

from .settings import *  # noqa: F403

CELERY_TASK_ALWAYS_EAGER = True
CELERY_TASK_EAGER_PROPAGATES = True
