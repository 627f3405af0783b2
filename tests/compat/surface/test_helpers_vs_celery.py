"""The helper modules of the surface behave as Celery's (compared with the real Celery)."""

from __future__ import annotations

import logging
import pickle
import subprocess
import sys
import threading
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import celery.exceptions as c_exceptions
import celery.platforms as c_platforms
import celery.states as c_states
import celery.utils.functional as c_functional
import celery.utils.imports as c_imports
import celery.utils.nodenames as c_nodenames
import celery.utils.time as c_time
import pytest
from celery.beat import ScheduleEntry as CeleryEntry
from celery.schedules import schedule as celery_schedule

import spinach_compat
from spinach_compat import exceptions, platforms, states
from spinach_compat.beat import ScheduleEntry
from spinach_compat.schedules import BaseSchedule, crontab, crontab_parser, schedule, solar
from spinach_compat.utils import functional, imports, nodenames
from spinach_compat.utils import time as f_time

PARIS = ZoneInfo("Europe/Paris")
#: Local times around Paris's DST changes of 2024 (a gap, a fold) and an ordinary one.
TIMES = [datetime(2024, 3, 31, 2, 30), datetime(2024, 10, 27, 2, 30), datetime(2024, 6, 1, 12)]


def _same_instant(a: datetime, b: datetime) -> bool:
    return a == b and a.utcoffset() == b.utcoffset() and a.tzinfo == b.tzinfo


@pytest.mark.parametrize("naive", TIMES)
def test_time_zones_as_celery(naive: datetime) -> None:
    for name in ("make_aware", "localize"):
        assert _same_instant(
            getattr(f_time, name)(naive, PARIS), getattr(c_time, name)(naive, PARIS)
        )
    aware = naive.replace(tzinfo=timezone.utc)
    for value in (naive, aware):
        for tz in (None, PARIS):
            ours, theirs = f_time.maybe_make_aware(value, tz), c_time.maybe_make_aware(value, tz)
            assert _same_instant(ours, theirs)
    assert f_time.to_utc(naive) == c_time.to_utc(naive)
    later = f_time.make_aware(naive, PARIS)
    assert f_time.add_seconds_to_datetime(later, 3600) == c_time.add_seconds_to_datetime(
        later, 3600
    )
    assert f_time.subtract_datetimes(later, naive) == c_time.subtract_datetimes(later, naive)


def test_time_helpers_as_celery() -> None:
    for value in (0, 0.5, 1, 59, 60, 61, 90, 3600, 7200, 86400 * 3):
        assert f_time.humanize_seconds(value) == c_time.humanize_seconds(value)
        assert f_time.humanize_seconds(value, "in ", " ", microseconds=True) == (
            c_time.humanize_seconds(value, "in ", " ", microseconds=True)
        )
    for spec in ("100/m", "2/h", "0.5/s", "10", None, "", 5):
        assert f_time.rate(spec) == c_time.rate(spec)
    for value in (30, 1.5, timedelta(minutes=1), None, "x"):
        assert f_time.maybe_timedelta(value) == c_time.maybe_timedelta(value)
    for text in ("2024-01-01T10:00:00Z", "2024-01-01T10:00:00+02:00", None):
        assert f_time.maybe_iso8601(text) == c_time.maybe_iso8601(text)
    assert [f_time.weekday(d) for d in ("sunday", "Mon", "sat")] == [0, 1, 6]
    with pytest.raises(KeyError, match="someday"):
        f_time.weekday("someday")
    moment = datetime(2024, 10, 27, 2, 30, 45, tzinfo=PARIS, fold=1)
    for delta in (timedelta(days=2), timedelta(hours=3), timedelta(minutes=5), timedelta(0)):
        ours = f_time.delta_resolution(moment, delta)
        theirs = c_time.delta_resolution(moment, delta)
        assert ours == theirs and ours.fold == theirs.fold
    assert f_time.utcoffset() == c_time.utcoffset()
    assert f_time.adjust_timestamp(1000.0, 2) == c_time.adjust_timestamp(1000.0, 2)
    assert f_time.get_exponential_backoff_interval(2, 10, 600) == 600
    assert f_time.get_exponential_backoff_interval(2, 3, 600) == 16
    assert 0 <= f_time.get_exponential_backoff_interval(2, 3, 600, full_jitter=True) <= 16


