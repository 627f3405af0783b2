"""``python manage.py spinach``: run the project's workers (the ``spinach worker`` command)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from spinach import cli, const

#: The engine the workers run, importable by the worker processes of ``--processes``.
ENGINE = "spinach.contrib.spinachd.boot:spin"


class Command(BaseCommand):
    help = "Run Spinach workers for the tasks of the installed apps."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--threads", type=int, default=const.DEFAULT_WORKER_NUMBER,
                            help="Number of worker threads per process.")  # fmt: skip
        parser.add_argument("--queue", action="append", dest="queues",
                            help="Queue to consume (repeat it for several, in priority "
                            f"order; default {const.DEFAULT_QUEUE}).")  # fmt: skip
        parser.add_argument("--processes", type=int, default=1,
                            help="Number of worker processes, supervised.")  # fmt: skip
        parser.add_argument("--stop-when-queue-empty", action="store_true",
                            help="Stop once the queues are empty and no job runs.")  # fmt: skip

    def handle(self, *args: Any, **options: Any) -> None:
        argv = ["worker", ENGINE, "--threads", str(options["threads"]),
                "--processes", str(options["processes"])]  # fmt: skip
        for queue in options["queues"] or [const.DEFAULT_QUEUE]:
            argv += ["--queue", queue]
        if options["stop_when_queue_empty"]:
            argv.append("--stop-when-queue-empty")
        status = cli.main(argv)
        if status != 0:
            raise CommandError(f"the workers exited with status {status}", returncode=status)
