"""``CachedTimeFormatter`` writes what ``logging.Formatter`` writes, second after second."""

from __future__ import annotations

import logging

import pytest

from spinach.cli import LOG_FORMAT
from spinach.job_logs import LINE_FORMAT
from spinach.log_format import CachedTimeFormatter


def record_at(created: float) -> logging.LogRecord:
    record = logging.LogRecord("spinach.worker", logging.INFO, __file__, 1, "ran %s", ("x",), None)
    record.created, record.msecs = created, int((created - int(created)) * 1000) + 0.0
    return record


@pytest.mark.parametrize("fmt", [LOG_FORMAT, LINE_FORMAT])
def test_the_same_text_as_logging_across_seconds(fmt):
    plain, cached = logging.Formatter(fmt), CachedTimeFormatter(fmt)
    for created in (0.0, 0.5, 0.999, 1.0, 1.001, 1_700_000_000.25, 1_700_000_000.75, 3.0):
        record = record_at(created)
        assert cached.format(record) == plain.format(record)


def test_a_date_format_given_is_logging_s():
    plain = logging.Formatter("%(asctime)s %(message)s", datefmt="%H:%M")
    cached = CachedTimeFormatter("%(asctime)s %(message)s", datefmt="%H:%M")
    record = record_at(1_700_000_000.5)
    assert cached.format(record) == plain.format(record)
