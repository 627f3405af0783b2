"""Run several command lines of ``celery`` or ``spinach_compat`` in one process (each as
``python -m IMPL ARGS`` would, its exit status and stdout captured): a test comparing many
outputs pays one interpreter start, not one per command line.

``python -m tests.compat.cli_batch IMPL`` reads a JSON list of argument lists on stdin and
prints a JSON list of ``[status, stdout]``.
"""

from __future__ import annotations

import contextlib
import io
import json
import sys
from collections.abc import Callable


def _entry_point(impl: str) -> Callable[[], object]:
    if impl == "celery":
        from celery.__main__ import main as celery_main

        return celery_main
    from spinach_compat.bin.celery import main as facade_main

    return facade_main


def run_one(impl: str, args: list[str]) -> tuple[int, str]:
    """``python -m IMPL *args``, in this process: its exit status and stdout."""
    main, out = _entry_point(impl), io.StringIO()
    sys.argv = [impl, *args]
    status: object = 0
    with contextlib.redirect_stdout(out):
        try:
            status = main()
        except SystemExit as exc:
            status = exc.code
    return (status if isinstance(status, int) else 0 if status is None else 1), out.getvalue()


if __name__ == "__main__":
    commands = json.load(sys.stdin)
    print(json.dumps([run_one(sys.argv[1], args) for args in commands]))
