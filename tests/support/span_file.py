"""Test-only span export across processes: a worker writes its finished spans as JSON lines.

A test app calls ``install_from_environment()`` at import: when ``SPAN_FILE_VARIABLE`` names
a path, spans go there, one JSON object a line, as each ends (a simple processor: nothing
is lost when the worker exits). ``read_spans`` reads them back in the test.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult

from spinach.contrib import otel

SPAN_FILE_VARIABLE = "SPINACH_TEST_SPAN_FILE"


class JsonLinesExporter(SpanExporter):
    """Appends each span to ``path`` as a JSON line."""

    def __init__(self, path: str):
        self.path = path
        self._lock = threading.Lock()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        lines = [json.dumps(_as_dict(span)) + "\n" for span in spans]
        with self._lock, open(self.path, "a") as file:
            file.writelines(lines)
        return SpanExportResult.SUCCESS


def _as_dict(span: ReadableSpan) -> dict[str, Any]:
    context, parent = span.get_span_context(), span.parent
    return {
        "name": span.name,
        "kind": span.kind.name,
        "trace_id": f"{context.trace_id:032x}",
        "span_id": f"{context.span_id:016x}",
        "parent_id": None if parent is None else f"{parent.span_id:016x}",
        "status": span.status.status_code.name,
        "attributes": dict(span.attributes or {}),
        "events": [event.name for event in span.events],
    }


def install_from_environment() -> None:
    """Trace this process's jobs into the file the environment names, if it names one."""
    path = os.environ.get(SPAN_FILE_VARIABLE)
    if path:
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(JsonLinesExporter(path)))
        otel.instrument(tracer_provider=provider)


def read_spans(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
