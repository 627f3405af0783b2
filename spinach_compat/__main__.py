"""``python -m spinach_compat``: the ``spinach-compat`` command."""

import sys

from .bin.celery import main

if __name__ == "__main__":
    sys.exit(main())
