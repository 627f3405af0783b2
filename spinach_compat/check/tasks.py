"""Tasks in Python code: ``@app.task``/``@shared_task`` functions and their options,
``Task`` subclasses, ``base=`` classes, and who ``self`` is in a bound task or a method."""

from __future__ import annotations

import ast
import builtins
from collections.abc import Iterator
from typing import Any

from . import facade, kinds, thirdparty
from .kinds import CLASS, FOREIGN, Kind
from .rules import CHECK, UNSUPPORTED, rule_for
from .settings import literal

BUILTINS = frozenset(dir(builtins))
CLASS_BODY = Kind("class body")  #: marks the scope of a class body
OPEN = "*"  #: in a class's own attributes: it has bases the checker cannot see into


class TasksMixin:
    """The tasks part of the Python visitor (see ``python.Visitor``)."""

    learning: bool
    add: Any
    add_resolved: Any
    add_verdict: Any
    bind: Any
    kind_of: Any
    lookup: Any
    qualified: Any
    use_name: Any
    visit: Any
    scopes: list[dict[str, Kind | None]]
    classes: list[Kind | None]

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        task: tuple[Kind, bool] | None = None
        for decorator in node.decorator_list:
            task = self.visit_decorator(decorator) or task
        self.bind(node.name, task[0] if task else None)
        if self.learning:
            return  # a function's body binds no global the other modules import
        self.scopes.append(self._parameters(node, task[0] if task and task[1] else None))
        for statement in node.body:
            self.visit(statement)
        self.scopes.pop()
        for default in [*node.args.defaults, *node.args.kw_defaults]:
            if default is not None:
                self.visit(default)

    visit_AsyncFunctionDef = visit_FunctionDef

    def _parameters(
        self, node: ast.FunctionDef | ast.AsyncFunctionDef, bound: Kind | None
    ) -> dict[str, Kind | None]:
        """The function's scope: its parameters, ``self`` typed in a bound task or method."""
        arguments = [*node.args.posonlyargs, *node.args.args, *node.args.kwonlyargs]
        scope: dict[str, Kind | None] = {a.arg: None for a in arguments}
        first = arguments[0].arg if arguments else None
        if first and bound is not None:
            scope[first] = bound
        elif first and self.classes and not _is_static(node) and self._is_method(node):
            owner = self.classes[-1]
            scope[first] = owner.instance() if owner and owner.role == CLASS else owner
        return scope

    def _is_method(self, node: ast.AST) -> bool:
        return self.scopes[-1].get("<class>") is CLASS_BODY

    def visit_decorator(self, node: ast.expr) -> tuple[Kind, bool] | None:
        """``@app.task(...)``, ``@shared_task(...)``: the task it makes, whether bound."""
        target = node.func if isinstance(node, ast.Call) else node
        name = self.qualified(target) or ""
        owner = self.kind_of(target.value) if isinstance(target, ast.Attribute) else None
        shared = name.endswith(".shared_task")
        app_task = isinstance(target, ast.Attribute) and target.attr == "task" and not name
        if not shared and not (app_task and (owner is None or owner.family == "app")):
            self.visit(node)
            return None
        if shared:
            self.use_name(target, name, ast.unparse(target))
        else:
            self.add_resolved(node, "decorator:task", kinds.APP_CLASS, "task", ast.unparse(target))
        return self.task_options(node)

    def task_options(self, node: ast.expr) -> tuple[Kind, bool]:
        """Judge a task decorator's options; the task it makes, whether bound."""
        base, bound = kinds.TASK, False
        for keyword in node.keywords if isinstance(node, ast.Call) else ():
            self.visit(keyword.value)
            if keyword.arg == "base":
                base = self.task_base(keyword) or base
            elif keyword.arg:
                bound = bound or (keyword.arg == "bind" and literal(keyword.value) is True)
                self.add(keyword, f"task:{keyword.arg}", literal(keyword.value))
        return base.instance(), bound

    def task_base(self, keyword: ast.keyword) -> Kind | None:
        """``base=``: a Celery task class, else a third-party base (likely refused)."""
        kind = self.kind_of(keyword.value)
        api = f"base={ast.unparse(keyword.value)}"
        if kind is not None and kind.role == CLASS and kind.family == "task":
            self.add(keyword, "task:base", label="base")
            return kind
        if kind is not None and kind.role == FOREIGN and kind.module:
            self.add_verdict(keyword.lineno, api, _foreign_base(kind.module))
        else:
            note = "a base class the checker cannot trace to a Celery Task: check it"
            self.add_verdict(
                keyword.lineno, api, facade.Verdict(CHECK, note, rule_for("task:base").section)
            )
        return None

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        for decorator in node.decorator_list:
            self.visit(decorator)
        for base in [*node.bases, *(k.value for k in node.keywords)]:
            self.visit(base)
        kind = self._class_kind(node)
        self.bind(node.name, kind)
        if kind is not None and kind.family == "task":
            self.task_class_options(node)
        self.classes.append(kind)
        self.scopes.append({"<class>": CLASS_BODY})
        for statement in node.body:
            self.visit(statement)
        self.scopes.pop()
        self.classes.pop()

    def _class_kind(self, node: ast.ClassDef) -> Kind | None:
        """A Celery class's subclass; foreign when no base can be Celery's; else unknown."""
        bases = [(base, self.kind_of(base)) for base in node.bases]
        own = _own_names(node) | self._inherited(bases)
        for _, kind in bases:
            if kind is not None and kind.role == CLASS and kind.family is not None:
                return Kind(CLASS, kind.celery_class, own | kind.own)
        if all(self._not_celery(base) for base in node.bases):
            modules = [kind.module for _, kind in bases if kind and kind.module]
            return Kind(FOREIGN, module=modules[0] if modules else "", own=own)
        return None

    def _inherited(self, bases: list[tuple[ast.expr, Kind | None]]) -> frozenset[str]:
        """The attributes a class gets from its bases that are not Celery's: those of the
        project's own classes; ``OPEN`` for a base the checker cannot see into."""
        names: set[str] = set()
        for base, kind in bases:
            if kind is not None and kind.role == CLASS and kind.family is not None:
                continue  # the Celery class: looked up on the facade
            if kind is not None and kind.role == FOREIGN and not kind.module:
                names |= kind.own  # a class of the project
            elif not (isinstance(base, ast.Name) and base.id in BUILTINS and kind is None):
                names.add(OPEN)
        return frozenset(names)

    def _not_celery(self, base: ast.expr) -> bool:
        """A base class known not to be a Celery app, task, signature or result class."""
        kind = self.kind_of(base)
        if kind is not None:
            return kind.role == FOREIGN or kind.family is None
        if self.qualified(base):
            return True  # a Celery class the facade lacks, or not a task/app/... class
        return isinstance(base, ast.Name) and base.id in BUILTINS and self.lookup(base.id) is None

    def task_class_options(self, node: ast.ClassDef) -> None:
        for statement in node.body:
            for target, value in _assignments(statement):
                if target:
                    self.add(statement, f"task:{target}", literal(value))


