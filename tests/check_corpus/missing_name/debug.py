from celery.contrib.rdb import set_trace


def investigate():
    set_trace()
