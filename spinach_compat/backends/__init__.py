"""Result backends: where task states and return values are kept, as JSON.

``result_backend`` picks one: ``memory://`` (or Celery's ``cache+memory://``) keeps results
in this process; ``redis://``, ``rediss://``, ``unix://`` keep them in Redis under the
engine's namespace, ``{<namespace>}/result/<task id>``, for ``result_expires``. Without a
result backend (Celery's default) results cannot be read.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kombu.utils.url import maybe_sanitize_url, url_to_parts

from ..exceptions import UnsupportedFeature
from .base import Backend, DisabledBackend, KeyValueBackend

if TYPE_CHECKING:
    from ..app.base import Celery

__all__ = ["DisabledBackend", "KeyValueBackend", "backend_from_url"]


#: The ``result_backend`` schemes the facade serves, as said in its refusals.
SUPPORTED = "redis://, rediss://, unix://, memory://, cache+memory://, or None (disabled)"


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
    if scheme in ("memory", "cache+memory"):
        from .memory import MemoryBackend

        return MemoryBackend(app)
    if scheme in ("redis", "rediss", "unix"):
        from .redis import RedisBackend

        return RedisBackend(app, url)
    raise UnsupportedFeature(
        f"result_backend={maybe_sanitize_url(url)!r}: the {scheme or url!r} result backend is "
        f"not supported by spinach_compat; use {SUPPORTED} (see migration_guide/)"
    )
