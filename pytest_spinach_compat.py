"""The package's ``pytest11`` entry point: enables nothing unless the project asks.

Installing ``spinach-queue`` must not put fixtures into every test suite of the
environment (Celery's rule: its fixtures are enabled with ``-p celery.contrib.pytest``).
This module only declares the ``spinach_compat_fixtures`` ini option; set to true (in
``pytest.ini``, ``pyproject.toml``'s ``[tool.pytest.ini_options]``, or ``-o
spinach_compat_fixtures=true``), it loads ``spinach_compat.contrib.pytest``. The other ways
of enabling it (``-p``, ``pytest_plugins``, ``PYTEST_PLUGINS``) need no entry point.
It is a top-level module so that loading it imports nothing of the facade.
"""

from __future__ import annotations

import pytest

#: The ini option enabling the fixtures.
OPTION = "spinach_compat_fixtures"

#: The plugin it loads.
PLUGIN = "spinach_compat.contrib.pytest"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini(
        OPTION, type="bool", default=False,
        help=f"enable Celery's pytest fixtures on spinach_compat (the plugin {PLUGIN})",
    )  # fmt: skip


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    """Load the fixtures when the ini option asks for them (once, whichever way)."""
    if config.getini(OPTION):
        config.pluginmanager.import_plugin(PLUGIN)
