"""A Django app whose ``tasks`` module is found by ``autodiscover_tasks``."""
