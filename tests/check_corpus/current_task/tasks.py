from celery import current_task, shared_task


@shared_task
def progress(total):
    for done in range(total):
        current_task.update_state(state="PROGRESS", meta={"done": done})
    return current_task.request.id
