#!/usr/bin/env bash
# The README's test command: set up (with test tools) and run the default test suite.
# Heavier tests are opt-in: PLEURA_RUN_SLOW=1 bash scripts/test.sh  (or pass --run-slow).
#
# Offline by construction: when run as root with `unshare` available (CI, the Docker-less
# workstation check), the whole test run happens in a new network namespace that has only a
# loopback interface, so the CLI, batch, Dask and the app in a real browser are all shown to work
# with no network at all (PLEURA_TEST_OFFLINE=0 disables this).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --dev
# CI also runs the long fuzz profile (about 2 min), on a fixed seed so a run is reproducible.
if [ "${CI:-}" = "true" ]; then export PLEURA_FUZZ_LONG="${PLEURA_FUZZ_LONG:-ci}"; fi
if [ "${PLEURA_TEST_OFFLINE:-1}" = "1" ] && [ "$(id -u)" = "0" ] && command -v unshare >/dev/null \
   && unshare --net true 2>/dev/null; then
  IP=$(command -v ip || echo /usr/sbin/ip)
  echo "==> running the tests with networking removed (unshare --net; loopback only)"
  export PLEURA_TESTS_OFFLINE=1
  exec unshare --net sh -c "$IP link set lo up && exec .venv/bin/python -m pytest \"\$@\"" pytest "$@"
fi
exec .venv/bin/python -m pytest "$@"
