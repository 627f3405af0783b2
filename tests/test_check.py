"""``spinach-compat check``: Celery API uses found by reading code, never by importing it."""

from __future__ import annotations

import importlib
import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import pytest

import spinach_compat
import spinach_compat.canvas
import spinach_compat.utils
from spinach_compat import check, surface
from spinach_compat.app import call_options, defaults, publish, task
from spinach_compat.bin import celery as cli
from spinach_compat.check import facade, thirdparty
from spinach_compat.exceptions import UnsupportedFeature

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
GUIDE = ROOT / "migration_guide"

UNSUPPORTED_PROJECT = {
    "proj/celery.py": """\
        from celery import Celery
        from celery.schedules import solar

        app = Celery("proj", broker="redis://localhost:6379/0")
        app.conf.worker_pool = "eventlet"
        app.conf.beat_schedule = {
            "nightly": {"task": "proj.tasks.report", "schedule": solar("sunset", -37.81, 144.96)},
        }
        """,
    "proj/tasks.py": """\
        from celery import group

        from .celery import app


        @app.task(shadow_name="fetch_url")
        def fetch(url):
            return url


        @app.task
        def report(results):
            return len(results)


        def fan_out(urls):
            return fetch.apply_async(("u",), chord="body")
        """,
    "proj/explodes.py": """\
        raise RuntimeError("the checker imported this module")
        from celery import Celery
        """,
    "Procfile": "worker: celery -A proj worker -P eventlet -c 100\n",
}


@pytest.fixture
def unsupported_project(tmp_path: Path) -> Path:
    for name, text in UNSUPPORTED_PROJECT.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return tmp_path


def _unsupported(report: check.Report) -> set[tuple[str, int, str]]:
    return {(f.file, f.line, f.api) for f in report.findings if f.status == check.UNSUPPORTED}


def test_unsupported_features_with_their_lines(unsupported_project: Path) -> None:
    found = _unsupported(check.check_path(unsupported_project))
    assert found == {
        ("proj/celery.py", 5, "worker_pool='eventlet'"),
        ("proj/celery.py", 7, "solar(...)"),
        ("proj/tasks.py", 6, "shadow_name='fetch_url'"),
        ("proj/tasks.py", 17, "chord='body'"),
        ("Procfile", 1, "-P='eventlet'"),
    }


def test_exit_status_and_summary(unsupported_project: Path, capsys) -> None:
    assert check.main([str(unsupported_project)]) == check.EXIT_UNSUPPORTED
    out = capsys.readouterr().out
    assert "proj/tasks.py:17: unsupported chord='body'" in out
    assert "migration_guide/features.md#canvas" in out
    assert re.search(r"5 unsupported\.", out)


def test_never_imports_the_scanned_code(unsupported_project: Path) -> None:
    report = check.check_path(unsupported_project)
    assert any(f.file == "proj/explodes.py" for f in report.findings)
    assert "proj.explodes" not in sys.modules and "proj" not in sys.modules


def test_json_output_parses(unsupported_project: Path, capsys) -> None:
    assert check.main([str(unsupported_project), "--json"]) == check.EXIT_UNSUPPORTED
    data = json.loads(capsys.readouterr().out)
    assert data["summary"]["unsupported"] == 5
    assert {"file", "line", "api", "status", "note", "section"} <= set(data["findings"][0])


def test_usage_errors(tmp_path: Path, capsys) -> None:
    assert check.main([str(tmp_path / "missing")]) == check.EXIT_USAGE
    assert check.main([]) == check.EXIT_USAGE
    assert "no such file" in capsys.readouterr().err


