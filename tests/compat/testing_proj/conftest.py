"""The project's fixtures: Celery's, tuned the documented way."""

import pytest


@pytest.fixture(scope="session")
def celery_config():
    return {
        "result_expires": 600,
        "task_default_queue": "shop",
        "broker_transport_options": {"polling_interval": 0.05},
    }


@pytest.fixture(scope="session")
def celery_includes():
    return ["shop.tasks"]
