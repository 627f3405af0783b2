"""Jobs on three queues, the low-priority ones scheduled first."""

from spinach import Engine, MemoryBroker

spin = Engine(MemoryBroker())


@spin.task(name="routine", queue="low")
def routine(n: int) -> int:
    return n


@spin.task(name="urgent", queue="high")
def urgent(n: int) -> int:
    return n


@spin.task(name="elsewhere", queue="other")
def elsewhere() -> None:
    """On a queue the tests' workers do not consume."""


for n in (1, 2):
    spin.schedule(routine, n)
for n in (1, 2):
    spin.schedule(urgent, n)
spin.schedule(elsewhere)
