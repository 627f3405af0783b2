"""A graph of objects and their dependencies: what ``AsyncResult.graph`` gives (the
results of a task and of the tasks it sent), as Celery's ``DependencyGraph`` without its
GraphViz formatting."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

__all__ = ["DependencyGraph"]


class DependencyGraph:
    """Objects (``add_arc``) and edges from an object to those it depends on, in the
    order added (``add_edge``)."""

    def __init__(self, it: Iterable[tuple[Any, Iterable]] | None = None, **_: Any) -> None:
        self.adjacent: dict[Any, list] = {}
        if it is not None:
            self.update(it)

    def add_arc(self, obj: Any) -> None:
        """Add ``obj`` (kept if present)."""
        self.adjacent.setdefault(obj, [])

    def add_edge(self, a: Any, b: Any) -> None:
        """``a`` depends on ``b`` (``a`` must be in the graph)."""
        self[a].append(b)

    def connect(self, graph: DependencyGraph) -> None:
        """Add the objects and edges of ``graph``."""
        self.adjacent.update(graph.adjacent)

    def update(self, it: Iterable[tuple[Any, Iterable]]) -> None:
        """Add ``(obj, dependencies)`` pairs."""
        pairs = list(it)
        for obj, _ in pairs:
            self.add_arc(obj)
        for obj, dependencies in pairs:
            for dependency in dependencies:
                self.add_edge(obj, dependency)

    def valency_of(self, obj: Any) -> int:
        """How many edges leave ``obj`` and, in turn, the objects it depends on."""
        if obj not in self.adjacent:
            return 0
        return len(self[obj]) + sum(self.valency_of(node) for node in self[obj])

    def edges(self) -> Iterator[Any]:
        """The objects that depend on others."""
        return (obj for obj, adjacent in self.items() if adjacent)

    def items(self) -> Iterator[tuple[Any, list]]:
        return iter(self.adjacent.items())

    def __iter__(self) -> Iterator[Any]:
        return iter(self.adjacent)

    def __getitem__(self, node: Any) -> list:
        return self.adjacent[node]

    def __len__(self) -> int:
        return len(self.adjacent)

    def __contains__(self, obj: object) -> bool:
        return obj in self.adjacent

    def __repr__(self) -> str:
        return "\n".join(f"{obj!r}: {adjacent!r}" for obj, adjacent in self.items())
