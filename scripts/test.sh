#!/usr/bin/env bash
# Run the test suite (README, "Quick start"): bash scripts/test.sh [pytest arguments]
#
# The first run creates .venv with python3 (3.10 or newer; set PYTHON to pick another
# interpreter) and installs the project with its test extras; later runs reuse it. It makes
# sure a redis-server binary exists, installing Debian's package if needed: the tests start
# and stop throwaway servers of their own on free ports, never the system service; likewise
# Debian's chromium, for the dashboard's browser tests (SPINACH_CHROMIUM: another path). Exits
# with pytest's status, except that collecting no test at all is a failure (1). Before the
# tests it type-checks spinach and spinach_compat with mypy ([tool.mypy] in pyproject.toml,
# cached in .mypy_cache); a mypy failure does not stop the tests but makes the script exit 1
# if pytest itself passed. SKIP_MYPY=1 skips the check (for quick local runs).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# shellcheck source=scripts/_env.sh
source scripts/_env.sh

# Print the path of redis-server: on PATH or in the usual system directories.
find_redis_server() {
    local candidate
    if candidate=$(command -v redis-server 2>/dev/null); then
        echo "$candidate"
        return 0
    fi
    for candidate in /usr/bin/redis-server /usr/sbin/redis-server /usr/local/bin/redis-server; do
        if [ -x "$candidate" ]; then
            echo "$candidate"
            return 0
        fi
    done
    return 1
}

# Make sure redis-server exists and its directory is on PATH for the tests.
ensure_redis_server() {
    local server
    if ! server=$(find_redis_server); then
        say "installing redis-server (apt-get)"
        apt_install redis-server
        server=$(find_redis_server) || die "redis-server is still missing after installing it"
    fi
    PATH="$(dirname "$server"):$PATH"
    export PATH
    say "using $("$server" --version | cut -d' ' -f1-3) from $server"
}

# Make sure Debian's chromium exists: the dashboard's browser tests drive it through
# Playwright (tests/support/browser.py), which cannot download a browser of its own.
ensure_chromium() {
    local browser=${SPINACH_CHROMIUM:-/usr/bin/chromium}
    if [ ! -x "$browser" ]; then
        say "installing chromium (apt-get) for the dashboard's browser tests"
        apt_install chromium
        [ -x "$browser" ] || die "$browser is still missing after installing chromium"
    fi
}

ensure_venv
ensure_installed "[test]"
ensure_redis_server
ensure_chromium
typed=0
if [ "${SKIP_MYPY:-0}" != 1 ]; then
    say "type-checking: python -m mypy (spinach, spinach_compat)"
    "$PY" -m mypy || typed=$?
fi
say "running the tests: python -m pytest $*"
status=0
"$PY" -m pytest "$@" || status=$?
if [ "$status" -eq 5 ]; then
    say "no test was collected: failing"
    exit 1
fi
if [ "$status" -eq 0 ] && [ "$typed" -ne 0 ]; then
    say "the tests passed but mypy failed (above): failing"
    exit 1
fi
exit "$status"
