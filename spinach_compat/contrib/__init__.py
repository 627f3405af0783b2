"""Celery's ``celery.contrib`` modules the facade provides."""
