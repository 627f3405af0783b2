from celery import shared_task


@shared_task
def send_welcome(user_id):
    return user_id


def signup(user_id):
    send_welcome.delay_on_commit(user_id)
