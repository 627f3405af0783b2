from celery import shared_task


@shared_task
def legacy(path):
    print "reading", path
    return open(path).read()
