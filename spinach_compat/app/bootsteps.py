"""``app.steps``: Celery's custom bootsteps, readable but refused when added.

Celery's is ``defaultdict(set)``, where projects extend the worker with
``app.steps['worker'].add(MyStep)`` or ``app.steps['consumer'].add(...)``. The facade's
worker runs no bootsteps, so adding one raises ``UnsupportedFeature`` at once (at import,
where the project adds it) rather than leaving the step silently unused.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any, NoReturn

from ..exceptions import UnsupportedFeature


def _refuse(blueprint: str, steps: Any) -> NoReturn:
    raise UnsupportedFeature(
        f"app.steps[{blueprint!r}]: adding bootsteps ({steps!r}) is not supported by "
        "spinach_compat: its worker runs no bootsteps; start what the step starts from the "
        "worker_init or worker_ready signal, and stop it on worker_shutdown "
        "(see migration_guide/)"
    )


class RefusedSteps(set):
    """The (always empty) steps of one blueprint: adding to it raises."""

    def __init__(self, blueprint: str):
        super().__init__()
        self.blueprint = blueprint

    def add(self, step: Any) -> None:
        _refuse(self.blueprint, step)

    def update(self, *steps: Iterable[Any]) -> None:
        _refuse(self.blueprint, [s for group in steps for s in group])

    def __ior__(self, steps: Any) -> RefusedSteps:  # type: ignore[misc]  # |= refuses, | not
        _refuse(self.blueprint, steps)

    def symmetric_difference_update(self, steps: Iterable[Any]) -> None:
        _refuse(self.blueprint, steps)


class Steps(defaultdict):
    """``app.steps``: a ``defaultdict(set)`` whose sets refuse new steps."""

    def __init__(self) -> None:
        super().__init__(set)

    def __missing__(self, blueprint: str) -> RefusedSteps:
        steps = RefusedSteps(blueprint)
        dict.__setitem__(self, blueprint, steps)
        return steps

    def __setitem__(self, blueprint: str, steps: Any) -> None:
        if steps:
            _refuse(blueprint, steps)
        dict.__setitem__(self, blueprint, RefusedSteps(blueprint))

    def setdefault(self, blueprint: str, default: Any = None) -> RefusedSteps:
        if blueprint not in self:
            self[blueprint] = default
        return self[blueprint]

    def update(self, *others: Any, **steps: Any) -> None:
        for blueprint, value in dict(*others, **steps).items():
            self[blueprint] = value
