"""Registers a task under a name notes/tasks.py uses already: the project must refuse."""

from spinach import Tasks

tasks = Tasks()


@tasks.task(name="notes:write")
def write(text):
    raise AssertionError("never attached")
