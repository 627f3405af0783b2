"""Third-party packages that import ``celery`` themselves, and how they fare under the facade.

Such a package keeps importing ``celery`` after the project's own imports are swapped: it
needs the ``celery`` import shim (``spinach_compat.install_as_celery()``), and then works,
is refused with a reason, or has not been tried. ``PACKAGES`` is the one table of them;
the requirements scanner and the Python scanner (imports of these modules, a task
``base=`` from one of them) both read it. Statuses say what is known, nothing more.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .facade import Verdict
from .rules import CHECK, SUPPORTED, UNSUPPORTED

WORKS, REFUSED, UNKNOWN = "works", "refused", "unknown"
SECTION = "README.md#third-party-packages-built-on-celery"


@dataclass(frozen=True)
class Package:
    """A package built on Celery: its status under the shim and the modules it provides."""

    status: str
    note: str
    modules: tuple[str, ...]


_UNTRIED = "not tried under the celery import shim yet: test it before migrating"

#: Distribution name (PEP 503 normalized) -> Package.
PACKAGES: dict[str, Package] = {
    "django-celery-beat": Package(
        WORKS,
        "its DatabaseScheduler runs in spinach-compat beat -S django (with "
        "SPINACH_AS_CELERY=1); admin edits take effect at its sync interval",
        ("django_celery_beat",),
    ),
    "django-celery-results": Package(
        WORKS,
        "result_backend='django-db' writes its TaskResult rows as Celery does (its admin "
        "lists them), 'django-cache' its cache entries; get() is woken by the broker",
        ("django_celery_results",),
    ),
    "sentry-sdk": Package(
        REFUSED,
        "its CeleryIntegration (enabled by itself when celery imports) is refused: use "
        "integrations=[spinach.contrib.sentry.SpinachIntegration()] instead (task failures "
        "captured once, with Celery's celery_task_id tag)",
        ("sentry_sdk.integrations.celery",),
    ),
    "opentelemetry-instrumentation-celery": Package(
        REFUSED,
        "refused: it patches Celery's worker internals; call "
        "spinach.contrib.otel.instrument() instead (spinach-queue[otel]): its traces "
        "continue those of Celery producers instrumented with it",
        ("opentelemetry.instrumentation.celery",),
    ),
    "celery-redbeat": Package(
        WORKS,
        "its RedBeatScheduler runs in spinach-compat beat -S redbeat.RedBeatScheduler (with "
        "SPINACH_AS_CELERY=1); entries added with its API fire",
        ("redbeat",),
    ),
    "flower": Package(
        WORKS,
        "run with real Celery's command on the same broker, it shows the tasks and workers "
        "of workers started with -E, and its inspect views get the workers' replies "
        "(tests/compat/test_events.py)",
        ("flower",),
    ),
    "django-structlog": Package(
        WORKS,
        "its CeleryReceiver works (tests/compat/test_shim.py); its DjangoStructLogInitStep "
        "worker step is refused (app.steps): call CeleryReceiver().connect_worker_signals()",
        ("django_structlog.celery",),
    ),
    "celery-once": Package(UNKNOWN, f"a task base class: {_UNTRIED}", ("celery_once",)),
    "celery-singleton": Package(UNKNOWN, f"a task base class: {_UNTRIED}", ("celery_singleton",)),
    "django-celery-email": Package(UNKNOWN, f"its tasks: {_UNTRIED}", ("djcelery_email",)),
    "celery-progress": Package(UNKNOWN, f"its backend: {_UNTRIED}", ("celery_progress",)),
    "openwisp-utils": Package(UNKNOWN, f"its Celery helpers: {_UNTRIED}", ()),
}


#: Modules whose status differs from their package's: module -> (distribution, Package).
MODULES: dict[str, tuple[str, Package]] = {
    "django_structlog.celery.steps": (
        "django-structlog",
        Package(
            REFUSED,
            "its DjangoStructLogInitStep is a worker bootstep, refused (app.steps): call "
            "CeleryReceiver().connect_worker_signals() instead",
            ("django_structlog.celery.steps",),
        ),
    ),
}


def normalize(name: str) -> str:
    """A distribution name as PEP 503 compares them."""
    return re.sub(r"[-_.]+", "-", name).lower()


def package(name: str) -> tuple[str, Package] | None:
    """The table's entry for distribution ``name``, if any."""
    key = normalize(name)
    return (key, PACKAGES[key]) if key in PACKAGES else None


def package_of_module(module: str) -> tuple[str, Package] | None:
    """The table's entry providing Python module ``module`` (or a parent of it)."""
    for name, found in MODULES.items():
        if module == name or module.startswith(name + "."):
            return found
    for name, entry in PACKAGES.items():
        if any(module == m or module.startswith(m + ".") for m in entry.modules):
            return name, entry
    return None


def verdict(name: str, entry: Package) -> Verdict:
    """A package's status under the celery import shim, as a checker verdict."""
    status = {WORKS: SUPPORTED, REFUSED: UNSUPPORTED}.get(entry.status, CHECK)
    return Verdict(status, f"{name} under the celery import shim: {entry.note}", SECTION)
