"""Celery's testing helpers (``celery.contrib.testing``) on the facade.

``worker.start_worker`` runs a real facade worker in the test process, ``app.TestApp`` makes
an app with Celery's test configuration (``memory://`` broker, in-process results),
``manager.Manager`` waits for and inspects tasks, ``tasks.ping`` is the task a starting
worker runs to prove it works. ``spinach_compat.contrib.pytest`` builds its fixtures on
them. See migration_guide/features.md#testing.
"""