def test_functional_helpers_as_celery() -> None:
    for name in ("maybe_list", "is_list", "dictfilter", "lazy", "memoize", "LRUCache"):
        assert getattr(functional, name) is getattr(c_functional, name)  # both kombu's
    assert list(functional.chunks(iter(range(7)), 3)) == list(
        c_functional.chunks(iter(range(7)), 3)
    )
    assert functional.padlist(["a"], 3, "z") == c_functional.padlist(["a"], 3, "z")
    assert functional.padlist("abcd", 2) == c_functional.padlist("abcd", 2)
    assert list(functional.uniq([3, 1, 3, 2, 1])) == list(c_functional.uniq([3, 1, 3, 2, 1]))
    assert functional.first(None, [None, 0, 2]) == c_functional.first(None, [None, 0, 2]) == 0
    assert functional.first(lambda v: v > 1, [1, 2, 3]) == 2
    assert functional.mattrgetter("real", "nope")(3) == {"real": 3, "nope": None}
    assert functional.maybe(int, None) is None and functional.maybe(int, "4") == 4
    assert functional.fun_accepts_kwargs(lambda **kw: 0)
    assert not functional.fun_accepts_kwargs(lambda a: 0)
    calls = []
    once = functional.mlazy(lambda: calls.append(1) or len(calls))
    assert (once(), once(), calls) == (1, 1, [1])

    class Answers:
        def ask(self, x):
            return None if x < 0 else x * 2

    assert functional.firstmethod("ask")([object(), Answers()], 4) == 8
    assert functional.firstmethod("ask")([Answers()], -1) is None


def test_node_names_as_celery() -> None:
    for name in ("w1@host.example.com", "host.example.com", "@h"):
        assert tuple(nodenames.nodesplit(name)) == tuple(c_nodenames.nodesplit(name))
    for name in (None, "", "w1", "w1@h", "@h"):
        assert nodenames.default_nodename(name) == c_nodenames.default_nodename(name)
    for spec in ("%h", "%n-%d", "x@%h", "%%h", "%i%I"):
        assert nodenames.host_format(spec, host="a.b.c") == c_nodenames.host_format(
            spec, host="a.b.c"
        )
        assert nodenames.node_format(spec, "w1@a.b") == c_nodenames.node_format(spec, "w1@a.b")
    with pytest.raises(ValueError, match="%z"):
        nodenames.host_format("%z")
    assert nodenames.gethostname() == c_nodenames.gethostname()
    assert nodenames.anon_nodename("h") == c_nodenames.anon_nodename("h")


def test_import_helpers_as_celery() -> None:
    for obj in (datetime, datetime.now, ScheduleEntry, ScheduleEntry.__init__, 3):
        assert imports.qualname(obj) == c_imports.qualname(obj)
    assert imports.instantiate("datetime:timedelta", seconds=2) == timedelta(seconds=2)
    app = spinach_compat.Celery("proj", broker="memory://", set_as_current=False)
    for module in ("__main__", "json", None, "no.such.module"):
        assert imports.gen_task_name(app, "add", module) == c_imports.gen_task_name(
            app, "add", module
        )
    with pytest.raises(imports.NotAPackage):
        imports.find_module("json.decoder.nothing")
    assert imports.module_file(imports) == c_imports.module_file(imports)


