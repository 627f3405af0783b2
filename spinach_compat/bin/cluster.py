"""``spinach-compat multi``: start and stop several detached workers, as ``celery multi``.

Examples::

    spinach-compat multi start w1 w2 -A proj -c 2 --pidfile=/run/celery/%n.pid \\
        --logfile=/var/log/celery/%n%I.log
    spinach-compat multi stopwait w1 w2 --pidfile=/run/celery/%n.pid
    spinach-compat multi restart 3 -A proj -Q:1 images -Q default
    spinach-compat multi show w1 w2 -A proj -c 2

Nodes are named and optioned as Celery's (see ``spinach_compat.bin.nodes``). ``start``
runs each node's ``python -m spinach_compat ... worker`` in a session of its own, its
output appended to its logfile, and reports OK once the worker wrote its pid to its pidfile
(or FAILED with its exit status). ``stop`` sends SIGTERM (or ``-KILL``, ``-9``, ...) to the
pid each pidfile holds, a warm shutdown; ``stopwait`` also waits for them to exit;
``restart`` is ``stopwait`` then ``start``; ``kill`` sends SIGKILL. ``show``, ``names``,
``expand TEMPLATE`` and ``get NODE`` print the command lines, node names and expansions.
As Celery's: ``start`` and ``restart`` exit with status 1 when a node failed, ``stop`` with
0; an unknown command prints the usage and exits with status 1. The options must be given
again to ``stop`` (at least ``--pidfile``), as nothing is kept between runs.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable

from .nodes import Node, NodeError, build_nodes, parse_words, signal_number

EX_OK, EX_FAILURE = 0, 1

#: Seconds ``start`` waits for a worker to write its pidfile (it loads the app first);
#: longer tolerates slow imports, shorter reports a stuck start sooner.
START_TIMEOUT = 60.0

#: Seconds between two checks while waiting (a started worker's pidfile, a stopping worker's
#: exit): shorter answers sooner, each check is a file read or a signal 0.
POLL_INTERVAL = 0.05

USAGE = """\
usage: spinach-compat multi start <node1 node2 nodeN|count> [worker options]
       spinach-compat multi stop <n1 n2 nN|count> [-SIG (default: -TERM)] [--pidfile=...]
       spinach-compat multi stopwait <n1 n2 nN|count> [-SIG] [--pidfile=...]
       spinach-compat multi restart <n1 n2 nN|count> [-SIG] [worker options]
       spinach-compat multi kill <n1 n2 nN|count> [--pidfile=...]
       spinach-compat multi show <n1 n2 nN|count> [worker options]
       spinach-compat multi get <node> <n1 n2 nN|count> [worker options]
       spinach-compat multi names <n1 n2 nN|count>
       spinach-compat multi expand <template> <n1 n2 nN|count>
       spinach-compat multi help

