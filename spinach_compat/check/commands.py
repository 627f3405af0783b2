"""``celery`` command lines in deployment files, and their sub-commands and flags.

Each kind of file is read as its format says: shell scripts, Makefiles and systemd units
join lines ending with a backslash; Dockerfiles also read the exec form
(``CMD ["celery", "-A", "proj", "worker"]``); YAML reads ``command:`` values given as a
(quoted) string, a flow or block list, or a block scalar. A sub-command and its flags are
judged against the facade's own command-line parser (``spinach_compat.bin.celery``); the
worker's flags through ``RULES``, where a flag's value matters.
"""

from __future__ import annotations

import argparse
import functools
import json
import re
import shlex
from collections.abc import Iterator

from .facade import Verdict
from .report import Report
from .rules import RULES, S_CLI, SUPPORTED, UNKNOWN, UNSUPPORTED, rule_for
from .yamlish import logical_lines, yaml_values

#: Files whose lines may hold a ``celery ... worker`` command.
COMMAND_FILES = re.compile(
    r"(^Procfile|^Dockerfile|\.[Dd]ockerfile$|^Makefile|^GNUmakefile|\.mk$|"
    r"\.(sh|bash|ya?ml|ini|cfg|conf|service|toml|env)$)"
)
YAML_FILES = re.compile(r"\.ya?ml$")
PROGRAMS = ("celery", "spinach-compat")
SEPARATORS = frozenset({"&&", "||", ";", "|", "&", "(", ")", ";;"})
#: Global options taking a value: their value is not the sub-command.
GLOBAL_VALUE_FLAGS = frozenset({
    "-A", "--app", "-b", "--broker", "--result-backend", "--loader", "--config", "--workdir",
})  # fmt: skip
VALUE_FLAGS = frozenset({"-P", "--pool"})  #: flags judged on their value
#: Celery's sub-commands: a word after ``celery`` that is none of these (``pip install celery
#: redis``, "skip celery check") makes the line no celery command.
SUBCOMMANDS = frozenset({
    "worker", "beat", "inspect", "purge", "multi", "flower", "events", "control", "shell",
    "call", "result", "status", "report", "migrate", "graph", "upgrade", "amqp", "list",
    "logtool",
})  # fmt: skip
DEFAULTED = re.compile(r"^\$\{\w+:?[-=](?P<default>[^}]*)\}$")  # ${VAR:-default}


def scan_file(report: Report, file: str, text: str) -> None:
    """Report the ``celery`` command lines of a deployment file."""
    lines = yaml_values(text) if YAML_FILES.search(file) else logical_lines(text)
    for number, line in lines:
        scan_command_line(report, file, number, line)


def scan_command_line(report: Report, file: str, number: int, line: str) -> None:
    """Report the sub-command and flags of each ``celery`` command in ``line``."""
    for words in commands_in(line):
        _scan_words(report, file, number, words)


def commands_in(line: str) -> Iterator[list[str]]:
    """The words after ``celery`` (or ``spinach-compat``) of each command in ``line``."""
    exec_form = re.search(r"\[\s*\".*\"\s*\]", line)
    if exec_form:
        words = _json_words(exec_form.group(0))
        if words is not None:
            line = shlex.join(words)
    words = _words(line)
    for index, word in enumerate(words):
        if " " in word and any(p in word for p in PROGRAMS):  # sh -c "celery -A proj worker"
            yield from commands_in(word)
        elif _is_program(word):
            rest = words[index + 1 :]
            end = next((i for i, w in enumerate(rest) if w in SEPARATORS), len(rest))
            yield rest[:end]


def _json_words(text: str) -> list[str] | None:
    try:
        words = json.loads(text)
    except ValueError:
        return None
    return words if all(isinstance(w, str) for w in words) else None


def _words(line: str) -> list[str]:
    lexer = shlex.shlex(line, posix=True, punctuation_chars=";&|()")
    lexer.whitespace_split = True
    lexer.commenters = "#"
    try:
        return list(lexer)
    except ValueError:  # unbalanced quotes: words split on blanks
        return line.split()


def _is_program(word: str) -> bool:
    word = word.lstrip("@").rsplit("/", 1)[-1]
    return word in PROGRAMS


def _scan_words(report: Report, file: str, number: int, words: list[str]) -> None:
    index = _subcommand_index(words)
    if index is None:
        return
    command = words[index]
    if not _add_subcommand(report, file, number, command):
        return  # flags of a sub-command to remove (beat) or that does not exist: not judged
    if command == "control":
        _add_control_action(report, file, number, words[index + 1 :])
    for position, word in enumerate(words):
        if position == index or not word.startswith("-") or word == "-":
            continue
        if command == "multi" and position > index and _multi_own(word):
            continue  # multi's own options and -SIGNAL: the flags given to workers are judged
        flag, value = _split_flag(word.split(":", 1)[0] if command == "multi" else word, words,
                                  position)  # fmt: skip
        scope = "worker" if command == "multi" else command if position > index else ""
        _add_flag(report, file, number, scope, flag, value)


