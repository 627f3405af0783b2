"""``result_backend='django-cache'``: results in a Django cache, as django-celery-results'
``CacheBackend`` keeps them.

The cache is ``caches[cache_backend]`` (``CELERY_CACHE_BACKEND``, an alias of ``CACHES``),
else Django's default cache. Each task's meta is stored as Celery's key-value backends lay
it out (``status``, ``result``, ``traceback``, ``children``, ``date_done``, ``task_id``,
``group_id``, ``parent_id``; with ``result_extended`` the request's name, arguments, worker,
retries and queue) under ``celery-task-meta-<id>`` for ``result_expires``, never over a
stored SUCCESS; saved groups under ``celery-taskset-meta-<id>``. Values are stored as they
are: the Django cache serializes them itself (its own pickling, as for everything the
project caches). A failure's exception is stored as ``{exc_type, exc_message, exc_module}``
(Celery's clients rebuild it too), never as a pickled exception class.

``get()`` is woken by the broker's notices (``notified``), the cache being the source of
truth. A per-process cache (``LocMemCache``) serves only a worker running in the same
process as its clients (tests): use a cache they share (Redis, Memcached, the database or
file cache).
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from .. import states
from . import django_checks
from .base import pending_meta, request_meta
from .notified import NotifiedBackend, as_facade_exception

if TYPE_CHECKING:
    from ..app.base import Celery
    from ..app.context import Context

TASK_KEY_PREFIX = "celery-task-meta-"
GROUP_KEY_PREFIX = "celery-taskset-meta-"


class CacheBackend(NotifiedBackend):
    """Results in a Django cache, under Celery's keys."""

    def __init__(self, app: Celery, alias: str = "django-cache"):
        super().__init__(app, alias)
        django_checks.require_django(alias)
        self.cache = self._cache()

    def _cache(self) -> Any:
        """The cache of ``cache_backend`` (else the default one), checked usable."""
        from django.conf import settings
        from django.core.cache import DEFAULT_CACHE_ALIAS, caches

        name = self.app.conf.get("cache_backend") or DEFAULT_CACHE_ALIAS
        config = settings.CACHES.get(name)
        if config is None:
            raise django_checks.refuse(
                self.alias, f"cache_backend={name!r} is not an alias of Django's CACHES "
                f"({', '.join(sorted(settings.CACHES))})",
            )  # fmt: skip
        cache = caches[name]
        if hasattr(cache, "_table"):  # the database cache
            from django.db import router

            database = router.db_for_read(cache.cache_model_class)
            django_checks.require_table(self.alias, database, cache._table,
                                        "run `python manage.py createcachetable`")  # fmt: skip
        return cache

    # -- storing ---------------------------------------------------------------------------

    def _store(
        self, task_id: str, result: Any, state: str, traceback: str | None,
        request: Context | None,
    ) -> None:  # fmt: skip
        ready = state in states.READY_STATES
        meta = {
            "status": state, "result": result, "traceback": traceback,
            "children": [child.as_tuple() for child in getattr(request, "children", None) or ()],
            "date_done": datetime.now(timezone.utc).isoformat() if ready else None,
        }  # fmt: skip
        for field, name in (("group_id", "group"), ("parent_id", "parent_id")):
            if getattr(request, name, None):
                meta[field] = getattr(request, name)
        if self.extended:
            meta.update(request_meta(request, True))
        meta["task_id"] = task_id
        if self._stored(task_id).get("status") == states.SUCCESS:
            return  # as Celery: a SUCCESS is never overwritten
        self.cache.set(TASK_KEY_PREFIX + task_id, meta, self.expires)

    def _stored(self, task_id: str) -> dict[str, Any]:
        value = self.cache.get(TASK_KEY_PREFIX + task_id)
        return value if isinstance(value, dict) else {}

    def forget(self, task_id: str) -> None:
        self.cache.delete(TASK_KEY_PREFIX + task_id)

    # -- reading ---------------------------------------------------------------------------

    def get_task_meta(self, task_id: str) -> dict[str, Any]:
        """The stored meta of ``task_id`` (PENDING when none)."""
        meta = self._stored(task_id)
        if not meta:
            return pending_meta(task_id)
        if meta.get("status") in states.EXCEPTION_STATES:
            meta["result"] = as_facade_exception(meta.get("result"))
        return {"children": [], "traceback": None, "date_done": None, **meta}

    def task_result_exists(self, task_id: str) -> bool:
        return bool(self._stored(task_id))

    # -- saved groups ----------------------------------------------------------------------

    def save_group(self, group_id: str, result: Any) -> Any:
        self.cache.set(GROUP_KEY_PREFIX + group_id, {"result": result.as_tuple()}, self.expires)
        return result

    def restore_group(self, group_id: str) -> Any:
        """The ``GroupResult`` saved under ``group_id``, or None."""
        from ..result import result_from_tuple

        value = self.cache.get(GROUP_KEY_PREFIX + group_id)
        if not isinstance(value, dict) or not value.get("result"):
            return None
        return result_from_tuple(value["result"], self.app)

    def delete_group(self, group_id: str) -> None:
        self.cache.delete(GROUP_KEY_PREFIX + group_id)
