"""One virtualenv per implementation under ``bench/.peers/<name>``, installed once.

Stdlib only: this runs before any of them exists. A venv is re-used while the marker file
it holds matches what it was built from (the requirements file, or our ``pyproject.toml``
for ``ours``, and the Python version); otherwise it is built again from scratch.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent
REPO = BENCH.parent
PEERS = BENCH / ".peers"
MARKER = ".bench-installed.json"

#: Seconds one ``pip install`` gets (a slow mirror, a package built from source).
INSTALL_TIMEOUT = 900


@dataclass(frozen=True)
class Venv:
    """A virtualenv: its directory name and what is installed in it."""

    name: str
    requirements: str | None  #: file name in bench/, or None for ours (``pip install -e``)

    @property
    def path(self) -> Path:
        return PEERS / self.name

    @property
    def python(self) -> Path:
        return self.path / "bin" / "python"

    def pip_arguments(self) -> list[str]:
        """What ``pip install`` is given."""
        if self.requirements is None:
            return ["-e", f"{REPO}[gevent,prometheus]"]  # workload 9 runs -P gevent; ours+metrics
        return ["-r", str(BENCH / self.requirements)]

    def fingerprint(self, python: str) -> str:
        """A digest of what the venv is built from."""
        source = REPO / "pyproject.toml" if self.requirements is None else BENCH / self.requirements
        version = subprocess.run(
            [python, "-c", "import sys; print(sys.version)"],
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
        # ours is an editable install of this checkout: a venv copied from another
        # worktree would measure that worktree's code, so the path is part of the digest.
        where = str(REPO).encode() if self.requirements is None else b""
        return hashlib.sha256(source.read_bytes() + version.encode() + where).hexdigest()


VENVS = {
    "ours": Venv("ours", None),
    "spinach-upstream": Venv("spinach-upstream", "requirements-spinach-upstream.txt"),
    "celery": Venv("celery", "requirements-celery.txt"),
    "dramatiq": Venv("dramatiq", "requirements-dramatiq.txt"),
    "huey": Venv("huey", "requirements-huey.txt"),
    "rq": Venv("rq", "requirements-rq.txt"),
}


def installed(venv: Venv, python: str) -> dict | None:
    """The marker of ``venv`` if it is installed from what it should be, else None."""
    marker = venv.path / MARKER
    if not venv.python.exists() or not marker.exists():
        return None
    data = json.loads(marker.read_text())
    return data if data.get("fingerprint") == venv.fingerprint(python) else None


def ensure(venv: Venv, python: str, reinstall: bool = False) -> dict:
    """Install ``venv`` with ``python`` unless it is already; its marker (with pip freeze)."""
    marker = None if reinstall else installed(venv, python)
    if marker is not None:
        return marker
    print(f"[bench] installing {venv.name} into {venv.path} ...", file=sys.stderr, flush=True)
    shutil.rmtree(venv.path, ignore_errors=True)
    venv.path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([python, "-m", "venv", str(venv.path)], check=True)
    pip = [str(venv.python), "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "install", *venv.pip_arguments()], check=True, timeout=INSTALL_TIMEOUT)
    freeze = subprocess.run(
        [*pip, "freeze"], capture_output=True, text=True, check=True
    ).stdout.split()
    marker = {"fingerprint": venv.fingerprint(python), "freeze": freeze}
    (venv.path / MARKER).write_text(json.dumps(marker, indent=2))
    return marker
