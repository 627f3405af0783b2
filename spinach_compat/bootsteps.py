"""Worker bootsteps, as ``celery.bootsteps``: importable and subclassable, never run.

A bootstep extends Celery's worker or consumer from inside (a consumer of another queue, a
service started with the worker). The facade's worker has no bootstep blueprint, so such a
step could not run: modules defining one import, and their classes subclass these, but
creating a step or a blueprint raises ``UnsupportedFeature`` (as registering one with
``app.steps`` does), rather than ignoring it. The way out: a ``worker_init`` or
``worker_ready`` signal receiver starting a thread, ``worker_shutdown`` stopping it.
"""

from __future__ import annotations

from typing import Any

from .surface import module_getattr, refused_init

__all__ = ["Blueprint", "ConsumerStep", "StartStopStep", "Step"]


class StepType(type):
    """The metaclass of steps: a step's ``name`` defaults to ``module.QualName``."""

    name: str | None = None
    requires: Any = None

    def __new__(mcs, name: str, bases: tuple, attrs: dict[str, Any]) -> StepType:
        module = attrs.get("__module__")
        qualname = f"{module}.{name}" if module else name
        attrs.update(__qualname__=qualname, name=attrs.get("name") or qualname)
        return super().__new__(mcs, name, bases, attrs)

    def __str__(cls) -> str:
        return str(cls.name)

    def __repr__(cls) -> str:
        return f"step:{cls.name}{{{cls.requires!r}}}"


class Step(metaclass=StepType):
    """A bootstep: define ``create``/``include_if`` in a subclass; creating one is refused."""

    #: The step's name (``module.QualName`` if not set).
    name: str | None = None
    #: A short name for logs and graphs.
    label: str | None = None
    #: Whether ``include_if`` decides if the step is included.
    conditional = False
    #: Steps that must start before this one.
    requires: tuple = ()
    #: Reserved for the consumer's last step.
    last = False
    #: The default of ``include_if``.
    enabled = True

    __init__ = refused_init("celery.bootsteps.Step")

    def include_if(self, parent: Any) -> bool:
        return self.enabled

    def create(self, parent: Any) -> Any:
        """Create the step's object (nothing by default)."""

    def info(self, obj: Any) -> Any:
        return None


class StartStopStep(Step):
    """A step started and stopped with the worker: refused, as ``Step``."""

    #: The object ``create`` returned, started and stopped with the step.
    obj: Any = None

    __init__ = refused_init("celery.bootsteps.StartStopStep")


class ConsumerStep(StartStopStep):
    """A step consuming messages with kombu consumers: refused, as ``Step``."""

    requires = ("celery.worker.consumer:Connection",)
    consumers: Any = None

    __init__ = refused_init("celery.bootsteps.ConsumerStep")

    def get_consumers(self, channel: Any) -> Any:
        raise NotImplementedError("missing get_consumers")


class Blueprint:
    """A set of steps started in dependency order: refused, as ``Step``."""

    default_steps: set = set()
    name: str | None = None

    __init__ = refused_init("celery.bootsteps.Blueprint")


__getattr__ = module_getattr(__name__)
