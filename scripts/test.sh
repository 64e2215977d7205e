#!/usr/bin/env bash
# The README's test command: set up (with test tools) and run the default test suite.
# Heavier tests are opt-in: PLEURA_RUN_SLOW=1 bash scripts/test.sh  (or pass --run-slow).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --dev
exec .venv/bin/python -m pytest "$@"
