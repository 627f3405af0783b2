"""What an admin does to django-celery-beat's tables, as a command (one per process):

``migrate``; ``add NAME:QUEUE[:one_off] ...`` (every second); ``disable NAME``.
"""

import os
import sys

import spinach_compat

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.compat.beat_proj.settings")
spinach_compat.install_as_celery()

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402
from django_celery_beat.models import IntervalSchedule, PeriodicTask  # noqa: E402


def main(command: str, *args: str) -> None:
    if command == "migrate":
        call_command("migrate", "django_celery_beat", verbosity=0)
    elif command == "add":
        every, _ = IntervalSchedule.objects.get_or_create(every=1, period=IntervalSchedule.SECONDS)
        for spec in args:
            name, queue, *flags = spec.split(":")
            PeriodicTask.objects.create(name=name, task="beatdj.ping", interval=every,
                                        queue=queue, one_off="one_off" in flags)  # fmt: skip
    elif command == "disable":
        task = PeriodicTask.objects.get(name=args[0])
        task.enabled = False
        task.save()
    else:
        raise SystemExit(f"unknown command {command!r}")


if __name__ == "__main__":
    main(*sys.argv[1:])
