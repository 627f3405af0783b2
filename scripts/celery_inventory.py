"""Celery's public surface, and how much of it ``spinach_compat`` has.

``python scripts/celery_inventory.py`` (with the test venv's Python, where Celery is
installed) writes ``tests/compat/surface/celery_5_7.json``: for each Celery module in
``MODULES`` its public names (its ``__all__``, else the names its source defines), and the
public attributes of the classes in ``CLASSES``. The fixture is committed, so the tests
and the table need no Celery.

``python scripts/celery_inventory.py --table`` rewrites the section of
``migration_guide/features.md`` between the ``SURFACE_BEGIN``/``SURFACE_END`` markers from
the fixture and the facade: per module, how many names the facade has and which it
refuses, with the reasons of ``spinach_compat.surface.REFUSED``. ``--check`` exits 1 when
that section is out of date.
"""

from __future__ import annotations

import argparse
import ast
import importlib
import inspect
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = ROOT / "tests" / "compat" / "surface" / "celery_5_7.json"
GUIDE = ROOT / "migration_guide" / "features.md"
BEGIN, END = "<!-- SURFACE_BEGIN -->", "<!-- SURFACE_END -->"

#: The Celery modules projects import (see /work/shared/reference/celery-usage.md): the
#: more listed, the more names the facade must have or refuse, and the larger the fixture.
MODULES = (
    "celery",
    "celery.app",
    "celery.app.control",
    "celery.app.log",
    "celery.app.task",
    "celery.beat",
    "celery.bin.celery",
    "celery.bootsteps",
    "celery.canvas",
    "celery.concurrency",
    "celery.contrib.abortable",
    "celery.contrib.pytest",
    "celery.contrib.testing.app",
    "celery.contrib.testing.manager",
    "celery.contrib.testing.mocks",
    "celery.contrib.testing.tasks",
    "celery.contrib.testing.worker",
    "celery.exceptions",
    "celery.local",
    "celery.platforms",
    "celery.result",
    "celery.schedules",
    "celery.signals",
    "celery.states",
    "celery.utils",
    "celery.utils.functional",
    "celery.utils.imports",
    "celery.utils.log",
    "celery.utils.nodenames",
    "celery.utils.threads",
    "celery.utils.time",
    "celery.worker",
    "celery.worker.control",
    "celery.worker.request",
)

#: The classes whose attributes projects use, by the module defining them.
CLASSES = (
    "celery.app.base.Celery",
    "celery.app.control.Control",
    "celery.app.control.Inspect",
    "celery.app.task.Task",
    "celery.canvas.Signature",
    "celery.result.AsyncResult",
    "celery.result.GroupResult",
)


# -- the inventory (needs Celery) ---------------------------------------------------------


def module_names(name: str) -> list[str]:
    """The public names of Celery's module ``name``: ``__all__``, else what it defines."""
    module = importlib.import_module(name)
    names = getattr(module, "__all__", None)
    if names is None:
        names = _defined_names(Path(inspect.getfile(module)).read_text())
    return sorted({n for n in names if not n.startswith("_")})


