"""The ``spinach-compat`` console script: gevent's monkey patching first, then the command.

``-P gevent`` (``--pool gevent``, ``--pool=gevent``) runs the worker's jobs as greenlets,
which needs ``gevent.monkey.patch_all()`` before anything else is imported: locks, sockets
and threads made by an unpatched module would block the whole process. So this module,
outside the ``spinach_compat`` package (whose import loads redis, kombu and threading),
looks at the command line, patches when it names gevent, and only then imports the
command (``spinach_compat.bin.celery``), as Celery's ``maybe_patch_concurrency`` does.

``python -m spinach_compat_cli`` does the same; ``python -m spinach_compat`` imports the
package first, so it cannot patch in time and refuses ``-P gevent`` with a message
pointing here.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

#: The exit status when ``-P gevent`` is asked for and gevent is not installed.
EXIT_NO_GEVENT = 1

#: What to install for ``-P gevent``.
GEVENT_EXTRA = "pip install 'spinach-queue[gevent]'"


class GeventMissing(Exception):
    """``-P gevent`` asked for, and gevent cannot be imported."""


def pool_option(argv: Sequence[str]) -> str | None:
    """The value of ``-P``/``--pool`` in ``argv`` (the last one), else None."""
    found = None
    for i, arg in enumerate(argv):
        if arg in ("-P", "--pool") and i + 1 < len(argv):
            found = argv[i + 1]
        elif arg.startswith("--pool="):
            found = arg.partition("=")[2]
        elif arg.startswith("-P") and len(arg) > 2:
            found = arg[2:].lstrip("=")
    return found


def is_patched() -> bool:
    """Whether gevent's monkey patching of ``threading`` is in effect in this process."""
    monkey = sys.modules.get("gevent.monkey")
    return monkey is not None and bool(monkey.is_module_patched("threading"))


def patch_gevent() -> None:
    """``gevent.monkey.patch_all()``, once; ``GeventMissing`` without gevent."""
    if is_patched():
        return
    try:
        from gevent import monkey
    except ImportError as exc:
        raise GeventMissing(
            f"-P gevent needs gevent, which is not installed ({exc}): {GEVENT_EXTRA}"
        ) from None
    monkey.patch_all()


def maybe_patch_concurrency(argv: Sequence[str] | None = None) -> None:
    """Patch with gevent when ``argv`` (default: ``sys.argv``) asks for ``-P gevent``
    (Celery's ``maybe_patch_concurrency``); ``-P eventlet`` is refused later, by the
    worker command."""
    args = sys.argv if argv is None else argv
    if "multi" not in args and pool_option(args) == "gevent":
        patch_gevent()


def main(argv: Sequence[str] | None = None) -> int:
    """Patch if asked, then run the ``spinach-compat`` command; the exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        maybe_patch_concurrency(args)
    except GeventMissing as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return EXIT_NO_GEVENT
    from spinach_compat.bin.celery import main as command

    return command(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
