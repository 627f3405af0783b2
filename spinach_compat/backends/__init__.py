"""Result backends: where task states and return values are kept, as JSON.

``result_backend`` picks where: ``memory://`` (or Celery's ``cache+memory://``) keeps results
in this process; ``redis://``, ``rediss://``, ``unix://`` keep them in Redis under the
engine's namespace, ``{<namespace>}/result/<task id>``, for ``result_expires``. Either way
the backend is one ``KeyValueBackend`` over a broker's shared state: the app's own broker
when ``result_backend`` names the same storage as ``broker_url`` (the same URL, or memory
for both), else a broker made from the ``result_backend`` URL by the factory of
``broker_url`` (``spinach_compat.app.brokers``), bound to the app's namespace. Without a
result backend (Celery's default) results cannot be read.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kombu.utils.url import maybe_sanitize_url, url_to_parts

from spinach.brokers.base import Broker

from ..exceptions import UnsupportedFeature
from .base import DisabledBackend
from .keyvalue import KeyValueBackend

if TYPE_CHECKING:
    from ..app.base import Celery
    from .base import Backend

__all__ = ["DisabledBackend", "KeyValueBackend", "backend_from_url"]


#: The ``result_backend`` schemes the facade serves, as said in its refusals.
SUPPORTED = "redis://, rediss://, unix://, memory://, cache+memory://, or None (disabled)"

MEMORY_SCHEMES = frozenset({"memory", "cache+memory"})
REDIS_SCHEMES = frozenset({"redis", "rediss", "unix"})


def backend_from_url(app: Celery, url: Any) -> Backend:
    """The result backend of a ``result_backend`` URL (None: results disabled).

    Any other backend raises ``UnsupportedFeature`` naming the setting and its scheme: the
    app raises at its first use of ``app.backend``, a worker before it fetches any job.
    """
    if not url or url == "disabled":
        return DisabledBackend(app)
    if not isinstance(url, str):
        raise UnsupportedFeature(
            f"result_backend={url!r} is not supported by spinach_compat: give a URL, one of "
            f"{SUPPORTED} (see migration_guide/)"
        )
    scheme = url_to_parts(url).scheme
    if scheme not in MEMORY_SCHEMES | REDIS_SCHEMES:
        raise UnsupportedFeature(
            f"result_backend={maybe_sanitize_url(url)!r}: the {scheme or url!r} result backend "
            f"is not supported by spinach_compat; use {SUPPORTED} (see migration_guide/)"
        )
    return KeyValueBackend(app, results_broker(app, url, scheme))


def results_broker(app: Celery, url: str, scheme: str) -> Broker:
    """The broker keeping the results of ``result_backend=url``: the app's own when it
    names the same storage, else one of its own in the app's namespace."""
    from ..app.brokers import broker_from_url

    own = app.conf.broker_url
    own_scheme = url_to_parts(own).scheme if isinstance(own, str) and own else None
    if url == own or (scheme in MEMORY_SCHEMES and own_scheme == "memory"):
        return app.engine.broker
    broker = broker_from_url("memory://" if scheme in MEMORY_SCHEMES else url)
    broker.set_namespace(app.namespace)
    return broker