def _foreign_base(module: str) -> facade.Verdict:
    """A task base class from another package: built on Celery's own Task, it only runs
    if the celery import shim runs that package (``thirdparty``)."""
    found = thirdparty.package_of_module(module)
    if found and found[1].status == thirdparty.WORKS:
        return thirdparty.verdict(*found)
    rule = rule_for("base:*")
    status = f"{found[0]}: {found[1].note}" if found else "not known to work under the shim"
    return facade.Verdict(UNSUPPORTED, f"{rule.note} ({module}; {status})", rule.section)


def _is_static(node: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    return any(
        isinstance(d, ast.Name) and d.id in ("staticmethod", "classmethod")
        for d in node.decorator_list
    )


def _own_names(node: ast.ClassDef) -> frozenset[str]:
    """The attributes a class defines: in its body, and ``self.x = ...`` in its methods."""
    names = {target for statement in node.body for target, _ in _assignments(statement)}
    for child in ast.walk(node):
        if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(child.name)
        elif facade.is_self_store(child):
            names.add(child.attr)
    return frozenset(names)


def _assignments(statement: ast.stmt) -> Iterator[tuple[str, ast.expr]]:
    if isinstance(statement, ast.Assign):
        for target in statement.targets:
            if isinstance(target, ast.Name):
                yield target.id, statement.value
    elif isinstance(statement, ast.AnnAssign) and statement.value is not None:
        target = statement.target
        yield (target.id if isinstance(target, ast.Name) else ""), statement.value
