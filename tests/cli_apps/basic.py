"""An Engine named ``spin`` with two jobs that succeed and one that fails."""

from spinach import Engine, MemoryBroker, Tasks

tasks = Tasks()


@tasks.task(name="say")
def say(text: str) -> str:
    """Succeed."""
    return text


@tasks.task(name="explode")
def explode() -> None:
    """Fail, for good: the task has no retries."""
    raise ValueError("kaboom")


spin = Engine(MemoryBroker())
spin.attach_tasks(tasks)
spin.schedule(say, "hello")
spin.schedule(say, "world")
spin.schedule(explode)
