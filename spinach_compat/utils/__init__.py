"""Utilities mirroring ``celery.utils`` (whose names Celery keeps for old imports)."""

from __future__ import annotations

from kombu.utils.objects import cached_property
from kombu.utils.uuid import uuid

from ..surface import module_getattr
from .functional import chunks, memoize, noop
from .imports import gen_task_name, import_from_cwd, instantiate
from .imports import qualname as get_full_cls_name
from .imports import symbol_by_name as get_cls_by_name
from .log import LOG_LEVELS
from .nodenames import nodename, nodesplit

gen_unique_id = uuid

__all__ = [
    "LOG_LEVELS",
    "cached_property",
    "chunks",
    "gen_task_name",
    "gen_unique_id",
    "get_cls_by_name",
    "get_full_cls_name",
    "import_from_cwd",
    "instantiate",
    "memoize",
    "nodename",
    "nodesplit",
    "noop",
    "uuid",
]

__getattr__ = module_getattr(__name__)
