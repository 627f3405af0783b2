"""Celery's contrib modules the facade has (see ``spinach_compat.surface.REFUSED``)."""
