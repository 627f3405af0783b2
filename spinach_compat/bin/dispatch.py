"""Sub-commands run before the command line is parsed: ``multi`` and the refused ones.

Their arguments are not ``spinach-compat``'s: ``multi`` passes its options on to the
workers it starts, and a refused command (``events``, ``graph``, ...) explains itself
whatever its options. So they are found by position (the first word after the global
options), as Celery's ``multi`` finds itself in ``sys.argv``.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

#: The global options taking a value (``-A proj``); ``--app=proj`` is one word.
VALUE_OPTIONS = frozenset({"-A", "--app", "-b", "--broker", "--result-backend", "--workdir"})


def command_position(argv: Sequence[str]) -> int | None:
    """The index of the sub-command in ``argv`` (None: no sub-command)."""
    position = 0
    while position < len(argv):
        word = argv[position]
        if word in VALUE_OPTIONS:
            position += 2
        elif word.startswith("-"):
            position += 1
        else:
            return position
    return None


def run_early(argv: Sequence[str]) -> int | None:
    """Run ``multi`` or a refused sub-command; None for the others (parsed as usual)."""
    position = command_position(argv)
    if position is None:
        return None
    name = argv[position]
    if name == "multi":
        from .cluster import main as multi

        return multi([*argv[position + 1 :], *argv[:position]])
    from .refused import REFUSED_COMMANDS

    if name in REFUSED_COMMANDS:
        print(f"Error: `{name}` is not a spinach_compat command: {REFUSED_COMMANDS[name]}",
              file=sys.stderr)  # fmt: skip
        return 2
    return None
