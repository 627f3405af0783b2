"""A Django project keeping its task results with django-celery-results, set up as that
package's documentation says (tests/compat/test_django_results.py).

It runs on real Celery or on the facade through the ``celery`` import shim
(``SPINACH_AS_CELERY=1``, or ``spinach_compat.install_as_celery()`` in ``client``), so the
rows each writes can be compared. The environment says where: ``RESULTS_DB`` (the SQLite
file), ``RESULTS_BROKER_URL`` (Redis) and ``RESULTS_BACKEND`` (``django-db`` by default).
"""
