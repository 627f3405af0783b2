"""Fixtures of the dashboard tests: its application on a broker, through Starlette's test
client or served by uvicorn in a thread; a browser for the browser tests."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from starlette.testclient import TestClient

from spinach.brokers.base import Broker
from spinach.dashboard import DashboardServer, dashboard_source
from spinach.dashboard.app import Options, create_app
from tests.support.browser import browser, page  # noqa: F401  (fixtures of the browser tests)

ClientFactory = Callable[..., Any]


@pytest.fixture
def make_client() -> Iterator[ClientFactory]:
    """``make_client(broker, results=None, **options)``: a test client of a dashboard; its
    threads end at teardown."""
    with contextlib.ExitStack() as stack:

        def make(broker: Broker, results: Any = None, **options: Any) -> TestClient:
            options.setdefault("namespace", broker.namespace)
            app = create_app(dashboard_source(broker, results), Options(**options))
            return stack.enter_context(TestClient(app, follow_redirects=False))

        yield make


@pytest.fixture
def serve_dashboard() -> Iterator[Callable[..., DashboardServer]]:
    """``serve_dashboard(broker, results=None, **options)``: a dashboard served on a free
    port of 127.0.0.1 (its ``url``), stopped at teardown."""
    with contextlib.ExitStack() as stack:

        def serve(broker: Broker, results: Any = None, **options: Any) -> DashboardServer:
            options.setdefault("namespace", broker.namespace)
            server = DashboardServer(dashboard_source(broker, results), Options(**options))
            return stack.enter_context(server)

        yield serve