options after the command: --nosplash, -q/--quiet, --verbose, --no-color"""


class Multi:
    """What ``multi`` prints, and its commands."""

    def __init__(self, quiet: bool = False, nosplash: bool = False, verbose: bool = False):
        self.quiet, self.nosplash, self.verbose = quiet, nosplash, verbose

    def say(self, text: str, newline: bool = True) -> None:
        print(text, end="\n" if newline else "", flush=True)

    def note(self, text: str, newline: bool = True) -> None:
        if not self.quiet:
            self.say(text, newline)

    def splash(self) -> None:
        from spinach import __version__ as spinach_version

        from .. import __version__ as api_version

        if not self.nosplash:
            self.note(f"spinach-compat multi v{spinach_version} (Celery {api_version} API)")

    def usage(self, error: str | None = None) -> int:
        if error:
            print(error, file=sys.stderr)
        self.splash()
        self.say(USAGE)
        return EX_FAILURE

    # -- commands ----------------------------------------------------------------------

    def start(self, words: list[str]) -> int:
        self.splash()
        self.note("> Starting nodes...")
        codes = [self._start_reporting(node, f"\t> {node.name}: ") for node in _nodes(words)]
        return int(any(codes))

    def stop(self, words: list[str], wait: bool = False) -> int:
        self.splash()
        self._stop(_nodes(words), _signal_of(words), wait, self._down)
        return EX_OK

    def stopwait(self, words: list[str]) -> int:
        return self.stop(words, wait=True)

    def restart(self, words: list[str]) -> int:
        self.splash()
        codes: list[int] = []

        def start_again(node: Node) -> None:
            codes.append(self._start_reporting(node, f"> Restarting node {node.name}: "))

        self._stop(_nodes(words), _signal_of(words), True, start_again)
        return int(any(codes))

    def kill(self, words: list[str]) -> int:
        self.splash()
        for node in _nodes(words):
            pid = read_pid(node.pidfile)
            if pid is None:
                self._down(node)
                continue
            self.note(f"Sending KILL to node {node.name} ({pid})")
            if not send(pid, signal.SIGKILL):
                self.note(f"Could not signal {node.name} ({pid}): No such process")
        return EX_OK

    def names(self, words: list[str]) -> int:
        self.say("\n".join(node.name for node in _nodes(words)))
        return EX_OK

    def show(self, words: list[str]) -> int:
        self.say("\n".join(" ".join([n.executable, *n.argv()]) for n in _nodes(words)))
        return EX_OK

    def get(self, words: list[str]) -> int:
        wanted, rest = (words[0], words[1:]) if words else ("", [])
        found = [node for node in _nodes(rest) if node.name == wanted]
        if not found:
            return EX_FAILURE
        self.say(" ".join(found[0].argv()))
        return EX_OK

    def expand(self, words: list[str]) -> int:
        template, rest = (words[0], words[1:]) if words else ("", [])
        self.say("\n".join(node.expand(template, final=False) for node in _nodes(rest)))
        return EX_OK

    def help(self, words: list[str]) -> int:
        self.say(__doc__ or "")
        return EX_OK

    # -- starting and stopping ---------------------------------------------------------

    def _start_reporting(self, node: Node, title: str) -> int:
        self.note(title, newline=False)
        code = self._start(node)
        self.note("FAILED" if code else "OK")
        return code

    def _start(self, node: Node) -> int:
        """Start the node's worker, detached; 0 once it wrote its pidfile, else a status."""
        argv = [node.executable, *node.argv()]
        if self.verbose:
            self.note(f"  {' '.join(argv)}")
        for path in (node.pidfile, node.logfile):
            if os.path.dirname(path):
                os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(node.logfile, "ab") as log:
            process = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True
            )
        code = wait_started(process, node.pidfile)
        if code < 0:
            self.note(f"* Child was terminated by signal {-code}")
        elif code:
            self.note(f"* Child terminated with exit code {code} (see {node.logfile})")
        return abs(code)

    def _stop(
        self, nodes: list[Node], sig: int, wait: bool, on_down: Callable[[Node], None]
    ) -> None:
        """Signal each node's pid; with ``wait``, until they exit. ``on_down`` for each node
        found down (no pidfile, no such process) or, waiting, once it exited."""
        live = []
        for node in nodes:
            pid = read_pid(node.pidfile)
            if pid is None:
                on_down(node)
            else:
                live.append((node, pid))
        if not live:
            return
        self.note("> Stopping nodes...")
        signalled = []
        for node, pid in live:
            self.note(f"\t> {node.name}: {signal.Signals(sig).name[3:]} -> {pid}")
            if send(pid, sig):
                signalled.append((node, pid))
            else:
                self.note(f"Could not signal {node.name} ({pid}): No such process")
                on_down(node)
        if wait:
            self._wait_for_exit(signalled, on_down)

    def _wait_for_exit(
        self, nodes: list[tuple[Node, int]], on_down: Callable[[Node], None]
    ) -> None:
        pending = list(nodes)
        while pending:
            count = len(pending)
            self.note(f"> Waiting for {count} node{'s' if count != 1 else ''} -> "
                      f"{', '.join(str(pid) for _, pid in pending)}...", newline=False)  # fmt: skip
            gone = _wait_for_one_exit(pending, lambda: self.note(".", newline=False))
            pending.remove(gone)
            self.note(f"\n\t> {gone[0].name}: OK")
            on_down(gone[0])
        self.note("")

    def _down(self, node: Node) -> None:
        self.note(f"> {node.name}: DOWN")


