#!/usr/bin/env bash
# Run the Spinach demo (README, "Quick start"): bash scripts/demo.sh [--verbose]
#
# The first run creates .venv with python3 (3.10 or newer; set PYTHON to pick another
# interpreter) and installs the project into it; later runs reuse it. No server is needed:
# the demo runs on the in-process MemoryBroker.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# shellcheck source=scripts/_env.sh
source scripts/_env.sh

ensure_venv
ensure_installed ""
exec "$PY" -m spinach.demo "$@"