def test_command_line_wiring(unsupported_project: Path) -> None:
    """``python -m spinach_compat check`` loads no app: no -A needed."""
    done = subprocess.run(
        [sys.executable, "-m", "spinach_compat", "check", str(unsupported_project), "--json"],
        capture_output=True, text=True, cwd=ROOT, timeout=60,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert json.loads(done.stdout)["summary"]["unsupported"] == 5
    assert cli.main(["check", str(EXAMPLES / "celery_project" / "proj")]) == 0


def test_check_is_listed_and_runs_after_global_options(capsys) -> None:
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    assert re.search(r"^\s+check\s+list the Celery APIs", capsys.readouterr().out, re.M)
    project = str(EXAMPLES / "celery_project" / "proj")
    assert cli.main(["-A", "not.an.app", "check", project, "--json"]) == 0  # loads no app
    assert json.loads(capsys.readouterr().out)["summary"]["unsupported"] == 0


def test_interop_settings_and_flags(tmp_path: Path) -> None:
    """Running beside Celery: the bridge and legacy routing are supported, protocol 1 not."""
    (tmp_path / "celery_app.py").write_text(
        "from celery import Celery\n"
        'app = Celery("proj", broker="redis://r/0")\n'
        'app.conf.spinach_legacy_tasks = ["proj.tasks.old_*"]\n'
        'app.conf.task_routes = {"proj.tasks.old_*": {"queue": "legacy", "legacy": True}}\n'
        "app.conf.task_protocol = 1\n"
    )
    (tmp_path / "Procfile").write_text(
        "web: spinach-compat -A proj worker -Q celery --celery-queues celery,emails\n"
    )
    findings = {(f.file, f.api): f for f in check.check_path(tmp_path).findings}
    statuses = {key: finding.status for key, finding in findings.items()}
    legacy = "spinach_legacy_tasks=['proj.tasks.old_*']"
    assert statuses[("celery_app.py", legacy)] == check.SUPPORTED
    assert statuses[("Procfile", "--celery-queues")] == check.SUPPORTED
    assert {s for (file, _), s in statuses.items() if file == "Procfile"} == {check.SUPPORTED}
    assert statuses[("celery_app.py", "task_protocol=1")] == check.UNSUPPORTED
    assert findings[("celery_app.py", "task_protocol=1")].section.endswith("#interop-with-celery")


def test_every_worker_option_and_spinach_setting_has_a_rule() -> None:
    """A flag or setting added to the facade is classified, not left to the fallback."""
    commands = next(a for a in cli.build_parser()._actions if a.dest == "command")
    for action in commands.choices["worker"]._actions:
        for flag in action.option_strings:
            assert flag in ("-h", "--help") or f"flag:{flag}" in check.RULES, flag
    for key in defaults.DEFAULTS:
        if key.startswith("spinach_"):
            assert check.RULES[f"setting:{key}"].status == check.SUPPORTED, key


def test_priorities_rate_limits_and_links_are_supported(tmp_path: Path) -> None:
    (tmp_path / "tasks.py").write_text(
        'from celery import Celery\napp = Celery("proj")\n'
        'app.conf.task_default_rate_limit = "10/s"\napp.conf.task_default_priority = 5\n'
        '@app.task(rate_limit="10/m", priority=3)\ndef add(x, y):\n    return x + y\n'
        "add.apply_async((1, 2), priority=0, link=add.s(1), link_error=add.si(0, 0))\n"
    )
    findings = {(f.line, f.api): f for f in check.check_path(tmp_path).findings}
    for key in [
        (3, "task_default_rate_limit='10/s'"), (4, "task_default_priority=5"),
        (5, "rate_limit='10/m'"), (5, "priority=3"),
        (8, "priority=0"), (8, "link"), (8, "link_error"),
    ]:  # fmt: skip
        assert findings[key].status == check.SUPPORTED, key
        assert findings[key].section.endswith(("#rate-limits-and-priorities", "#canvas")), key


def test_group_chain_chord_and_pipe_are_supported(tmp_path: Path) -> None:
    (tmp_path / "tasks.py").write_text(
        "from celery import chain, chord, group\nfrom celery.result import GroupResult\n"
        "def go(add, total):\n"
        "    group(add.s(1, 1), add.s(2, 2)).delay()\n"
        "    chain(add.s(1, 1), add.s(2)).delay()\n"
        "    chord([add.s(1, 1)], total.s()).delay()\n"
        "    return (add.s(1, 1) | add.s(2)).delay()\n"
    )
    report = check.check_path(tmp_path)
    assert not [f for f in report.findings if f.status == check.UNSUPPORTED]
    apis = {f.api for f in report.findings}
    assert {"group(...)", "chain(...)", "chord(...)"} <= apis, apis


def test_django_style_settings_are_read(tmp_path: Path) -> None:
    (tmp_path / "celery_app.py").write_text(
        'from celery import Celery\napp = Celery("proj")\n'
        'app.config_from_object("django.conf:settings", namespace="CELERY")\n'
    )
    (tmp_path / "settings.py").write_text(
        'DEBUG = True\nCELERY_TASK_SERIALIZER = "auth"\nCELERY_BROKER_URL = "redis://r"\n'
    )
    findings = {(f.file, f.api): f.status for f in check.check_path(tmp_path).findings}
    assert findings[("settings.py", "task_serializer='auth'")] == check.UNSUPPORTED
    assert findings[("settings.py", "broker_url='redis://r'")] == check.SUPPORTED
    assert not any(api.startswith("debug") for _, api in findings)


def test_django_celery_results_backends_are_supported(tmp_path: Path) -> None:
    (tmp_path / "celery_app.py").write_text(
        'from celery import Celery\napp = Celery("proj")\n'
        'app.config_from_object("django.conf:settings", namespace="CELERY")\n'
    )
    (tmp_path / "settings.py").write_text(
        'CELERY_RESULT_BACKEND = "django-db"\nCELERY_CACHE_BACKEND = "default"\n'
    )
    findings = {f.api: f.status for f in check.check_path(tmp_path).findings}
    assert findings["result_backend='django-db'"] == check.SUPPORTED
    assert findings["cache_backend='default'"] == check.SUPPORTED


def test_a_config_module_is_read() -> None:
    """``config_from_object("proj.celeryconfig")``: its top-level names are settings."""
    findings = check.check_path(CORPUS / "config_module").findings
    settings = {(f.api, f.status) for f in findings if f.file == "proj/celeryconfig.py"}
    assert settings == {
        ("broker_url", check.CHECK),
        ("result_backend='db+sqlite:///results.db'", check.UNSUPPORTED),
        ("task_serializer='json'", check.SUPPORTED),
    }


def test_what_cannot_be_tied_to_celery_is_to_check(tmp_path: Path) -> None:
    """An apply_async on a parameter; an attribute a mixin of a Task subclass may define."""
    (tmp_path / "tasks.py").write_text(
        "from celery import Task\nfrom somelib import Mixin\n"
        "class Own:\n    def get_name(self):\n        return 1\n"
        "class Base(Own, Mixin, Task):\n    def run(self):\n"
        "        return self.get_version(), self.get_name()\n"
        "def send(task):\n    task.apply_async(chain=[1])\n"
    )
    found = {(f.line, f.api): f for f in check.check_path(tmp_path).findings}
    assert found[(8, "Task.get_version")].status == check.CHECK  # somelib's Mixin may have it
    assert (8, "Task.get_name") not in found  # the project's own class has it
    assert found[(10, "chain=[1]")].status == check.CHECK
    assert "not known to be Celery's" in found[(10, "chain=[1]")].note


def test_annotated_settings_and_app(tmp_path: Path) -> None:
    (tmp_path / "celery_app.py").write_text(
        "import os\nfrom celery import Celery\n"
        'app: Celery = Celery("proj")\n'
        'app.config_from_object("django.conf:settings", namespace="CELERY")\n'
        'CELERY_RESULT_BACKEND: str = os.environ["RESULT_BACKEND"]\n'
        "app.not_an_app_attribute_xyz\n"
    )
    findings = {f.api: f.status for f in check.check_path(tmp_path).findings}
    assert findings["result_backend"] == check.CHECK
    assert findings["Celery.not_an_app_attribute_xyz"] == check.UNSUPPORTED


# -- the table agrees with the guide and with what the facade refuses ------------------------


def _anchors(path: Path) -> set[str]:
    """GitHub-style anchors of the headings of a Markdown file."""
    anchors = set()
    for line in path.read_text().splitlines():
        if line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            anchors.add(re.sub(r"\s", "-", re.sub(r"[^\w\s-]", "", title)))
    return anchors


def test_every_section_of_the_table_exists_in_the_guide() -> None:
    for key, rule in check.RULES.items():
        file, _, anchor = rule.section.partition("#")
        assert (GUIDE / file).is_file(), key
        assert anchor in _anchors(GUIDE / file), f"{key}: no section {rule.section}"


def test_table_agrees_with_the_facade_refusals() -> None:
    def status(key: str, value: object) -> str:
        report = check.Report("x")
        report.add("f", 1, key, value)
        return report.findings[0].status

    for key in defaults.UNSUPPORTED:
        assert status(f"setting:{key}", "something") == check.UNSUPPORTED, key
        assert status(f"setting:{key}", defaults.DEFAULTS[key]) == check.SUPPORTED, key
    for option in task.UNSUPPORTED_OPTIONS:
        assert status(f"task:{option}", "something") == check.UNSUPPORTED, option
    for option in publish.MUST_BE_NONE:
        assert status(f"call:{option}", "something") == check.UNSUPPORTED, option
    for _, flags, _ in cli.UNSUPPORTED_WORKER_FLAGS:
        for flag in flags.split("/"):
            assert check.rule_for(f"flag:{flag}").status == check.UNSUPPORTED, flag


def _judged(key: str, value: object) -> str:
    report = check.Report("x")
    report.add("f", 1, key, value)
    return report.findings[0].status


def test_call_rules_are_the_declaration_publishing_validates_against() -> None:
    """Every ``apply_async`` option Celery users pass has the rule its declaration gives."""
    for name, option in call_options.OPTIONS.items():
        rule = check.RULES.get(f"call:{name}")
        if option.internal:
            assert rule is None, name
            continue
        assert rule is not None, name
        assert (rule.status, rule.note, rule.accepts) == (
            option.status, option.note, option.accepts,
        ), name  # fmt: skip
        assert rule.section == f"features.md#{option.section}", name
    calls = {key for key in check.RULES if key.startswith("call:")} - {"call:*"}
    assert calls == {f"call:{n}" for n, o in call_options.OPTIONS.items() if not o.internal}


#: Options a call passes (not named parameters, not the facade's own).
_PASSED = [n for n, o in call_options.OPTIONS.items() if not (o.internal or o.parameter)]


@pytest.mark.parametrize(
    ("name", "value"),
    [
        *((name, "something") for name in _PASSED if name not in ("serializer", "compression")),
        *((name, None) for name in _PASSED),
        ("serializer", "auth"), ("serializer", "json"), ("compression", "zlib"),
        ("not_an_option", None),
    ],
)  # fmt: skip
def test_checker_and_publishing_refuse_the_same_options(name: str, value: object) -> None:
    """What the checker calls unsupported is what publishing refuses (a serializer or
    compression not installed here is refused by publishing alone: the checker cannot know
    the project's environment)."""
    try:
        call_options.check_options({name: value})
        refused = False
    except UnsupportedFeature:
        refused = True
    assert (_judged(f"call:{name}", value) == check.UNSUPPORTED) == refused


def test_a_name_is_never_judged_by_the_table_alone() -> None:
    with pytest.raises(ValueError, match="resolving"):
        check.Report("x").add("f", 1, "name:celery.canvas.group")


def test_module_verdicts_follow_the_facade(tmp_path: Path) -> None:
    """A module is supported exactly when its spinach_compat module imports."""
    (tmp_path / "mods.py").write_text(
        "import celery.result\nfrom celery.contrib.abortable import AbortableTask\n"
    )
    statuses = {f.api: f.status for f in check.check_path(tmp_path).findings}
    assert statuses["import celery.result"] == check.SUPPORTED
    try:
        importlib.import_module("spinach_compat.contrib.abortable")
        expected = check.SUPPORTED
    except (ImportError, UnsupportedFeature):
        expected = check.UNSUPPORTED
    assert statuses["from celery.contrib.abortable import ..."] == expected


# -- the examples -----------------------------------------------------------------------------


@pytest.mark.parametrize("project", ["celery_project", "migrated_project"])
def test_examples_pass_the_checker(project: str) -> None:
    report = check.check_path(EXAMPLES / project)
    assert report.counts[check.UNSUPPORTED] == 0
    assert report.findings


def test_migrated_example_runs_end_to_end() -> None:
    done = subprocess.run(
        [sys.executable, "run.py"], capture_output=True, text=True,
        cwd=EXAMPLES / "migrated_project", timeout=120,
        env={"PATH": "/usr/bin:/bin", "BROKER_URL": "memory://"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "add(2, 3) -> 5" in done.stdout
    assert "'retries': 2" in done.stdout
    assert "ok after 1 retries" in done.stdout
    assert "workers stopped" in done.stdout


# -- the corpus: one case per verdict the checker once got wrong -------------------------------

CORPUS = Path(__file__).resolve().parent / "check_corpus"


@pytest.fixture(scope="module")
def facade_objects() -> SimpleNamespace:
    """Real facade objects: what the expected verdicts are computed from."""
    app = spinach_compat.Celery("check-corpus", broker="memory://", set_as_current=False)
    task = app.task(lambda: None, name="check_corpus.noop")
    return SimpleNamespace(app=app, task=task, signature=task.s())


def _has(owner: object, name: str) -> bool:
    """``owner.name`` exists and is not refused."""
    try:
        getattr(owner, name)
    except (AttributeError, UnsupportedFeature):
        return False
    return True


def _resolved(owner: object, name: str, celery_name: str) -> str:
    """The verdict a name must get: unsupported exactly when the facade lacks or refuses it."""
    if surface.refusal(celery_name) or not _has(owner, name):
        return check.UNSUPPORTED
    return check.SUPPORTED


def _corpus(case: str) -> dict[str, set[str]]:
    """``api -> statuses`` of a corpus case."""
    found: dict[str, set[str]] = {}
    for finding in check.check_path(CORPUS / case).findings:
        found.setdefault(finding.api, set()).add(finding.status)
    return found


def test_app_attribute_follows_the_facade(facade_objects) -> None:
    found = _corpus("on_after_finalize")
    expected = _resolved(
        facade_objects.app, "on_after_finalize", "celery.app.base.Celery.on_after_finalize"
    )
    assert found["Celery.on_after_finalize"] == {expected}


def test_task_attribute_follows_the_facade() -> None:
    """On Task, or on DjangoTask (what tasks are under Django, as in Celery)."""
    found = _corpus("delay_on_commit")
    try:
        django_task = importlib.import_module("spinach_compat.contrib.django.task").DjangoTask
    except (ImportError, UnsupportedFeature, AttributeError):
        django_task = None
    owners = [spinach_compat.Task, django_task]
    has = any(_has(owner, "delay_on_commit") for owner in owners if owner is not None)
    refused = surface.refusal("celery.app.task.Task.delay_on_commit")
    expected = check.SUPPORTED if has and not refused else check.UNSUPPORTED
    assert found["Task.delay_on_commit"] == {expected}


def test_current_task_follows_the_facade(facade_objects) -> None:
    found = _corpus("current_task")
    assert found["current_task"] == {
        _resolved(spinach_compat, "current_task", "celery.current_task")
    }
    update = _resolved(facade_objects.task, "update_state", "celery.app.task.Task.update_state")
    if found["current_task"] == {check.SUPPORTED}:
        assert found["Task.update_state"] == {update}
    for proxied in ("Celery._get_current_object", "Task._get_current_object"):  # proxies'
        assert found[proxied] == {check.SUPPORTED}, proxied


def test_stamping_example_is_supported(facade_objects) -> None:
    found = _corpus("stamping")
    visitor = _resolved(spinach_compat.canvas, "StampingVisitor", "celery.canvas.StampingVisitor")
    stamp = _resolved(facade_objects.signature, "stamp", "celery.canvas.Signature.stamp")
    assert found["StampingVisitor"] == {visitor}
    assert found["Signature.stamp"] == {stamp}
    assert (visitor, stamp) == (check.SUPPORTED, check.SUPPORTED)


def test_third_party_task_base_is_unsupported() -> None:
    report = check.check_path(CORPUS / "third_party_base")
    base = next(f for f in report.findings if f.api == "base=Singleton")
    assert base.status == check.UNSUPPORTED
    assert "celery_singleton" in base.note
    assert report.failed


def test_non_literal_broker_and_backend_are_to_check(capsys) -> None:
    found = _corpus("non_literal_settings")
    assert found["broker_url"] == {check.CHECK}
    assert found["result_backend"] == {check.CHECK}
    assert check.main([str(CORPUS / "non_literal_settings")]) == check.EXIT_OK
    assert "2 to check" in capsys.readouterr().out


def test_an_unparsable_file_fails_the_run(capsys) -> None:
    report = check.check_path(CORPUS / "unparsable")
    assert [s.split(": ", 1)[0] for s in report.skipped] == ["tasks.py:6"]  # and the error
    assert check.main([str(CORPUS / "unparsable")]) == check.EXIT_UNSUPPORTED
    out = capsys.readouterr().out
    assert f"cannot parse (counted as a failure): {report.skipped[0]}" in out
    assert "1 files not parsed" in out
    assert check.main([str(CORPUS / "unparsable"), "--json"]) == check.EXIT_UNSUPPORTED
    assert json.loads(capsys.readouterr().out)["summary"]["unparsed"] == 1


def test_python_314_except_clauses_are_parsed_under_any_python() -> None:
    """readthedocs' tasks modules use PEP 758's ``except A, B:``: read, not skipped."""
    report = check.check_path(CORPUS / "py314_except")
    assert report.skipped == []
    found = {f.api: f.status for f in report.findings}
    assert found["Task.not_a_celery_method_xyz"] == check.UNSUPPORTED  # after the except


def test_python_312_type_parameters_are_parsed_under_any_python() -> None:
    """saleor's dataloaders use PEP 695 (``class DataLoader[K, R]``, ``type X = int``)."""
    report = check.check_path(CORPUS / "py312_generics")
    assert report.skipped == []
    found = {f.api: f.status for f in report.findings}
    assert found["Task.not_a_celery_method_xyz"] == check.UNSUPPORTED


def test_other_objects_apply_async_is_not_judged() -> None:
    """multiprocessing's apply_async(callback=) and a beat scheduler's apply_async(advance=)."""
    assert _corpus("pool_apply_async") == {}
    found = _corpus("beat_scheduler")
    assert not [api for api in found if "advance" in api or "producer" in api]


def test_celery_utils_chunks_is_not_the_canvas_chunks(monkeypatch) -> None:
    found = _corpus("utils_chunks")
    expected = _resolved(spinach_compat.utils, "chunks", "celery.utils.chunks")
    assert found["chunks(...)"] == {expected}
    monkeypatch.setattr(spinach_compat.utils, "chunks", lambda it, n: it, raising=False)
    facade.forget()
    try:
        found = _corpus("utils_chunks")
        assert found["chunks(...)"] == {check.SUPPORTED}  # a helper, not the refused canvas one
    finally:
        monkeypatch.undo()
        facade.forget()


def test_an_unresolved_or_refused_name_is_unsupported(monkeypatch) -> None:
    """A name certainly missing; then a refusal added to surface.REFUSED, with its reason."""
    assert _corpus("missing_name")["set_trace(...)"] == {check.UNSUPPORTED}
    monkeypatch.setitem(surface.REFUSED, "celery.app.task.Task.request", "no requests here")
    report = check.check_path(CORPUS / "aliases")
    request = next(f for f in report.findings if f.api == "Task.request")
    assert (request.status, request.note) == (check.UNSUPPORTED, "no requests here")


def test_result_backend_none_is_supported() -> None:
    assert _corpus("result_backend_none")["result_backend=None"] == {check.SUPPORTED}


def test_aliases_are_followed(facade_objects) -> None:
    found = _corpus("aliases")
    replace = _resolved(facade_objects.task, "replace", "celery.app.task.Task.replace")
    assert found["Task.replace"] == {replace}
    assert found["Task.definitely_not_a_celery_method_xyz"] == {check.UNSUPPORTED}
    assert found["Task.also_not_a_celery_method_xyz"] == {check.UNSUPPORTED}
    assert found["Celery.not_an_app_attribute_xyz"] == {check.UNSUPPORTED}
    assert found["st"] == {check.SUPPORTED}  # shared_task imported as st
    assert found["c.Celery(...)"] == {check.SUPPORTED}
    assert found["celery_app.task"] == {check.SUPPORTED}  # the app under another name
    assert found["broker_url='redis://localhost:6379/0'"] == {check.SUPPORTED}
    assert "Task.retries_seen" not in found  # the subclass's own attribute


def test_control_and_inspect_follow_the_facade(facade_objects) -> None:
    found = _corpus("control")
    with pytest.raises((AttributeError, UnsupportedFeature)):  # missing, or refused by name
        facade_objects.app.control.pool_restart()
    assert found["Control.pool_restart"] == {check.UNSUPPORTED}
    assert found["Control.enable_events"] == {check.SUPPORTED}  # the workers' Celery events
    assert found["Control.rate_limit"] == {check.SUPPORTED}  # sent to the workers
    assert found["Control.revoke"] == {check.SUPPORTED}
    assert found["revoke(destination)=['w1@host']"] == {check.DIFFERENT}  # shared by all
    assert found["Inspect.active"] == {check.SUPPORTED}  # app.control.inspect() followed
    assert found["Inspect.not_an_inspect_method_xyz"] == {check.UNSUPPORTED}


def test_inspect_flags_are_inspects() -> None:
    found = _corpus("inspect_flags")
    for flag in ("-t", "-d", "--timeout", "--destination"):
        assert found[f"celery inspect {flag}"] == {check.SUPPORTED}, flag
    assert set().union(*found.values()) == {check.SUPPORTED}


def test_pool_given_by_a_variable() -> None:
    findings = check.check_path(CORPUS / "pool_variable").findings
    pools = {f.line: (f.api, f.status) for f in findings if f.api.startswith(("--pool", "-P"))}
    assert pools == {
        2: ("--pool='threads'", check.SUPPORTED),
        3: ("--pool", check.CHECK),
        4: ("-P='prefork'", check.SUPPORTED),
    }


def test_yaml_command_lines() -> None:
    """Quoted, flow list, block list, folded and literal (a script) commands; Kubernetes'
    command + args."""
    findings = check.check_path(CORPUS / "yaml_quoted").findings
    pools = {
        (f.file, f.line): (f.api, f.status) for f in findings if f.api.startswith(("--pool", "-P"))
    }
    assert pools == {
        ("docker-compose.yml", 4): ("-P='threads'", check.SUPPORTED),
        ("docker-compose.yml", 7): ("-P='solo'", check.SUPPORTED),
        ("docker-compose.yml", 11): ("--pool='prefork'", check.SUPPORTED),
        ("docker-compose.yml", 19): ("-P='threads'", check.SUPPORTED),
        ("docker-compose.yml", 28): ("-P='gevent'", check.SUPPORTED),
        ("deployment.yaml", 5): ("--pool='prefork'", check.SUPPORTED),
    }
    beat = [f for f in findings if f.api == "celery beat"]
    assert [(f.line, f.status) for f in beat] == [(30, check.SUPPORTED)]


def test_beat_command_lines_are_judged_by_the_beat_command(tmp_path: Path) -> None:
    (tmp_path / "Procfile").write_text(
        "beat: celery -A proj beat -l INFO -S django --max-interval 10 --pidfile=\n"
        "beat2: celery -A proj beat --detach --uid celery\n"
        "worker: celery -A proj worker -B --scheduler redbeat.RedBeatScheduler -s /tmp/s\n"
    )
    findings = check.check_path(tmp_path).findings
    statuses = {(f.line, f.api): f.status for f in findings}
    assert statuses[(1, "celery beat")] == check.SUPPORTED
    assert {s for (line, _), s in statuses.items() if line in (1, 3)} == {
        check.SUPPORTED, check.DIFFERENT,  # -B: beat in a thread, one leader
    }  # fmt: skip
    assert statuses[(2, "celery beat --detach")] == check.UNSUPPORTED
    assert statuses[(2, "celery beat --uid")] == check.UNSUPPORTED


def test_deployment_files() -> None:
    """Dockerfile exec form, systemd and Makefile continuations, supervisord, Procfile, and
    a shell script where ``celery`` is also a package and a directory name."""
    findings = check.check_path(CORPUS / "deployment_files").findings
    unsupported = {(f.file, f.line, f.api) for f in findings if f.status == check.UNSUPPORTED}
    assert unsupported == {("Procfile", 1, "-P='eventlet'")}
    statuses = {(f.file, f.api): f.status for f in findings}
    assert statuses[("supervisord.conf", "--autoscale")] == check.SUPPORTED
    assert statuses[("worker.service", "--pool='prefork'")] == check.SUPPORTED
    workers = {f.file for f in findings if f.api == "celery worker"}
    assert workers == {
        "Dockerfile", "Makefile", "Procfile", "supervisord.conf", "worker.service", "setup.sh",
    }  # fmt: skip
    assert {f.line for f in findings if f.file == "setup.sh"} == {4}  # not pip's nor mkdir's
    assert ("Makefile", 2, "-c") in {(f.file, f.line, f.api) for f in findings}


def test_requirements_built_on_celery() -> None:
    findings = check.check_path(CORPUS / "requirements").findings
    required = {(f.file, f.api): f for f in findings}
    assert set(required) == {
        ("requirements.txt", "requires django-celery-beat"),
        ("requirements.txt", "requires sentry-sdk"),
        ("requirements.txt", "requires flower"),
        ("pyproject.toml", "requires django-celery-results"),
        ("pyproject.toml", "requires opentelemetry-instrumentation-celery"),
        ("pyproject.toml", "requires celery-redbeat"),
    }
    sentry = required[("requirements.txt", "requires sentry-sdk")]
    assert sentry.status == check.UNSUPPORTED and "SpinachIntegration" in sentry.note
    assert required[("requirements.txt", "requires django-celery-beat")].line == 2


def test_requirements_in_setup_files_and_pipfile() -> None:
    findings = check.check_path(CORPUS / "requirements_other").findings
    assert {(f.file, f.line, f.api, f.status) for f in findings} == {
        ("Pipfile", 2, "requires django-structlog", check.SUPPORTED),
        ("setup.cfg", 7, "requires celery-once", check.CHECK),
        ("setup.cfg", 10, "requires flower", check.SUPPORTED),
        ("setup.py", 5, "requires django-celery-email", check.CHECK),
        ("setup.py", 6, "requires celery-progress", check.CHECK),
    }


def test_third_party_table_statuses() -> None:
    """One table, honest statuses; every section it names exists."""
    assert set(thirdparty.PACKAGES) >= {
        "django-celery-beat", "django-celery-results", "django-structlog", "sentry-sdk",
        "opentelemetry-instrumentation-celery", "celery-redbeat", "flower", "celery-once",
        "celery-singleton", "django-celery-email", "celery-progress", "openwisp-utils",
    }  # fmt: skip
    ways_out = {"sentry-sdk": "spinach.contrib.sentry",
                "opentelemetry-instrumentation-celery": "spinach.contrib.otel"}  # fmt: skip
    for name, way_out in ways_out.items():
        assert thirdparty.PACKAGES[name].status == thirdparty.REFUSED
        assert way_out in thirdparty.PACKAGES[name].note
    assert thirdparty.PACKAGES["flower"].status == thirdparty.WORKS  # compat/test_events.py
    for name in ("django-celery-beat", "celery-redbeat"):  # tests/compat/test_beat_schedulers.py
        assert thirdparty.PACKAGES[name].status == thirdparty.WORKS
    for name in ("django-celery-results",):  # tests/compat/test_django_results.py
        assert thirdparty.PACKAGES[name].status == thirdparty.WORKS
    step = thirdparty.package_of_module("django_structlog.celery.steps")
    assert step is not None and step[1].status == thirdparty.REFUSED  # its receivers work
    file, _, anchor = thirdparty.SECTION.partition("#")
    assert anchor in _anchors(GUIDE / file)
