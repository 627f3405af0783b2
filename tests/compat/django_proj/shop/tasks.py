"""Tasks of the shop app, declared with ``shared_task`` as reusable Django apps do."""

from spinach_compat import shared_task


@shared_task
def total(prices: list[int]) -> int:
    return sum(prices)


@shared_task(bind=True)
def where(self) -> dict:
    """Where the task ran: eagerly or in a worker, and its queue."""
    return {"eager": bool(self.request.is_eager), "queue": self.request.delivery_info and
            self.request.delivery_info.get("routing_key")}  # fmt: skip
