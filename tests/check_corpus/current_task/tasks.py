from celery import current_app, current_task, shared_task


@shared_task
def progress(total):
    for done in range(total):
        current_task.update_state(state="PROGRESS", meta={"done": done})
    return current_task.request.id


def the_objects():
    return current_app._get_current_object(), current_task._get_current_object()