def test_platform_constants_as_celery() -> None:
    for name in ("EX_OK", "EX_FAILURE", "EX_UNAVAILABLE", "EX_USAGE", "SYSTEM", "IS_macOS",
                 "IS_WINDOWS"):  # fmt: skip
        assert getattr(platforms, name) == getattr(c_platforms, name), name
    assert platforms.signal_name(15) == c_platforms.signal_name(15) == "TERM"
    assert platforms.get_errno_name("ENOENT") == c_platforms.get_errno_name("ENOENT")
    assert platforms.pyimplementation() == c_platforms.pyimplementation()
    assert platforms.get_fdmax(7) == c_platforms.get_fdmax(7)
    assert platforms.isatty(object()) is None


def test_exceptions_have_celerys_bases() -> None:
    """Each exception of both derives from the same-named exceptions (and stdlib classes)."""
    for name in c_exceptions.__all__:
        theirs = getattr(c_exceptions, name)
        if not isinstance(theirs, type) or name == "CeleryCommandException":  # refused
            continue
        ours = getattr(exceptions, name)
        bases = {b.__name__ for b in theirs.__mro__ if b.__module__ != "billiard.exceptions"}
        assert bases <= {b.__name__ for b in ours.__mro__}, name
    error = exceptions.BackendStoreError("boom", state="FAILURE", task_id="t1")
    assert (error.state, error.task_id) == ("FAILURE", "t1")
    assert repr(error).endswith("state:FAILURE task_id:t1")
    with pytest.raises(KeyError):
        exceptions.reraise(KeyError, KeyError("x"))


def test_state_precedence_as_celery() -> None:
    names = ["SUCCESS", "FAILURE", "REVOKED", "STARTED", "RECEIVED", "REJECTED", "RETRY",
             "PENDING", "PROGRESS", None]  # fmt: skip
    for a in names:
        assert states.precedence(a) == c_states.precedence(a)
        for b in names[:-1]:
            if a is not None:
                assert (states.state(a) < b) == (c_states.state(a) < b), (a, b)
                assert (states.state(a) >= b) == (c_states.state(a) >= b), (a, b)


def test_schedules_derive_from_base_schedule() -> None:
    app = spinach_compat.Celery("sched", broker="memory://", set_as_current=False)
    for value in (schedule(30, app=app), crontab(app=app), solar("dawn", 1, 2, app=app)):
        assert isinstance(value, BaseSchedule)
        assert value.app is app and value.tz == app.timezone
    assert BaseSchedule(nowfun=lambda: "now").now() == "now"
    with pytest.raises(NotImplementedError):
        BaseSchedule().is_due(datetime.now(timezone.utc))
    assert crontab_parser(60).parse("*/15") == {0, 15, 30, 45}
    assert crontab_parser(31, 1).parse("*") == set(range(1, 32))


@pytest.mark.parametrize("last_minutes_ago", [0.5, 1, 3, 20, 61])
def test_crontab_is_due_as_celery(last_minutes_ago: float) -> None:
    from celery.schedules import crontab as celery_crontab

    now = datetime(2026, 1, 1, 12, 0, 30, tzinfo=timezone.utc)
    last = now - timedelta(minutes=last_minutes_ago)
    for fields in ({"minute": "*/15"}, {"minute": 0, "hour": "*/2"}, {}):
        ours = crontab(**fields, nowfun=lambda: now).is_due(last)
        theirs = celery_crontab(**fields, nowfun=lambda: now).is_due(last)
        assert (ours.is_due, round(ours.next)) == (theirs.is_due, round(theirs.next)), fields


@pytest.mark.parametrize("elapsed", [0, 10, 29.5, 30, 45])
def test_schedule_is_due_as_celery(elapsed: float) -> None:
    now = datetime(2026, 1, 1, 12, tzinfo=timezone.utc)
    last = now - timedelta(seconds=elapsed)
    ours = schedule(30, nowfun=lambda: now).is_due(last)
    theirs = celery_schedule(30, nowfun=lambda: now).is_due(last)
    assert tuple(ours) == tuple(theirs)
    assert repr(schedule(90)) == repr(celery_schedule(90))


