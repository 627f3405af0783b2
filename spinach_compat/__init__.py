"""A Celery-compatible facade over the native spinach engine.

Replace ``celery`` by ``spinach_compat`` in a codebase's imports: its tasks run as native
spinach jobs (the job id is the Celery task id), with Celery's task API, retries, results,
signals and eager mode. What is not supported yet raises ``UnsupportedFeature`` naming it
(see ``migration_guide/``), never silently does nothing.
"""

from . import states
from ._state import current_app, current_task
from .app import Celery, shared_task
from .app.task import Task
from .canvas import Signature, chain, chord, chunks, group, signature, xmap, xstarmap
from .result import GroupResult
from .shim import install_as_celery

__version__ = "5.7.0"

__all__ = [
    "Celery",
    "GroupResult",
    "Signature",
    "Task",
    "chain",
    "chord",
    "chunks",
    "current_app",
    "current_task",
    "group",
    "install_as_celery",
    "shared_task",
    "signature",
    "states",
    "xmap",
    "xstarmap",
]

# -- the rest of Celery's top-level names (see spinach_compat.surface) ------------------
from collections import namedtuple

from kombu.utils.uuid import uuid

from . import local, surface  # surface also refuses importing Celery's refused modules
from .canvas import maybe_signature, subtask

SERIES = "collider"  #: Celery 5.7's release name, as Celery's banner shows it
version_info_t = namedtuple("version_info_t", ("major", "minor", "micro", "releaselevel", "serial"))
VERSION = version_info = version_info_t(5, 7, 0, "", "")
VERSION_BANNER = f"{__version__} ({SERIES})"
from spinach_compat_cli import maybe_patch_concurrency  # noqa: E402  (-P gevent: see there)

__all__ += ["SERIES", "VERSION", "VERSION_BANNER", "local", "maybe_patch_concurrency",
            "maybe_signature", "subtask", "uuid", "version_info", "version_info_t"]  # fmt: skip
__getattr__ = surface.module_getattr(__name__)
