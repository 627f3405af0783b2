"""A small Celery project whose own tests use Celery's testing API."""