def test_schedule_entry_as_celery() -> None:
    now = datetime(2026, 1, 1, 12, tzinfo=timezone.utc)
    fields = dict(name="tick", task="proj.tick", schedule=schedule(30, nowfun=lambda: now),
                  args=(1,), kwargs={"a": 2}, options={"queue": "q"})  # fmt: skip
    ours = ScheduleEntry(**fields)
    theirs = CeleryEntry(**{**fields, "schedule": celery_schedule(30, nowfun=lambda: now)})
    assert ours.last_run_at == theirs.last_run_at == now
    assert tuple(ours.is_due()) == tuple(theirs.is_due())
    later = next(ours)
    assert (later.total_run_count, later.name, later.args) == (1, "tick", (1,))
    assert later == ours and ours != ScheduleEntry(**{**fields, "args": (2,)})
    assert repr(ours).startswith("<ScheduleEntry: tick proj.tick(1, a=2) <freq: 30.00 seconds>")
    copied = pickle.loads(pickle.dumps(ScheduleEntry(**{**fields, "schedule": 30})))
    assert copied.schedule == schedule(30) and copied.task == "proj.tick"


def test_logging_proxy_writes_lines_to_its_logger(caplog) -> None:
    from spinach_compat.utils.log import LoggingProxy, mlevel

    logger = logging.getLogger("surface.proxy")
    proxy = LoggingProxy(logger, "warning")
    assert proxy.loglevel == mlevel("WARNING") == logging.WARNING
    with caplog.at_level(logging.WARNING, logger="surface.proxy"):
        assert proxy.write("hello\n") == 5
        assert proxy.write("\n") == 0
        proxy.writelines(["a\n", "b"])
        proxy.close()
        assert proxy.write("after close") == 0
    assert [r.getMessage() for r in caplog.records] == ["hello", "a", "b"]
    assert not proxy.isatty() and proxy.closed


def test_logging_proxy_drops_what_its_handlers_write_back() -> None:
    from spinach_compat.utils.log import LoggingProxy

    logger = logging.getLogger("surface.recursion")
    logger.propagate = False
    proxy = LoggingProxy(logger, logging.ERROR)
    seen = []

    class Echo(logging.Handler):
        def emit(self, record):
            seen.append(record.getMessage())
            proxy.write("echo " + record.getMessage())  # as a handler printing to stdout

    handler = Echo()
    logger.addHandler(handler)
    try:
        proxy.write("once")
    finally:
        logger.removeHandler(handler)
    assert seen == ["once"]


def test_local_stack_is_per_thread() -> None:
    from spinach_compat.utils.threads import LocalStack

    stack = LocalStack()
    stack.push("main")
    other = []
    thread = threading.Thread(target=lambda: other.append((stack.top, len(stack), stack.pop())))
    thread.start()
    thread.join()
    assert other == [(None, 0, None)]
    top = stack()
    assert top.upper() == "MAIN"
    assert stack.pop() == "main" and stack.top is None
    with pytest.raises(RuntimeError, match="unbound"):
        top.upper()


def test_proxies_as_celery() -> None:
    from spinach_compat.local import PromiseProxy, Proxy, maybe_evaluate, try_import

    calls = []

    def make() -> list:
        calls.append(1)
        return [1, 2, len(calls)]

    proxy = Proxy(make)
    assert isinstance(proxy, list) and len(proxy) == 3 and proxy[0] == 1 and 2 in proxy
    assert len(calls) == 4  # evaluated at each use
    promise = PromiseProxy(make)
    seen = []
    promise.__then__(seen.append, "ready")
    assert not promise.__evaluated__() and seen == []
    assert promise[2] == promise[2] == 5 and seen == ["ready"]
    assert maybe_evaluate(promise) == [1, 2, 5] and maybe_evaluate(7) == 7
    assert try_import("json") is not None and try_import("no_such_module_x", 3) == 3


