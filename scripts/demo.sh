#!/usr/bin/env bash
# Run the Spinach demo (README, "Quick start"): bash scripts/demo.sh [--verbose] [--dashboard]
#
# The first run creates .venv with python3 (3.10 or newer; set PYTHON to pick another
# interpreter) and installs the project into it; later runs reuse it. No server is needed:
# the demo runs on the in-process MemoryBroker. With --dashboard it installs the dashboard's
# dependencies too, and serves the dashboard of the demo once it is over, until Ctrl-C.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# shellcheck source=scripts/_env.sh
source scripts/_env.sh

ensure_venv
case " $* " in
*" --dashboard "* | *" --dashboard="*) ensure_installed "[dashboard]" ;;
*) ensure_installed "" ;;
esac
exec "$PY" -m spinach.demo "$@"