def _defined_names(source: str) -> list[str]:
    """The names a module's top level defines (functions, classes, assignments)."""
    names = []
    for node in ast.parse(source).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.append(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names += [t.id for t in targets if isinstance(t, ast.Name)]
    return names


def class_names(dotted: str) -> list[str]:
    """The public attributes of the Celery class ``dotted``."""
    module, _, cls = dotted.rpartition(".")
    return sorted(n for n in dir(getattr(importlib.import_module(module), cls)) if n[0] != "_")


def inventory() -> dict[str, Any]:
    """The fixture's content, read from the installed Celery."""
    import celery

    return {
        "celery": celery.__version__,
        "modules": {name: module_names(name) for name in MODULES},
        "classes": {name: class_names(name) for name in CLASSES},
    }


# -- the facade's side (needs no Celery) ----------------------------------------------------


IMPLEMENTED, REFUSED, MISSING, STALE = "implemented", "refused", "missing", "stale"


@dataclass(frozen=True)
class Status:
    """How the facade answers one Celery name: ``state`` and, if refused, the reason."""

    name: str
    state: str
    reason: str = ""


def load_fixture() -> dict[str, Any]:
    return json.loads(FIXTURE.read_text())


def facade_module(celery_module: str) -> Any:
    """The facade module of ``celery.x``; raises (ImportError, UnsupportedFeature) if none."""
    return importlib.import_module("spinach_compat" + celery_module[len("celery") :])


def module_status(celery_module: str) -> Status:
    """Whether the facade has the module ``celery_module`` (or refuses it on import)."""
    from spinach_compat.exceptions import UnsupportedFeature
    from spinach_compat.surface import REFUSED as TABLE
    from spinach_compat.surface import refused_module

    try:
        facade_module(celery_module)
    except UnsupportedFeature:
        key = refused_module("spinach_compat" + celery_module[len("celery") :])
        return Status(celery_module, REFUSED if key else MISSING, TABLE.get(key or "", ""))
    except ImportError:
        return Status(celery_module, MISSING)
    return Status(celery_module, STALE if celery_module in TABLE else IMPLEMENTED)


def name_status(celery_module: str, name: str) -> Status:
    """How the facade answers ``celery_module.name`` (its module exists)."""
    from spinach_compat.exceptions import UnsupportedFeature
    from spinach_compat.surface import REFUSED as TABLE

    key = f"{celery_module}.{name}"
    module = facade_module(celery_module)
    if name in vars(module):
        if key not in TABLE:
            return Status(key, IMPLEMENTED)
        return Status(key, REFUSED if _refused_on_use(vars(module)[name], key) else STALE,
                      TABLE[key])  # fmt: skip
    try:
        getattr(module, name)
    except UnsupportedFeature:
        return Status(key, REFUSED if key in TABLE else MISSING, TABLE.get(key, ""))
    except AttributeError:
        return Status(key, MISSING)
    return Status(key, STALE if key in TABLE else IMPLEMENTED, TABLE.get(key, ""))


def _refused_on_use(value: Any, key: str) -> bool:
    """Whether ``value`` is a class whose instantiation raises ``UnsupportedFeature(key)``."""
    from spinach_compat.exceptions import UnsupportedFeature

    if not isinstance(value, type):
        return False
    try:
        value()
    except UnsupportedFeature as exc:
        return key in str(exc)
    except Exception:
        return False
    return False


def attribute_status(owner: Any, dotted: str, attr: str) -> Status:
    """How the facade's class (or instance) ``owner`` answers ``dotted.attr``.

    A refused attribute is wired by ``surface.refuse_missing`` (a ``RefusedAttribute``): one
    absent is missing, even if listed in REFUSED (its class is not wired).
    """
    from spinach_compat.surface import REFUSED as TABLE
    from spinach_compat.surface import RefusedAttribute

    key = f"{dotted}.{attr}"
    try:
        found = inspect.getattr_static(owner, attr)
    except AttributeError:
        return Status(key, MISSING, TABLE.get(key, ""))
    if isinstance(found, RefusedAttribute):
        state = REFUSED if found.name == key and key in TABLE else STALE
        return Status(key, state, TABLE.get(key, ""))
    return Status(key, STALE if key in TABLE else IMPLEMENTED, TABLE.get(key, ""))


def facade_instances() -> dict[str, Any]:
    """An instance of each facade class of ``CLASSES`` (instance attributes count too)."""
    from spinach_compat import Celery
    from spinach_compat.result import AsyncResult, GroupResult

    app = Celery("surface", broker="memory://", backend="memory://", set_as_current=False)
    task = app.task(name="surface.noop")(lambda: None)
    control = app.control
    return {
        "celery.app.base.Celery": app,
        "celery.app.control.Control": control,
        "celery.app.control.Inspect": control.inspect(),
        "celery.app.task.Task": task,
        "celery.canvas.Signature": task.s(),
        "celery.result.AsyncResult": AsyncResult("surface-id", app=app),
        "celery.result.GroupResult": GroupResult("surface-group", [], app=app),
    }


def statuses(fixture: dict[str, Any]) -> dict[str, list[Status]]:
    """Every name of the fixture with its status, by module or class."""
    found: dict[str, list[Status]] = {}
    for module, names in fixture["modules"].items():
        status = module_status(module)
        if status.state == IMPLEMENTED:
            found[module] = [name_status(module, name) for name in names]
        else:
            found[module] = [status]
    for dotted, instance in facade_instances().items():
        names = fixture["classes"][dotted]
        found[dotted] = [attribute_status(instance, dotted, name) for name in names]
    return found


# -- the table of features.md ----------------------------------------------------------------


def table(fixture: dict[str, Any]) -> str:
    """The Markdown of the surface section, between the markers."""
    found = statuses(fixture)
    lines = [
        BEGIN,
        "",
        f"Generated by `python scripts/celery_inventory.py --table` from Celery "
        f"{fixture['celery']}'s public names (`tests/compat/surface/celery_5_7.json`) and "
        "`spinach_compat.surface.REFUSED`; `tests/compat/surface/` checks it is up to date.",
        "",
        "| Celery | names | in spinach_compat | refused |",
        "| --- | --- | --- | --- |",
    ]
    for owner, states in found.items():
        total = len(fixture["modules"].get(owner) or fixture["classes"][owner])
        if [s.name for s in states] == [owner]:  # the whole module is refused
            lines.append(f"| `{owner}` | {total} | none: the module is refused | all |")
        else:
            have = sum(s.state == IMPLEMENTED for s in states)
            lines.append(f"| `{owner}` | {total} | {have} | {total - have} |")
    lines += ["", "| Refused | Why, and what to do |", "| --- | --- |"]
    for owner, states in found.items():
        lines += _refusal_rows(owner, states)
    return "\n".join([*lines, "", END])


def _refusal_rows(owner: str, states: list[Status]) -> list[str]:
    """One row per reason of ``owner``'s refused names (the names sharing it, listed)."""
    by_reason: dict[str, list[str]] = {}
    for status in states:
        if status.state != IMPLEMENTED:
            reason = status.reason or f"**{status.state}**"
            by_reason.setdefault(reason, []).append(status.name)
    rows = []
    for reason, names in by_reason.items():
        if names == [owner]:
            listed = f"`{owner}` (the module)"
        else:
            listed = f"`{owner}`: " + ", ".join(f"`{n[len(owner) + 1 :]}`" for n in names)
        rows.append(f"| {listed} | {_linked(reason)} |")
    return rows


def _linked(reason: str) -> str:
    """``reason`` with its guide references as links (the table is in features.md)."""
    text = reason.replace("|", "\\|")
    text = re.sub(r"see migration_guide/features\.md#([\w-]+)", r"see [\1](#\1)", text)
    return re.sub(r"see migration_guide/(README\.md#[\w-]+)", r"see [\1](\1)", text)


def guide_with_table(text: str, fixture: dict[str, Any]) -> str:
    """``text`` (features.md) with its surface section regenerated."""
    start, end = text.index(BEGIN), text.index(END) + len(END)
    return text[:start] + table(fixture) + text[end:]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--table", action="store_true", help="rewrite the features.md section")
    parser.add_argument("--check", action="store_true", help="exit 1 if that section is stale")
    options = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    if options.table or options.check:
        text = GUIDE.read_text()
        wanted = guide_with_table(text, load_fixture())
        if options.check:
            return int(wanted != text)
        GUIDE.write_text(wanted)
        return 0
    FIXTURE.parent.mkdir(parents=True, exist_ok=True)
    FIXTURE.write_text(json.dumps(inventory(), indent=1, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
