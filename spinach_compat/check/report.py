"""The checker's findings, the files it could not read, and how they are printed."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

from .facade import Verdict
from .rules import (
    CHECK,
    DIFFERENT,
    GUIDE,
    STATUSES,
    SUPPORTED,
    UNKNOWN,
    UNSUPPORTED,
    Rule,
    rule_for,
)

EXIT_OK, EXIT_UNSUPPORTED, EXIT_USAGE = 0, 1, 2
#: Kinds of ``RULES`` keys that only annotate names: never a verdict by themselves.
NAME_KINDS = frozenset({"module", "name", "attr"})


@dataclass
class Finding:
    """One use of a Celery API."""

    file: str
    line: int
    api: str
    status: str
    note: str
    section: str


@dataclass
class Report:
    """Every finding of a run, and the files it could not parse."""

    root: str
    findings: list[Finding] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  #: "file: why", each counted as failing
    files: int = 0

    def add(
        self, file: str, line: int, key: str, value: Any = UNKNOWN, label: str = "",
        uncertain: bool = False,
    ) -> None:  # fmt: skip
        """Record a use of ``key`` (``kind:name``), judged on its literal ``value``;
        ``uncertain``: on an object not known to be Celery's, unsupported becomes check."""
        if key.split(":", 1)[0] in NAME_KINDS:
            raise ValueError(f"{key}: a name is judged by resolving it (check.facade)")
        rule = rule_for(key)
        status, note = judge(rule, value)
        if uncertain and status == UNSUPPORTED:
            status, note = CHECK, f"{note} (on an object not known to be Celery's: check it)"
        api = label or key.split(":", 1)[1]
        if value is not UNKNOWN:
            api = f"{api}={value!r}"
        self.findings.append(Finding(file, line, api, status, note, GUIDE + rule.section))

    def add_verdict(self, file: str, line: int, api: str, verdict: Verdict) -> None:
        """Record a use of a Celery name judged by resolving it against the facade."""
        finding = Finding(file, line, api, verdict.status, verdict.note, GUIDE + verdict.section)
        self.findings.append(finding)

    @property
    def counts(self) -> Counter:
        """How many findings of each status."""
        return Counter(finding.status for finding in self.findings)

    @property
    def failed(self) -> bool:
        """Something unsupported is used, or a file could not be read."""
        return bool(self.counts[UNSUPPORTED] or self.skipped)


def judge(rule: Rule, value: Any) -> tuple[str, str]:
    """A rule's status and note for ``value``: a value it cannot see is to be checked."""
    if rule.accepts is None:
        return rule.status, rule.note
    if value is UNKNOWN:
        return CHECK, f"{rule.note} (not a literal here: check the value it takes)".lstrip()
    accepted = _accepts(rule, value)
    if accepted is None:
        return CHECK, f"{rule.note} (not set here: check where it is set)".lstrip()
    if accepted:
        return (DIFFERENT if rule.status == DIFFERENT else SUPPORTED), rule.note
    return UNSUPPORTED, rule.note


def _accepts(rule: Rule, value: Any) -> bool | None:
    try:
        accepted = rule.accepts(value)  # type: ignore[misc]
    except Exception:
        return False
    return None if accepted is None else bool(accepted)


def format_text(report: Report) -> str:
    """One line per finding, then the summary."""
    lines = [
        f"{f.file}:{f.line}: {f.status:<11} {f.api}"
        + (f" ({f.note})" if f.note else "")
        + f" -> {f.section}"
        for f in report.findings
    ]
    lines += [f"cannot parse (counted as a failure): {s}" for s in report.skipped]
    counts = report.counts
    lines.append(
        f"\n{len(report.findings)} Celery API uses in {report.files} Python files: "
        f"{counts[SUPPORTED]} supported, {counts[DIFFERENT]} different, "
        f"{counts[CHECK]} to check, {counts[UNSUPPORTED]} unsupported."
    )
    if report.skipped:
        lines.append(f"{len(report.skipped)} files not parsed, each counted as a failure.")
    lines += _advice(report)
    return "\n".join(lines)


def _advice(report: Report) -> list[str]:
    lines = []
    unsupported = Counter(f.api for f in report.findings if f.status == UNSUPPORTED)
    if unsupported:
        lines.append("Unsupported: " + ", ".join(f"{a} ({n})" for a, n in unsupported.items()))
        lines.append(f"Read {GUIDE}features.md for the workarounds.")
    if report.skipped:
        lines.append("Files not parsed were not checked: fix or port them, then run again.")
    if report.counts[CHECK]:
        lines.append("To check: what the checker cannot decide (a value it cannot see, a package")
        lines.append("not tried under the celery import shim): look at each one.")
    if not report.failed:
        lines.append(f"Nothing unsupported found: follow {GUIDE}README.md step by step.")
    return lines


def format_json(report: Report) -> str:
    """The report as JSON: findings, unparsed files and counts."""
    counts = report.counts
    summary = {"files": report.files, "uses": len(report.findings), "unparsed": len(report.skipped)}
    summary.update({status: counts[status] for status in STATUSES})
    data = {
        "root": report.root,
        "findings": [asdict(f) for f in report.findings],
        "skipped": report.skipped,
        "summary": summary,
    }
    return json.dumps(data, indent=2)