#: ``multi``'s own options (the others go to each worker).
MULTI_OPTIONS = frozenset({
    "--nosplash", "--quiet", "-q", "--verbose", "--no-color", "--hostname", "--prefix",
    "--suffix", "--range-prefix", "--executable", "--append",
})  # fmt: skip
#: ``control``'s options taking a value (before the command's name).
CONTROL_VALUE_FLAGS = frozenset({"-t", "--timeout", "-d", "--destination"})


def _multi_own(word: str) -> bool:
    from ..bin.nodes import signal_number

    return word.partition("=")[0] in MULTI_OPTIONS or signal_number(word[1:]) is not None


def _add_control_action(report: Report, file: str, number: int, words: list[str]) -> None:
    """``control COMMAND``: Celery's commands are sent to the workers; those they answer
    with an error (no events, no pool restart) are refused, as unknown ones."""
    from ..worker.control import Panel
    from ..worker.control_commands import REFUSED

    skip = False
    for word in words:
        if skip or word.startswith("-"):
            skip = not skip and word in CONTROL_VALUE_FLAGS
            continue
        section = rule_for("cli:control").section
        info = Panel.meta.get(word)
        if word in REFUSED:
            verdict = Verdict(UNSUPPORTED, REFUSED[word], section)
        elif info is not None and info.type == "control":
            verdict = Verdict(SUPPORTED, "", section)
        else:
            why = "no such control command (unless the project registers it: control_command)"
            verdict = Verdict(UNSUPPORTED, why, section)
        report.add_verdict(file, number, f"celery control {word}", verdict)
        return


def _subcommand_index(words: list[str]) -> int | None:
    """Where the sub-command is, skipping global options and their values."""
    skip = False
    for index, word in enumerate(words):
        if skip:
            skip = False
        elif word.startswith("-"):
            skip = word in GLOBAL_VALUE_FLAGS
        else:
            return index if word in SUBCOMMANDS else None
    return None


def _split_flag(word: str, words: list[str], position: int) -> tuple[str, str]:
    flag, _, value = word.partition("=")
    if not flag.startswith("--") and len(flag) > 2:
        flag, value = flag[:2], flag[2:]  # -Pprefork, -c4
    if not value and flag in VALUE_FLAGS and position + 1 < len(words):
        value = words[position + 1]
    return flag, value


def _add_subcommand(report: Report, file: str, number: int, command: str) -> bool:
    """Report the sub-command; whether it runs under spinach-compat as it does in Celery."""
    label = f"celery {command}"
    if f"cli:{command}" in RULES:
        report.add(file, number, f"cli:{command}", label=label)
    elif command not in facade_options():
        report.add(file, number, "cli:*", label=label)
    else:
        report.add_verdict(file, number, label, Verdict(SUPPORTED, "", S_CLI))
    return report.findings[-1].status == SUPPORTED


def _add_flag(report: Report, file: str, number: int, scope: str, flag: str, value: str) -> None:
    """A worker's (or global) flag through ``RULES``; another sub-command's through its parser."""
    if scope in ("", "worker"):
        if flag in VALUE_FLAGS:
            report.add(file, number, f"flag:{flag}", _variable_value(value))
        else:
            report.add(file, number, f"flag:{flag}", label=flag)
        return
    section = rule_for(f"cli:{scope}").section
    if f"flag:{scope}:{flag}" in RULES:  # in the parser but refused when given
        report.add(file, number, f"flag:{scope}:{flag}", label=f"celery {scope} {flag}")
        return
    if flag in facade_options().get(scope, frozenset()):
        verdict = Verdict(SUPPORTED, "", section)
    else:
        verdict = Verdict(UNSUPPORTED, f"not an option of spinach-compat {scope}", section)
    report.add_verdict(file, number, f"celery {scope} {flag}", verdict)


def _variable_value(value: str) -> object:
    """A flag's value; ``${VAR:-default}`` is judged on its default, ``$VAR`` is unknown."""
    match = DEFAULTED.match(value)
    if match:
        return match.group("default")
    return UNKNOWN if "$" in value else value


@functools.lru_cache(maxsize=1)
def facade_options() -> dict[str, frozenset[str]]:
    """The facade's sub-commands, each with its option strings."""
    from ..bin.celery import build_parser  # the facade's CLI: what it really accepts

    commands = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return {
        name: frozenset(flag for action in parser._actions for flag in action.option_strings)
        for name, parser in commands.choices.items()
    }
