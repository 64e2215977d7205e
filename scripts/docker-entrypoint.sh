#!/usr/bin/env bash
# One entrypoint for both uses: no argument or "app" starts the Streamlit app; anything else
# (e.g. "pleura batch …", "pleura --help") is run as given.
set -euo pipefail
if [ "$#" -eq 0 ] || [ "$1" = "app" ]; then
  exec pleura app --address "${PLEURA_ADDRESS:-0.0.0.0}" --port "${PLEURA_PORT:-8501}"
fi
exec "$@"
