"""The Celery API uses of one Python module, found by reading its syntax tree.

Names imported from ``celery`` are followed through aliases; apps, tasks, signatures and
results through assignments, decorators, class bases and calls (``kinds``). Each Celery
name used, and each attribute of a Celery object, is judged by resolving it against the
facade (``facade``); settings and options are judged on their values (``rules``).
"""

from __future__ import annotations

import ast
import builtins
import re
from collections.abc import Iterator
from typing import Any

from . import facade, kinds, thirdparty
from .kinds import CLASS, FOREIGN, INSTANCE, MODULE, Kind
from .project import Project, module_name
from .report import Report
from .rules import CHECK, GUIDE, UNKNOWN, UNSUPPORTED, rule_for
from .settings import SettingsMixin, literal

CELERY_NAME = re.compile(r"^celery(\.|$)")
BUILTINS = frozenset(dir(builtins))
CLASS_BODY = Kind("class body")  #: marks the scope of a class body
OPEN = "*"  #: in a class's own attributes: it has bases the checker cannot see into


class Visitor(SettingsMixin, ast.NodeVisitor):
    """Finds the Celery API uses of one module; ``report=None`` only learns its globals."""

    def __init__(self, report: Report | None, file: str, module: str, project: Project):
        self.report, self.file, self.module, self.project = report, file, module, project
        self.names: dict[str, str] = {}  # local name -> Celery's dotted name
        self.scopes: list[dict[str, Kind | None]] = [{}]
        self.classes: list[Kind | None] = []  # the enclosing classes' kinds
        self.unused: dict[str, tuple[int, str]] = {}  # imported, not used yet: line, name
        self.seen: set[tuple[int, str]] = set()

    # -- recording ---------------------------------------------------------------------

    def add(self, node: ast.AST, key: str, value: Any = UNKNOWN, label: str = "") -> None:
        if self.report is not None:
            self.report.add(self.file, getattr(node, "lineno", 0), key, value, label)

    def add_verdict(self, node: ast.AST, api: str, verdict: facade.Verdict) -> None:
        line = getattr(node, "lineno", 0)
        if self.report is not None and (line, api) not in self.seen:
            self.seen.add((line, api))
            self.report.add_verdict(self.file, line, api, verdict)

    def finish(self) -> dict[str, Kind | None]:
        """Report the Celery names imported and never used; the module's globals."""
        for line, name in self.unused.values():
            self.report_name_at(line, name, name)
        return self.scopes[0]

    def report_name_at(self, line: int, name: str, api: str) -> None:
        node = ast.Pass(lineno=line)
        self.add_verdict(node, api, facade.name_verdict(name))

    # -- what names and expressions are ------------------------------------------------

    def lookup(self, name: str) -> Kind | None:
        for scope in reversed(self.scopes):
            if name in scope:
                return scope[name]
        celery_name = self.names.get(name)
        return kinds.name_kind(celery_name) if celery_name else None

    def bind(self, name: str, kind: Kind | None) -> None:
        self.scopes[-1][name] = kind

    def qualified(self, node: ast.AST) -> str | None:
        """``celery.x.y`` of a name or attribute chain rooted at a celery import."""
        if isinstance(node, ast.Name):
            found = self.names.get(node.id)
            return found if found and node.id not in self._shadowing() else None
        if isinstance(node, ast.Attribute):
            base = self.qualified(node.value)
            if base is None or kinds.proxy_kind(base) is not None:
                return None
            return f"{base}.{node.attr}"
        return None

    def _shadowing(self) -> set[str]:
        return {name for scope in self.scopes[1:] for name in scope}

    def kind_of(self, node: ast.AST) -> Kind | None:
        """What ``node`` evaluates to, as far as the checker follows it."""
        if isinstance(node, ast.Name):
            return self.lookup(node.id)
        if isinstance(node, ast.Attribute):
            return self._attribute_kind(node)
        if isinstance(node, ast.Call):
            return self._call_kind(node)
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
            sides = (self.kind_of(node.left), self.kind_of(node.right))
            return kinds.SIGNATURE if any(k and k.family == "signature" for k in sides) else None
        return None

    def _attribute_kind(self, node: ast.Attribute) -> Kind | None:
        celery_name = self.qualified(node)
        if celery_name:
            return kinds.name_kind(celery_name)
        owner = self.kind_of(node.value)
        if owner is not None and owner.role == MODULE:
            return self.project.global_kind(owner.module, node.attr)
        return kinds.attribute_kind(owner, node.attr)

    def _call_kind(self, node: ast.Call) -> Kind | None:
        func = node.func
        if isinstance(func, ast.Attribute) and self.qualified(func) is None:
            owner = self.kind_of(func.value)
            if owner is not None and owner.role == INSTANCE:
                return kinds.method_kind(owner, func.attr)
        celery_name = self.qualified(func)
        return kinds.call_kind(self.kind_of(func), celery_name, None)

    # -- imports -----------------------------------------------------------------------

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            local = alias.asname or alias.name.split(".")[0]
            target = alias.name if alias.asname else local
            if CELERY_NAME.match(alias.name):
                self.add_verdict(node, f"import {alias.name}", facade.module_verdict(alias.name))
                self.names[local] = target
            else:
                self.bind(local, self.project.module_kind(target))
                self.third_party(node, alias.name)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        module = self.project.absolute(self.module, node.module or "", node.level)
        if node.level == 0 and CELERY_NAME.match(module):
            self.celery_import(node, module)
            return
        self.third_party(node, module)
        for alias in node.names:
            local = alias.asname or alias.name
            self.names.pop(local, None)
            self.bind(local, self.project.imported_kind(module, alias.name, node.level > 0))

    def celery_import(self, node: ast.ImportFrom, module: str) -> None:
        self.add_verdict(node, f"from {module} import ...", facade.module_verdict(module))
        for alias in node.names:
            local = alias.asname or alias.name
            self.names[local] = f"{module}.{alias.name}"
            self.scopes[-1].pop(local, None)
            self.unused[local] = (node.lineno, f"{module}.{alias.name}")

    def third_party(self, node: ast.AST, module: str) -> None:
        """An import of a module of a package built on Celery (``thirdparty``)."""
        found = thirdparty.package_of_module(module)
        if found:
            self.add_verdict(node, f"import {module}", thirdparty.verdict(*found))

    # -- uses of names and attributes ----------------------------------------------------

    def visit_Name(self, node: ast.Name) -> None:
        celery_name = self.qualified(node)
        if celery_name and isinstance(node.ctx, ast.Load):
            self.use_name(node, celery_name, node.id)

    def visit_Attribute(self, node: ast.Attribute) -> None:
        celery_name = self.qualified(node)
        if celery_name:
            self.use_name(node, celery_name, ast.unparse(node))
            return
        if isinstance(node.ctx, ast.Load):
            self.use_attribute(node, self.kind_of(node.value), node.attr)
        self.generic_visit(node)

    def use_name(self, node: ast.AST, celery_name: str, api: str) -> None:
        root = api.split(".", 1)[0].split("(", 1)[0]
        self.unused.pop(root, None)
        self.add_verdict(node, api, facade.name_verdict(celery_name))

    def use_attribute(self, node: ast.AST, owner: Kind | None, attr: str) -> None:
        """``app.x``, ``task.x``, ``signature.x``, ``result.x``: looked up on the facade."""
        if owner is None or owner.role != INSTANCE or owner.family is None:
            return
        if attr in owner.own:
            return
        label = f"{owner.celery_class.rsplit('.', 1)[1]}.{attr}"
        verdict = facade.attribute_verdict(owner.celery_class, attr)
        if OPEN in owner.own and verdict.status == UNSUPPORTED and "no attribute" in verdict.note:
            note = f"{verdict.note}; a mixin of the class may define it: check it"
            verdict = facade.Verdict(CHECK, note, verdict.section)
        self.add_verdict(node, label, verdict)

    # -- calls -------------------------------------------------------------------------

    def visit_Call(self, node: ast.Call) -> None:
        celery_name = self.qualified(node.func)
        if celery_name:
            self.use_name(node, celery_name, ast.unparse(node.func) + "(...)")
            callee = kinds.name_kind(celery_name)
            if callee is not None and callee.role == CLASS and callee.family == "app":
                self.celery_kwargs(node)
        elif isinstance(node.func, ast.Attribute):
            self.visit(node.func)
            self.method_call(node, node.func)
        else:
            self.visit(node.func)
            callee = self.kind_of(node.func)
            if callee is not None and callee.role == CLASS and callee.family == "app":
                self.celery_kwargs(node)
        for argument in [*node.args, *(k.value for k in node.keywords)]:
            self.visit(argument)

    def method_call(self, node: ast.Call, func: ast.Attribute) -> None:
        """``.apply_async``, ``self.retry``, ``conf.update``, ``config_from_object``, ..."""
        owner = self.kind_of(func.value)
        if owner is not None and owner.role == FOREIGN:
            return  # multiprocessing.Pool().apply_async(...): not Celery's
        if owner is not None and owner.role == INSTANCE and owner.family is None:
            return
        celery = owner is not None and owner.family is not None
        if func.attr == "apply_async" and (celery or owner is None):
            self.call_options(node, certain=celery)
        elif func.attr == "retry" and (owner is None or owner.family == "task"):
            self.retry_options(node, certain=celery)
        else:
            self.settings_call(node, func)

    def call_options(self, node: ast.Call, certain: bool) -> None:
        """``apply_async`` keywords; on an object not known as Celery's, unsupported -> check."""
        for keyword in (k for k in node.keywords if k.arg):
            self.add_option(keyword, f"call:{keyword.arg}", keyword.value, certain)

    def retry_options(self, node: ast.Call, certain: bool) -> None:
        self.add(node, "retry:exc", label="self.retry(...)")
        for keyword in (k for k in node.keywords if k.arg and k.arg != "exc"):
            self.add_option(keyword, f"retry:{keyword.arg}", keyword.value, certain)

    def add_option(self, node: ast.AST, key: str, value: ast.expr, certain: bool) -> None:
        self.add(node, key, literal(value))
        if not certain and self.report is not None and self.report.findings:
            finding = self.report.findings[-1]
            if finding.status == UNSUPPORTED:
                finding.status = CHECK
                finding.note += " (on an object not known to be a Celery task: check it)"

    # -- functions and classes -----------------------------------------------------------

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        task: tuple[Kind, bool] | None = None
        for decorator in node.decorator_list:
            task = self.visit_decorator(decorator) or task
        self.bind(node.name, task[0] if task else None)
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
            self.add(node, "decorator:task", label=ast.unparse(target))
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
            self.add_verdict(keyword, api, _foreign_base(kind.module))
        else:
            note = "a base class the checker cannot trace to a Celery Task: check it"
            self.add_verdict(
                keyword, api, facade.Verdict(CHECK, note, rule_for("task:base").section)
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
        for base in node.bases:
            kind = self.kind_of(base)
            if kind is not None and kind.role == CLASS and kind.family is not None:
                others = [b for b in node.bases if b is not base]
                opened = {OPEN} if others else set()  # a mixin's attributes are not seen
                return Kind(CLASS, kind.celery_class, kind.own | _own_names(node) | opened)
        if all(self._not_celery(base) for base in node.bases):
            modules = [k.module for k in map(self.kind_of, node.bases) if k and k.module]
            return Kind(FOREIGN, module=modules[0] if modules else "")
        return None

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

    # -- assignments ---------------------------------------------------------------------

    def visit_Assign(self, node: ast.Assign) -> None:
        self.visit(node.value)
        kind = self.kind_of(node.value)
        for target in node.targets:
            if isinstance(target, ast.Name):
                self.names.pop(target.id, None)
                self.bind(target.id, kind)
            else:
                self.visit(target)
            self.assignment(node, target, node.value)

    def visit_With(self, node: ast.With | ast.AsyncWith) -> None:
        for item in node.items:
            self.visit(item.context_expr)
            if isinstance(item.optional_vars, ast.Name):
                self.bind(item.optional_vars.id, self.kind_of(item.context_expr))
        for statement in node.body:
            self.visit(statement)

    visit_AsyncWith = visit_With

    def visit_BinOp(self, node: ast.BinOp) -> None:
        if (
            isinstance(node.op, ast.BitOr)
            and _is_signature(node.left)
            and _is_signature(node.right)
        ):
            self.add(node, "canvas:|", label="signature | signature")
        self.generic_visit(node)


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


def _is_signature(node: ast.AST) -> bool:
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
        return _is_signature(node.left) and _is_signature(node.right)
    return isinstance(node, ast.Call) and _callee(node) in ("s", "si", "signature")


def _callee(node: ast.Call) -> str:
    func = node.func
    return func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")


__all__ = ["GUIDE", "Visitor", "literal", "module_name"]
