"""A tiny Django project wired to spinach_compat the way Celery's Django layout does."""
