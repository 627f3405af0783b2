# Shared by scripts/demo.sh and scripts/test.sh (sourced, not run): the virtualenv and
# what installs into it. Expects to be sourced from the repository root.

VENV=.venv
PY="$VENV/bin/python"

say() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# Install Debian packages, with sudo when not root (sudo -n without a terminal).
apt_install() {
    command -v apt-get >/dev/null 2>&1 || die "no apt-get here: install $* yourself, then re-run"
    local sudo=()
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null 2>&1 || die "installing $* needs root or sudo"
        if [ -t 0 ]; then sudo=(sudo); else sudo=(sudo -n); fi
    fi
    local log
    log=$(mktemp)
    if ! { ${sudo[@]+"${sudo[@]}"} apt-get update -q \
        && ${sudo[@]+"${sudo[@]}"} env DEBIAN_FRONTEND=noninteractive \
            apt-get install -y -q "$@"; } >"$log" 2>&1; then
        cat "$log" >&2
        rm -f "$log"
        die "apt-get install $* failed"
    fi
    rm -f "$log"
}

# Create .venv if it is missing or has no working pip.
ensure_venv() {
    if [ -x "$PY" ] && "$PY" -m pip --version >/dev/null 2>&1; then
        return
    fi
    local python=${PYTHON:-python3}
    command -v "$python" >/dev/null 2>&1 || die "$python not found: install Python 3.10 or newer"
    "$python" -c 'import sys; sys.exit(sys.version_info < (3, 10))' \
        || die "Python 3.10 or newer is needed; $python is $("$python" -V 2>&1)"
    say "creating $VENV with $("$python" -V 2>&1)"
    rm -rf "$VENV"
    if ! "$python" -m venv "$VENV" >/dev/null 2>&1; then
        say "installing python3-venv (apt-get)"
        rm -rf "$VENV"
        apt_install python3-venv
        "$python" -m venv "$VENV" || die "cannot create $VENV with $python"
    fi
}

# pip install -e ".$1" unless already done for this pyproject.toml ($1: "", "[test]" or
# "[dashboard]"; the test extras include the dashboard's).
ensure_installed() {
    local extras=$1 digest
    local stamp="$VENV/.spinach-installed${extras:+-${extras//[^a-z]/}}"
    digest=$("$PY" -c 'import hashlib; print(hashlib.sha256(open("pyproject.toml", "rb").read()).hexdigest())')
    if [ "$(cat "$stamp" 2>/dev/null)" = "$digest" ] \
        && "$PY" -c 'import importlib.metadata as m; m.version("spinach-queue")' 2>/dev/null; then
        return
    fi
    say "installing spinach-queue${extras} into $VENV (pip install -e '.${extras}')"
    PIP_NO_INPUT=1 "$PY" -m pip install --quiet --disable-pip-version-check -e ".${extras}"
    echo "$digest" >"$stamp"
    [ -z "$extras" ] || echo "$digest" >"$VENV/.spinach-installed"  # the extras include it
}
