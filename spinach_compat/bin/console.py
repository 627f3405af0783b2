"""``shell``: an interactive Python with the app at hand, as Celery's ``celery shell``.

Its names: ``app`` and ``celery`` (the app), ``Task``, ``chain``, ``chord``, ``group``,
``signature``, ``subtask``, and each of the app's tasks by its function name (not with
``-T/--without-tasks``). Celery's ``chunks``, ``xmap`` and ``xstarmap`` are left out: the
facade refuses them (see ``spinach_compat.surface``). IPython runs when installed (or with
``-I/--ipython``), bpython with ``-B/--bpython``, the plain Python console with
``--python`` (or when neither is installed). ``--eventlet`` and ``--gevent`` are refused.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING, Any

from .celery import EXIT_FAILURE, EXIT_OK, UsageError

if TYPE_CHECKING:
    from ..app.base import Celery


def add_parsers(commands: Any, common: argparse.ArgumentParser) -> None:
    """Add ``shell`` to the sub-commands."""
    shell = commands.add_parser("shell", parents=[common], help="an interactive Python")
    add = shell.add_argument
    add("-I", "--ipython", action="store_true", help="IPython")
    add("-B", "--bpython", action="store_true", help="bpython")
    add("--python", action="store_true", help="the plain Python console")
    add("-T", "--without-tasks", action="store_true", help="no task in the names")
    add("--eventlet", action="store_true", help=argparse.SUPPRESS)
    add("--gevent", action="store_true", help=argparse.SUPPRESS)
    shell.set_defaults(handler=run_shell)


def run_shell(app: Celery, args: argparse.Namespace) -> int:
    """``shell``: run a console with ``shell_names(app)`` until its end of input."""
    if args.eventlet or args.gevent:
        raise UsageError(
            "shell option --eventlet/--gevent is not supported by spinach_compat: the "
            "shell runs in plain threads (see migration_guide/features.md#worker-pools)"
        )
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    app.loader.import_default_modules()
    names = shell_names(app, with_tasks=not args.without_tasks)
    if args.python:
        return console(names)
    if args.bpython or args.ipython:
        return _forced(names, "bpython" if args.bpython else "IPython")
    for run in (_ipython, _bpython):
        try:
            return run(names)
        except ImportError:
            continue
    return console(names)


def shell_names(app: Celery, with_tasks: bool = True) -> dict[str, Any]:
    """The names the shell starts with."""
    import spinach_compat as facade

    names: dict[str, Any] = {
        "app": app, "celery": app, "Task": facade.Task, "chain": facade.chain,
        "chord": facade.chord, "group": facade.group, "signature": facade.signature,
        "subtask": facade.subtask,
    }  # fmt: skip
    if with_tasks:
        for name, task in app.tasks.items():
            if not name.startswith("celery."):
                names[getattr(task, "__name__", None) or type(task).__name__] = task
    return names


def console(names: dict[str, Any]) -> int:
    """The plain Python console (with tab completion when readline is there)."""
    import code

    try:
        import readline
        import rlcompleter
    except ImportError:
        pass
    else:
        readline.set_completer(rlcompleter.Completer(names).complete)
        readline.parse_and_bind("tab:complete")
    code.interact(local=names)
    return EXIT_OK


def _forced(names: dict[str, Any], which: str) -> int:
    try:
        return _bpython(names) if which == "bpython" else _ipython(names)
    except ImportError as exc:
        print(f"ERROR: {which} is not installed ({exc})", file=sys.stderr)
        return EXIT_FAILURE


def _ipython(names: dict[str, Any]) -> int:
    from IPython import start_ipython  # type: ignore[import-not-found]

    start_ipython(argv=[], user_ns=names)
    return EXIT_OK


def _bpython(names: dict[str, Any]) -> int:
    import bpython  # type: ignore[import-not-found]

    bpython.embed(names)
    return EXIT_OK