def _wait_for_one_exit(
    pending: list[tuple[Node, int]], tick: Callable[[], None]
) -> tuple[Node, int]:
    """The first of ``pending`` whose process is gone (``tick`` about every second)."""
    rounds = 0
    while True:
        for item in pending:
            if not alive(item[1]):
                return item
        rounds += 1
        if rounds % int(1 / POLL_INTERVAL) == 0:
            tick()
        time.sleep(POLL_INTERVAL)


def wait_started(process: subprocess.Popen, pidfile: str) -> int:
    """0 once ``pidfile`` holds the process's pid; its exit status (negative: a signal)
    if it exits first; 1 if neither happens within ``START_TIMEOUT`` (it is then killed)."""
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if read_pid(pidfile) == process.pid:
            return 0
        code = process.poll()
        if code is not None:
            return code
        time.sleep(POLL_INTERVAL)
    process.kill()
    process.wait()
    return EX_FAILURE


def read_pid(path: str) -> int | None:
    """The pid a pidfile holds (None: no file, or not a whole line with a number)."""
    try:
        with open(path) as file:
            line = file.readline()
    except OSError:
        return None
    if not line.endswith("\n") or not line.strip().isdigit():
        return None
    return int(line)


def send(pid: int, sig: int) -> bool:
    """Send ``sig`` to ``pid``; False if there is no such process (or not ours)."""
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, exited but not reaped, does not)."""
    if not send(pid, 0):
        return False
    try:
        with open(f"/proc/{pid}/stat") as file:
            return file.read().rpartition(")")[2].split()[0] != "Z"
    except (OSError, IndexError):
        return True  # no /proc: signal 0 is all we know


def _nodes(words: list[str]) -> list[Node]:
    return build_nodes(parse_words(words))


def _signal_of(words: list[str]) -> int:
    """The last ``-SIG`` of ``words`` (SIGTERM without one)."""
    signals = [signal_number(name) for name in parse_words(words).signals]
    return next((s for s in reversed(signals) if s is not None), int(signal.SIGTERM))


#: The commands of ``multi`` (``stop_verify``: Celery's old name of ``stopwait``).
COMMANDS: dict[str, Callable[[Multi, list[str]], int]] = {
    "start": Multi.start, "stop": Multi.stop, "stopwait": Multi.stopwait,
    "stop_verify": Multi.stopwait, "restart": Multi.restart, "kill": Multi.kill,
    "names": Multi.names, "show": Multi.show, "get": Multi.get, "expand": Multi.expand,
    "help": Multi.help,
}  # fmt: skip

#: Celery's reserved options of ``multi``: accepted anywhere after it.
RESERVED = {"--nosplash": "nosplash", "--quiet": "quiet", "-q": "quiet",
            "--verbose": "verbose", "--no-color": None}  # fmt: skip


def main(argv: list[str]) -> int:
    """``multi COMMAND ARGS`` (``argv`` starts with the command); the exit status."""
    flags = {name: False for name in ("quiet", "nosplash", "verbose")}
    words = []
    for word in argv:
        if word in RESERVED:
            if RESERVED[word]:
                flags[str(RESERVED[word])] = True
        else:
            words.append(word)
    multi = Multi(**flags)
    if not words or words[0].startswith("-"):
        return multi.usage()
    command = COMMANDS.get(words[0])
    if command is None:
        return multi.usage(f"Invalid command: {words[0]}")
    try:
        return command(multi, words[1:])
    except (NodeError, OSError) as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return EX_FAILURE
