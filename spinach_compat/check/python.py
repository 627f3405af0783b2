"""The Celery API uses of one Python module, found by reading its syntax tree.

Names imported from ``celery`` are followed through aliases; apps, tasks, signatures and
results through assignments, decorators, class bases and calls (``kinds``). Each Celery
name used, and each attribute of a Celery object, is judged by resolving it against the
facade (``facade``); settings and options are judged on their values (``rules``).
"""

from __future__ import annotations

import ast
import re
from typing import Any

from . import facade, kinds, thirdparty
from .kinds import CLASS, FOREIGN, INSTANCE, MODULE, Kind
from .project import Project, module_name
from .report import Report
from .rules import CHECK, GUIDE, UNKNOWN, UNSUPPORTED
from .settings import SettingsMixin, literal
from .tasks import OPEN, TasksMixin

CELERY_NAME = re.compile(r"^celery(\.|$)")


class Visitor(TasksMixin, SettingsMixin, ast.NodeVisitor):
    """Finds the Celery API uses of one module; ``report=None`` only learns its globals."""

    def __init__(self, report: Report | None, file: str, module: str, project: Project):
        self.report, self.file, self.module, self.project = report, file, module, project
        self.learning = report is None  # only learns what the module defines
        self.names: dict[str, str] = {}  # local name -> Celery's dotted name
        self.scopes: list[dict[str, Kind | None]] = [{}]
        self.classes: list[Kind | None] = []  # the enclosing classes' kinds
        self.unused: dict[str, tuple[int, str]] = {}  # imported, not used yet: line, name
        self.seen: set[tuple[int, str]] = set()

    # -- recording ---------------------------------------------------------------------

    def add(
        self, node: ast.AST, key: str, value: Any = UNKNOWN, label: str = "",
        uncertain: bool = False,
    ) -> None:  # fmt: skip
        """Record a use of ``key`` at ``node``, judged by ``RULES`` on its ``value``."""
        if self.report is not None:
            line = getattr(node, "lineno", 0)
            self.report.add(self.file, line, key, value, label, uncertain)

    def add_verdict(self, line: int, api: str, verdict: facade.Verdict) -> None:
        """Record a use of a name judged against the facade (once per line)."""
        if self.report is not None and (line, api) not in self.seen:
            self.seen.add((line, api))
            self.report.add_verdict(self.file, line, api, verdict)

    def add_resolved(
        self, node: ast.AST, key: str, celery_class: str, attr: str, label: str
    ) -> None:
        """A use ``RULES`` describes, if the facade's class has the method it stands for."""
        verdict = facade.attribute_verdict(celery_class, attr)
        if verdict.status == UNSUPPORTED:
            self.add_verdict(_line(node), label, verdict)
        else:
            self.add(node, key, label=label)

    def finish(self) -> dict[str, Kind | None]:
        """Report the Celery names imported and never used; the module's globals."""
        for line, name in self.unused.values():
            self.add_verdict(line, name, facade.name_verdict(name))
        return self.scopes[0]

    # -- what names and expressions are ------------------------------------------------

    def lookup(self, name: str) -> Kind | None:
        """The kind of a local name, through the enclosing scopes and Celery imports."""
        for scope in reversed(self.scopes):
            if name in scope:
                return scope[name]
        celery_name = self.names.get(name)
        return kinds.name_kind(celery_name) if celery_name else None

    def bind(self, name: str, kind: Kind | None) -> None:
        """``name`` now stands for ``kind`` (None: unknown) in the current scope."""
        self.scopes[-1][name] = kind

    def qualified(self, node: ast.AST) -> str | None:
        """``celery.x.y`` of a name or attribute chain rooted at a celery import."""
        if isinstance(node, ast.Name):
            found = self.names.get(node.id)
            shadowed = any(node.id in scope for scope in self.scopes[1:])
            return found if found and not shadowed else None
        if isinstance(node, ast.Attribute):
            base = self.qualified(node.value)
            if base is None or kinds.proxy_kind(base) is not None:
                return None
            return f"{base}.{node.attr}"
        return None

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
                self.add_verdict(
                    _line(node), f"import {alias.name}", facade.module_verdict(alias.name)
                )
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
        """``from celery.x import y``: the module now, each name where it is used."""
        self.add_verdict(_line(node), f"from {module} import ...", facade.module_verdict(module))
        for alias in node.names:
            local = alias.asname or alias.name
            self.names[local] = f"{module}.{alias.name}"
            self.scopes[-1].pop(local, None)
            self.unused[local] = (node.lineno, f"{module}.{alias.name}")

    def third_party(self, node: ast.AST, module: str) -> None:
        """An import of a module of a package built on Celery (``thirdparty``)."""
        found = thirdparty.package_of_module(module)
        if found:
            self.add_verdict(_line(node), f"import {module}", thirdparty.verdict(*found))

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
        """A use of ``celery.x.y``, judged against the facade."""
        root = api.split(".", 1)[0].split("(", 1)[0]
        self.unused.pop(root, None)
        self.add_verdict(_line(node), api, facade.name_verdict(celery_name))

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
        self.add_verdict(_line(node), label, verdict)

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
            self.add(keyword, f"call:{keyword.arg}", literal(keyword.value), uncertain=not certain)

    def retry_options(self, node: ast.Call, certain: bool) -> None:
        """``self.retry(...)`` keywords, judged as ``apply_async``'s."""
        self.add(node, "retry:exc", label="self.retry(...)")
        for keyword in (k for k in node.keywords if k.arg and k.arg != "exc"):
            key = f"retry:{keyword.arg}"
            self.add(keyword, key, literal(keyword.value), uncertain=not certain)

    # -- assignments ---------------------------------------------------------------------

    def visit_Assign(self, node: ast.Assign) -> None:
        self.visit(node.value)
        for target in node.targets:
            self.assign(node, target, node.value)

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        if node.value is not None:
            self.visit(node.value)
            self.assign(node, node.target, node.value)

    def assign(self, node: ast.stmt, target: ast.expr, value: ast.expr) -> None:
        """``target = value``: the names bound take the value's kind; settings are read."""
        if isinstance(target, ast.Name):
            self.names.pop(target.id, None)
            self.bind(target.id, self.kind_of(value))
        elif isinstance(target, (ast.Tuple, ast.List)):
            for name in (e for e in target.elts if isinstance(e, ast.Name)):
                self.names.pop(name.id, None)
                self.bind(name.id, None)  # unpacked: not followed
        else:
            self.visit(target)
        self.assignment(node, target, value)

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
            label = "signature | signature"
            self.add_resolved(node, "canvas:|", kinds.SIGNATURE_CLASS, "__or__", label)
        self.generic_visit(node)


def _is_signature(node: ast.AST) -> bool:
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
        return _is_signature(node.left) and _is_signature(node.right)
    return isinstance(node, ast.Call) and _callee(node) in ("s", "si", "signature")


def _callee(node: ast.Call) -> str:
    func = node.func
    return func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")


__all__ = ["GUIDE", "Visitor", "literal", "module_name"]


def _line(node: ast.AST) -> int:
    return getattr(node, "lineno", 0)
