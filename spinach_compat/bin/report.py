"""``report``: what to paste in a bug report, in the shape of Celery's ``celery report``.

The versions (spinach-queue, the Celery API the facade emulates, kombu, redis-py, Python),
the platform, the loader, the transport and result backend, then the settings the app
changed from the defaults, one ``name: value`` a line. As Celery's ``bugreport``, a setting
whose name says it is secret (``API``, ``TOKEN``, ``KEY``, ``SECRET``, ``PASS``,
``SIGNATURE``, ``DATABASE``, ...) shows ``********``, and the password of a broker or
backend URL is masked.
"""

from __future__ import annotations

import argparse
import platform
import re
from collections.abc import Mapping
from pprint import pformat
from typing import TYPE_CHECKING, Any

from .celery import EXIT_OK

if TYPE_CHECKING:
    from ..app.base import Celery

#: Setting names whose value is never shown (the words Celery's ``bugreport`` hides).
HIDDEN_SETTINGS = re.compile(
    "API|TOKEN|KEY|SECRET|PASS|PROFANITIES_LIST|SIGNATURE|DATABASE|BEAT_DBURI", re.IGNORECASE
)
MASK = "*" * 8
_BROKER_URLS = ("broker_url", "broker_read_url", "broker_write_url")


def add_parsers(commands: Any, common: argparse.ArgumentParser) -> None:
    """Add ``report`` to the sub-commands."""
    report = commands.add_parser("report", parents=[common], help="information for bug reports")
    report.set_defaults(handler=run_report)


def run_report(app: Celery, args: argparse.Namespace) -> int:
    """``report``: print it."""
    app.loader.import_default_modules()
    print(bugreport(app))
    return EXIT_OK


def bugreport(app: Celery) -> str:
    """The versions, platform, transport and masked settings of ``app``."""
    import kombu
    import redis
    from kombu.utils.url import maybe_sanitize_url

    from spinach import __version__ as spinach_version

    from .. import __version__ as api_version

    conf = app.conf
    transport = str(conf.broker_url or "memory://").partition("://")[0]
    return "\n".join([
        f"software -> spinach-queue:{spinach_version} (Celery {api_version} API) "
        f"kombu:{kombu.__version__} py:{platform.python_version()}",
        f"            redis:{redis.__version__}",
        f"platform -> system:{platform.system()} arch:{', '.join(filter(None, platform.architecture()))}",  # noqa: E501
        f"            kernel version:{platform.release()} imp:{platform.python_implementation()}",
        f"loader   -> {type(app.loader).__module__}.{type(app.loader).__qualname__}",
        f"settings -> transport:{transport} "
        f"results:{maybe_sanitize_url(conf.result_backend or 'disabled')}",
        "",
        humanize(changed_settings(app)),
        "",
    ])  # fmt: skip


def changed_settings(app: Celery) -> dict[str, Any]:
    """The settings whose value is not the default, secrets masked."""
    from ..app.defaults import DEFAULTS

    missing = object()
    changed = {
        key: value for key, value in app.conf.items()
        if not key.startswith("_") and DEFAULTS.get(key, missing) != value
    }  # fmt: skip
    return censor(changed)


def censor(settings: Mapping[str, Any]) -> dict[str, Any]:
    """``settings`` with secret values masked (nested mappings too)."""
    return {key: _censor_one(key, value) for key, value in settings.items()}


def _censor_one(key: Any, value: Any) -> Any:
    from kombu.utils.url import maybe_sanitize_url

    if isinstance(value, Mapping):
        return censor(value)
    if not isinstance(key, str):
        return value
    if HIDDEN_SETTINGS.search(key):
        return MASK
    if isinstance(value, str) and (key.lower() in _BROKER_URLS or "backend" in key.lower()):
        return maybe_sanitize_url(value, mask=MASK)
    return value


def humanize(settings: Mapping[str, Any]) -> str:
    """One ``name: value`` a line (a mapping or tuple on the lines after), as Celery."""
    lines = []
    for key, value in settings.items():
        if isinstance(value, dict):
            text = f"\n {pformat(value, 4, 80)[1:]}"
        elif isinstance(value, tuple):
            text = f"\n    {pformat(value, width=80)}"
        else:
            text = pformat(value, width=50)
        lines.append(f"{key}: {text}")
    return "\n".join(lines)
