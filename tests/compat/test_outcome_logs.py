"""The log lines of a task's outcome in a worker, as Celery's (``celery.app.trace``)."""

from __future__ import annotations

import logging
import re
from typing import Any

import pytest

from spinach import signals as native_signals

from .conftest import WAIT, Recorder


@pytest.fixture
def finished(app, recorder: Recorder):
    """``wait(job_id)``: returns once the engine ended that native job (and logged it)."""

    def on_finished(namespace: str, job: Any) -> None:
        recorder.add("finished", job.id)

    native_signals.job_finished.connect(on_finished, sender=app.namespace)
    yield lambda job_id: recorder.wait_for(lambda events: ("finished", job_id) in events)
    native_signals.job_finished.disconnect(on_finished, sender=app.namespace)


def _lines(caplog, logger: str) -> list[tuple[int, str, bool]]:
    return [(r.levelno, r.getMessage(), r.exc_info is not None)
            for r in caplog.records if r.name == logger]  # fmt: skip


def test_success_line(app, run_worker, caplog, finished):
    @app.task(name="proj.add")
    def add(x, y):
        return x + y

    run_worker()
    with caplog.at_level(logging.INFO):
        result = add.delay(1, 2)
        assert result.get(timeout=WAIT) == 3
        finished(result.id)
    [(level, message, has_traceback)] = _lines(caplog, "celery.app.trace")
    assert level == logging.INFO and not has_traceback
    assert re.fullmatch(
        rf"Task proj\.add\[{result.id}\] succeeded in \d+\.\d+(e-\d+)?s: 3", message
    )


def test_failure_line_with_its_traceback_and_no_native_one(app, run_worker, caplog, finished):
    @app.task(name="proj.div")
    def div(x, y):
        return x / y

    run_worker()
    with caplog.at_level(logging.INFO):
        result = div.delay(1, 0)
        assert isinstance(result.get(timeout=WAIT, propagate=False), ZeroDivisionError)
        finished(result.id)
    [(level, message, has_traceback)] = _lines(caplog, "celery.app.trace")
    assert (level, has_traceback) == (logging.ERROR, True)
    assert (
        message
        == f"Task proj.div[{result.id}] raised unexpected: ZeroDivisionError('division by zero')"
    )
    [record] = [r for r in caplog.records if r.name == "celery.app.trace"]
    assert record.exc_info[0] is ZeroDivisionError
    native = [
        r for r in caplog.records if r.name == "spinach.worker" and "Finished" in r.getMessage()
    ]
    assert [(r.levelno, r.exc_info) for r in native] == [(logging.INFO, None)]
    assert "aborted" not in native[0].getMessage()
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR and r is not record]


def test_an_expected_failure_is_info_without_traceback(app, run_worker, caplog, finished):
    @app.task(name="proj.check", throws=(KeyError,))
    def check():
        raise KeyError("missing")

    run_worker()
    with caplog.at_level(logging.INFO):
        result = check.delay()
        result.get(timeout=WAIT, propagate=False)
        finished(result.id)
    assert _lines(caplog, "celery.app.trace") == [
        (logging.INFO, f"Task proj.check[{result.id}] raised expected: KeyError('missing')", False)
    ]


def test_the_lines_match_real_celerys_eager_ones(impl, caplog):
    """Real Celery logs the same lines (its trace runs for eager calls too)."""
    app = impl.Celery("proj", broker="memory://", set_as_current=False)

    @app.task(name="proj.add")
    def add(x, y):
        return x + y

    @app.task(name="proj.div")
    def div(x, y):
        return x / y

    with caplog.at_level(logging.INFO, "celery.app.trace"):
        ok, failed = add.apply((1, 2)), div.apply((1, 0))
    lines = _lines(caplog, "celery.app.trace")
    assert re.fullmatch(rf"Task proj\.add\[{ok.id}\] succeeded in .+s: 3", lines[0][1])
    assert lines[1] == (
        logging.ERROR,
        f"Task proj.div[{failed.id}] raised unexpected: ZeroDivisionError('division by zero')",
        True,
    )


#: Results whose text Celery's success line shortens: a long one, and nested ones.
CUT_RESULTS = {
    "long": list(range(600)),
    "nested": {"deep": [[[[1, 2]]]], "text": "x" * 2000, "more": [{"a": {"b": {"c": 1}}}]},
}


def _celerys_success_text(value: Any) -> str:
    """The result's text in real Celery's success line (``apply`` logs it too)."""
    import celery

    real = celery.Celery("real", set_as_current=False)
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    @real.task(name="proj.result")
    def result() -> Any:
        return value

    trace_logger = logging.getLogger("celery.app.trace")
    keep, level = Keep(logging.INFO), trace_logger.level
    trace_logger.addHandler(keep)
    trace_logger.setLevel(logging.INFO)
    try:
        result.apply()
    finally:
        trace_logger.removeHandler(keep)
        trace_logger.setLevel(level)
    [record] = records
    return record.getMessage().split("s: ", 1)[1]


def test_the_success_line_shortens_a_result_as_celery_s(app, run_worker, caplog, finished):
    @app.task(name="proj.result")
    def result_of(kind):
        return CUT_RESULTS[kind]

    run_worker()
    with caplog.at_level(logging.INFO):
        results = {kind: result_of.delay(kind) for kind in CUT_RESULTS}
        for result in results.values():
            assert result.get(timeout=WAIT)
            finished(result.id)
    lines = dict(
        (message.split("[", 1)[1].split("]", 1)[0], message.split("s: ", 1)[1])
        for _, message, _ in _lines(caplog, "celery.app.trace")
    )
    for kind, result in results.items():
        assert lines[result.id] == _celerys_success_text(CUT_RESULTS[kind]), kind
