"""The dashboard's command-line options, declared without importing its dependencies (the
``spinach`` command builds its parser whether the ``dashboard`` extra is installed or not)."""

from __future__ import annotations

import argparse

#: Where the dashboard listens by default: loopback only, so that nothing but this machine
#: reaches it unless asked (``--host 0.0.0.0``, then with ``--basic-auth``).
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 9181


def add_options(parser: argparse.ArgumentParser) -> None:
    """The dashboard's own options (the application and broker options are the command's)."""
    parser.add_argument(
        "--host", default=DEFAULT_HOST, help=f"address to bind (default: {DEFAULT_HOST})"
    )
    parser.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help=f"port (default: {DEFAULT_PORT})"
    )
    parser.add_argument(
        "--allow-actions", action="store_true",
        help="allow retrying and purging dead letters (default: read-only, such requests get 403)",
    )  # fmt: skip
    parser.add_argument(
        "--basic-auth", metavar="USER:PASSWORD", type=_credentials,
        help="require HTTP basic authentication with this user and password",
    )  # fmt: skip


def _credentials(text: str) -> tuple[str, str]:
    user, sep, password = text.partition(":")
    if not sep or not user or not password:
        raise argparse.ArgumentTypeError("expected USER:PASSWORD, both non-empty")
    return user, password
