from celery import shared_task

type TaskId = str
type Pair[T] = tuple[T, T]


class Loader[K, R: (int, str)]:
    def load(self, key: K) -> R:
        raise NotImplementedError


def first[T](
    items: list[T],
) -> T:
    return items[0]


@shared_task(bind=True)
def refresh(self, task_id: TaskId):
    self.not_a_celery_method_xyz()
