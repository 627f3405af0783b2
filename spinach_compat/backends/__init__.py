"""Result backends: where task states and return values are kept, as JSON.

``result_backend`` picks where: ``memory://`` (or Celery's ``cache+memory://``) keeps results
in this process; ``redis://``, ``rediss://``, ``unix://`` keep them in Redis under the
engine's namespace, ``{<namespace>}/result/<task id>``, for ``result_expires``. Either way
the backend is one ``KeyValueBackend`` over a broker's shared state: the app's own broker
when ``result_backend`` names the same storage as ``broker_url`` (the same URL, or memory
for both), else a broker made from the ``result_backend`` URL by the factory of
``broker_url`` (``spinach_compat.app.brokers``), bound to the app's namespace. Without a
result backend (Celery's default) results cannot be read.

django-celery-results' names, ``django-db`` and ``django-cache`` (or the paths of its backend
classes), keep results in its ``TaskResult`` rows or in a Django cache: see ``django_db``
and ``django_cache``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kombu.utils.url import maybe_sanitize_url, url_to_parts

from spinach.brokers.base import Broker

from ..exceptions import ImproperlyConfigured, UnsupportedFeature
from .base import DisabledBackend
from .keyvalue import KeyValueBackend

if TYPE_CHECKING:
    from ..app.base import Celery
    from .base import Backend

__all__ = ["DisabledBackend", "KeyValueBackend", "backend_from_url"]


#: The ``result_backend`` schemes the facade serves, as said in its refusals.
SUPPORTED = (
    "redis://, rediss://, unix://, memory://, cache+memory://, django-db, django-cache, "
    "or None (disabled)"
)

#: django-celery-results' backends: their entry-point names and class paths -> ours.
DJANGO_BACKENDS = {
    **dict.fromkeys(
        ("django-db", "django_celery_results.backends:DatabaseBackend",
         "django_celery_results.backends.DatabaseBackend",
         "django_celery_results.backends.database:DatabaseBackend",
         "django_celery_results.backends.database.DatabaseBackend"),
        "django_db",
    ),
    **dict.fromkeys(
        ("django-cache", "django_celery_results.backends:CacheBackend",
         "django_celery_results.backends.CacheBackend",
         "django_celery_results.backends.cache:CacheBackend",
         "django_celery_results.backends.cache.CacheBackend"),
        "django_cache",
    ),
}  # fmt: skip

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
    if url.startswith(("django-", "django_celery_results")):
        return django_backend(app, url)
    scheme = url_to_parts(url).scheme
    if scheme not in MEMORY_SCHEMES | REDIS_SCHEMES:
        raise UnsupportedFeature(
            f"result_backend={maybe_sanitize_url(url)!r}: the {scheme or url!r} result backend "
            f"is not supported by spinach_compat; use {SUPPORTED} (see migration_guide/)"
        )
    return KeyValueBackend(app, results_broker(app, url, scheme))


def django_backend(app: Celery, name: str) -> Backend:
    """The backend of a django-celery-results name; an unknown one is refused by name."""
    module = DJANGO_BACKENDS.get(name)
    if module == "django_db":
        from .django_db import DatabaseBackend

        return DatabaseBackend(app, name)
    if module == "django_cache":
        from .django_cache import CacheBackend

        return CacheBackend(app, name)
    raise ImproperlyConfigured(
        f"result_backend={name!r} is not a backend of django-celery-results: use 'django-db' "
        "(its TaskResult table) or 'django-cache' (a Django cache), or one of "
        f"{SUPPORTED} (see migration_guide/features.md#django-celery-results)"
    )


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
