from celery.utils import chunks


def batches(items):
    return list(chunks(iter(items), 10))
