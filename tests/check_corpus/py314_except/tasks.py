from celery import shared_task


@shared_task(bind=True)
def fetch(self, path):
    try:
        return open(path).read()
    except ValueError, OSError:
        self.not_a_celery_method_xyz()
    try:
        return path.upper()
    except* KeyError, LookupError:  # a trailing comment: with a colon
        return None