def test_task_formatter_names_the_running_task() -> None:
    from spinach_compat.app.log import TaskFormatter

    formatter = TaskFormatter("%(task_name)s[%(task_id)s] %(message)s", use_color=False)
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "outside", None, None)
    assert formatter.format(record) == "???[???] outside"
    app = spinach_compat.Celery("fmt", broker="memory://", backend="memory://",
                                set_as_current=False)  # fmt: skip

    @app.task(name="fmt.log")
    def log_line():
        inside = logging.LogRecord("x", logging.INFO, __file__, 1, "inside", None, None)
        return formatter.format(inside)

    result = log_line.apply(task_id="t-1")
    assert result.get() == "fmt.log[t-1] inside"


@pytest.mark.parametrize("level", [logging.DEBUG, logging.INFO, logging.WARNING, logging.ERROR,
                                   logging.CRITICAL])  # fmt: skip
def test_color_formatter_as_celery(level: int) -> None:
    from celery.utils.log import ColorFormatter as CeleryFormatter

    from spinach_compat.utils.log import ColorFormatter

    record = logging.LogRecord("x", level, "f", 1, "message %s", ("here",), None)
    for use_color in (True, False):
        ours = ColorFormatter("%(levelname)s %(message)s", use_color=use_color).format(record)
        theirs = CeleryFormatter("%(levelname)s %(message)s", use_color=use_color).format(record)
        assert ours == theirs


def test_bg_thread_loops_until_stopped() -> None:
    from spinach_compat.utils.threads import bgThread

    runs = threading.Semaphore(0)

    class Ticker(bgThread):
        def body(self):
            runs.release()
            self._is_shutdown.wait(0.01)  # a service's own pace

    ticker = Ticker()
    assert ticker.daemon and ticker.name == "Ticker"
    ticker.start()
    assert runs.acquire(timeout=10) and runs.acquire(timeout=10)
    ticker.stop()
    assert not ticker.is_alive()


def test_bg_thread_crash_ends_the_process() -> None:
    code = (
        "from spinach_compat.utils.threads import bgThread\n"
        "class Boom(bgThread):\n"
        "    def body(self):\n"
        "        raise ValueError('bad')\n"
        "Boom().start()\n"
        "import threading; threading.Event().wait(60)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)  # fmt: skip
    assert done.returncode == 1
    assert "'Boom' crashed: ValueError('bad')" in done.stderr


@pytest.fixture
def paris_local_time(monkeypatch):
    """The process's local time is Europe/Paris (CET/CEST) for the test."""
    import time

    monkeypatch.setenv("TZ", "Europe/Paris")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_local_timezone_as_celery_s_across_dst(paris_local_time) -> None:
    import celery

    ours, theirs = f_time.LocalTimezone(), c_time.LocalTimezone()
    for wall in (datetime(2026, 1, 15, 12), datetime(2026, 7, 15, 12)):
        assert ours.utcoffset(wall) == theirs.utcoffset(wall), wall
        assert ours.dst(wall) == theirs.dst(wall), wall
        assert ours.tzname(wall) == theirs.tzname(wall), wall
    summer = datetime(2026, 7, 15, 10, tzinfo=timezone.utc)
    assert summer.astimezone(ours) == summer.astimezone(theirs)
    assert summer.astimezone(ours).hour == 12
    app = spinach_compat.Celery("tz", set_as_current=False, enable_utc=False)
    real = celery.Celery("tz", set_as_current=False, enable_utc=False)
    assert isinstance(app.timezone, f_time.LocalTimezone)
    assert app.timezone.utcoffset(datetime(2026, 7, 1)) == real.timezone.utcoffset(
        datetime(2026, 7, 1)
    )
    assert spinach_compat.Celery("utc", set_as_current=False).timezone == timezone.utc
