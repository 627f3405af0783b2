"""The worker's process options, as Celery's: file names with ``%`` abbreviations,
``--uid`` / ``--gid`` and ``-D/--detach``.

``node_format`` expands what Celery's ``celery.utils.nodenames.node_format`` does in
``--logfile`` and ``--pidfile``: ``%h`` the node's host, ``%n`` its name, ``%d`` the
host's domain, ``%p`` the whole node name, ``%i`` the pool process index (0 in the main
process, 1..N in a prefork child) and ``%I`` the same with a dash, empty in the main
process (``worker-%I.log`` gives ``worker.log``, then ``worker-1.log``...), ``%%`` a
percent sign; any other is an error, as in Celery.

``drop_privileges`` switches to ``--uid`` (a name or a number; its primary group unless
``--gid`` says otherwise) and ``--gid`` as Celery's ``maybe_drop_privileges``: after the app
loaded, before the worker opens its files and runs any task; its children inherit it.

``detach`` starts the worker in the background as Celery's ``-D``: it refuses, in the
foreground, a pidfile held by a live process; it forks, starts a new session, forks again,
applies ``--umask``, sends stdin to /dev/null and stdout/stderr to the log file (or
/dev/null), then runs this command line again without ``-D`` in the detached process, which
writes the pidfile. Unlike Celery's, it stays in the current directory (Celery's moves to
``--workdir``, else ``/``), so relative paths keep their meaning.
"""

from __future__ import annotations

import grp
import os
import pwd
import re
import socket
import sys
from collections.abc import Sequence

from spinach.supervisor import INDEX_VARIABLE

_ABBREVIATION = re.compile(r"%(.)")


class DaemonError(Exception):
    """A process option that cannot be honoured: the message says which and why."""


def process_index() -> int:
    """This process's index in its prefork pool: 0 for the main process."""
    from .prefork import is_child

    return int(os.environ.get(INDEX_VARIABLE, "0")) if is_child() else 0


def node_format(text: str | None, nodename: str, index: int | None = None) -> str | None:
    """``text`` with Celery's ``%`` abbreviations expanded for ``nodename`` (see above)."""
    if not text:
        return text
    name, host = nodename.split("@", 1) if "@" in nodename else ("celery", nodename)
    host = host or socket.gethostname()
    index = process_index() if index is None else index
    keys = {
        "h": host, "n": name, "d": host.partition(".")[2], "p": nodename,
        "i": str(index), "I": f"-{index}" if index else "", "%": "%",
    }  # fmt: skip

    def expand(match: re.Match[str]) -> str:
        if match[1] not in keys:
            raise DaemonError(f"unknown abbreviation %{match[1]} in {text!r}")
        return keys[match[1]]

    return _ABBREVIATION.sub(expand, text)


def parse_uid(uid: str) -> int:
    """A user id from a number or a user name."""
    try:
        return int(uid)
    except ValueError:
        try:
            return pwd.getpwnam(uid).pw_uid
        except KeyError:
            raise DaemonError(f"--uid {uid}: no such user") from None


def parse_gid(gid: str) -> int:
    """A group id from a number or a group name."""
    try:
        return int(gid)
    except ValueError:
        try:
            return grp.getgrnam(gid).gr_gid
        except KeyError:
            raise DaemonError(f"--gid {gid}: no such group") from None


def drop_privileges(uid: str | None, gid: str | None) -> None:
    """Become ``uid`` / ``gid`` (see the module docstring); a no-op when already them."""
    user = parse_uid(uid) if uid else None
    group = parse_gid(gid) if gid else None
    if user is not None and group is None:
        group = _primary_group(user)
    try:
        if group is not None and group != os.getgid():
            if user is not None:
                os.initgroups(pwd.getpwuid(user).pw_name, group)
            os.setgid(group)
        if user is not None and user != os.getuid():
            os.setuid(user)
    except (OSError, KeyError) as exc:
        raise DaemonError(
            f"cannot switch to uid {user} gid {group}: {exc} (only root can drop privileges "
            "to another user)"
        ) from None
    if user is not None and user != 0 and 0 in (os.getuid(), os.geteuid()):
        raise DaemonError("still root after dropping privileges")


def _primary_group(user: int) -> int | None:
    try:
        return pwd.getpwuid(user).pw_gid
    except KeyError:
        return None


def parse_umask(text: str | None) -> int | None:
    """``--umask``: octal when it starts with 0 (as Celery), else decimal."""
    if text is None:
        return None
    try:
        return int(text, 8 if text.startswith("0") else 10)
    except ValueError:
        raise DaemonError(f"--umask {text}: expected a number such as 022") from None


def without_detach(argv: Sequence[str]) -> list[str]:
    """The command line less ``-D`` / ``--detach`` (the detached process runs it)."""
    return [arg for arg in argv if arg not in ("-D", "--detach")]


def detach(argv: Sequence[str], logfile: str | None, umask: int | None,
           executable: str | None = None) -> None:  # fmt: skip
    """Run ``python -m spinach_compat_cli ARGV`` detached; the calling process exits 0."""
    if os.fork():
        os._exit(0)  # the foreground process: the shell gets its prompt back
    os.setsid()
    if os.fork():
        os._exit(0)  # the session leader: the worker can never get a terminal again
    if umask is not None:
        os.umask(umask)
    _redirect(logfile)
    python = executable or sys.executable
    os.execv(python, [python, "-m", "spinach_compat_cli", *argv])  # patches -P gevent first


def _redirect(logfile: str | None) -> None:
    """stdin from /dev/null; stdout and stderr to ``logfile`` (appended) or /dev/null."""
    null = os.open(os.devnull, os.O_RDWR)
    out = os.open(logfile, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644) if logfile else null
    os.dup2(null, 0)
    os.dup2(out, 1)
    os.dup2(out, 2)
