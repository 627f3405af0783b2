"""An app with a periodic task in its code, and one left in the broker by an older release."""

from datetime import timedelta

from spinach import Engine, MemoryBroker, Task

broker = MemoryBroker(clock=lambda: 1_700_000_000.0)
spin = Engine(broker)


@spin.task(name="tick", periodicity=timedelta(minutes=5))
def tick() -> None:
    """Declared periodic in this release."""


def _gone() -> None:
    """The code of 'gone' was deleted, its periodic entry stayed in the broker."""


broker.register_periodic_tasks(
    [spin.tasks["tick"], Task(_gone, "gone", "spinach", 0, timedelta(hours=1))]
)
