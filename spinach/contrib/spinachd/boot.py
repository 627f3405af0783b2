"""The engine of the Django project for the ``spinach`` command: ``...boot:spin``.

``manage.py spinach`` runs ``spinach worker spinach.contrib.spinachd.boot:spin``; the
worker processes of ``--processes`` import this module, which sets Django up first (from
``DJANGO_SETTINGS_MODULE``, inherited from ``manage.py``).
"""

import django

django.setup()

from .apps import spin  # noqa: E402 - needs Django set up

__all__ = ["spin"]
