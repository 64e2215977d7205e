#!/usr/bin/env bash
# The README's first command: set up (idempotent, seconds when already done) and start the app
# on the default model (weights/demo, or $PLEURA_BUNDLE). Open http://localhost:8501
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/pleura app --address "${PLEURA_ADDRESS:-localhost}" --port "${PLEURA_PORT:-8501}"
