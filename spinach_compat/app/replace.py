"""``Task.replace``: a running task handing its place to a signature, as Celery's.

The replacing signature takes over what the task was part of: its id (the last task of a
chain, a chord's body: its final value is stored under the replaced task's id), its
callbacks (the rest of a facade chain travels as callbacks) and errbacks, its root id, and
its place in a chord (the descriptor of ``app.chords``: the signature's last task counts
for the chord, not the replaced task). A group is made a chord whose body,
``celery.accumulate``, gives the list of the group's values, as Celery. Then ``on_replace``
sends it (runs it, eagerly) and ends the task with ``Ignore``: nothing of the replaced task
is stored, its callbacks and chord count are the replacement's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .._state import app_of
from ..exceptions import Ignore, ImproperlyConfigured
from . import links

if TYPE_CHECKING:
    from ..canvas import Signature
    from .task import Task


def replace(task: Task, sig: Signature) -> Any:
    """Make ``sig`` take the place of ``task``'s current request; ``task.on_replace(sig)``."""
    from ..canvas import chain, group

    request = task.request
    if "chord" in sig.options or "spinach_chord" in sig.options:
        raise ImproperlyConfigured("A signature replacing a task must not be part of a chord")
    if isinstance(sig, chain) and not sig.tasks:
        raise ImproperlyConfigured("Cannot replace with an empty chain")
    accumulate = app_of(task).tasks["celery.accumulate"]
    if isinstance(sig, group):
        sig = sig | accumulate.s(index=0)
    if isinstance(sig, chain) and isinstance(sig.tasks[-1], group):
        sig.tasks[-1] = sig.tasks[-1] | accumulate.s(index=0)
    for callback in links.as_list(request.callbacks) or ():
        sig.link(callback)
    for errback in links.as_list(request.errbacks) or ():
        sig.link_error(errback)
    sig.freeze(request.id)
    nesting = (request.replaced_task_nesting or 0) + 1
    sig.set(root_id=request.root_id, replaced_task_nesting=nesting)
    for inner in _id_holders(sig):  # each message it sends counts its nesting, as Celery
        inner.set(replaced_task_nesting=nesting)
    if request.chord:
        sig.set(spinach_chord=request.chord)
    return task.on_replace(sig)


def _id_holders(sig: Signature) -> list[Signature]:
    """The signatures within ``sig`` sent as messages of their own: a chain's tasks, a
    chord's body (and theirs, nested)."""
    from ..canvas import chain, chord

    if isinstance(sig, chain):
        return [held for task in sig.tasks for held in [task, *_id_holders(task)]]
    if isinstance(sig, chord):
        return [sig.body, *_id_holders(sig.body)]
    return []


def send_replacement(task: Task, sig: Signature) -> Any:
    """What ``Task.on_replace`` does: run ``sig`` here when eager (its value), else send it
    and end the task with ``Ignore``."""
    if task.request.is_eager:
        return sig.apply().get()
    sig.delay()
    raise Ignore("Replaced by new task")
