"""``python -m spinach``: the ``spinach`` command (see ``spinach.cli``)."""

from .cli import main

if __name__ == "__main__":
    raise SystemExit(main())
