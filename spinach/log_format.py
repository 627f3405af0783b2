"""A log formatter that formats each second's time once.

``logging.Formatter`` formats ``%(asctime)s`` with ``time.localtime`` and ``strftime``
for every record. A worker logs two lines per job (started, finished), so at a thousand jobs
a second that was a tenth of a log line's cost, spent again on each. This one keeps the
text of the current second and adds the milliseconds: the same text, for the default
date format only (a ``datefmt`` given is formatted as ``logging`` does).
"""

from __future__ import annotations

import logging
import time


class CachedTimeFormatter(logging.Formatter):
    """``logging.Formatter`` whose ``asctime`` text is made once per second."""

    _second: tuple[int, str] = (-1, "")  # the second last formatted, and its text

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        if datefmt is not None:
            return super().formatTime(record, datefmt)
        second = int(record.created)
        cached = self._second
        if cached[0] != second:  # one tuple, read and replaced whole: safe across threads
            text = time.strftime(self.default_time_format, self.converter(second))
            cached = self._second = (second, text)
        if not self.default_msec_format:
            return cached[1]
        return self.default_msec_format % (cached[1], record.msecs)
