#!/usr/bin/env bash
# The README's test command: set up (with test tools) and run the default test suite.
# Heavier tests are opt-in: PLEURA_RUN_SLOW=1 bash scripts/test.sh  (or pass --run-slow).
#
# Offline by construction: when run as root with `unshare` available (CI, the Docker-less
# workstation check), the whole test run happens in a new network namespace that has only a
# loopback interface, so the CLI, batch, Dask and the app in a real browser are all shown to work
# with no network at all (PLEURA_TEST_OFFLINE=0 disables this).
#
# CI (CI=true) then also runs the container test (scripts/test-container.sh: builds the Docker image
# with podman and checks it; about 15 min from nothing, see README); both results are printed and
# either failing fails the run. Elsewhere it is opt-in: bash scripts/test-container.sh
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --dev
# CI also runs the long fuzz profile (about 2 min), on a fixed seed so a run is reproducible.
if [ "${CI:-}" = "true" ]; then export PLEURA_FUZZ_LONG="${PLEURA_FUZZ_LONG:-ci}"; fi
rc=0
if [ "${PLEURA_TEST_OFFLINE:-1}" = "1" ] && [ "$(id -u)" = "0" ] && command -v unshare >/dev/null \
   && unshare --net true 2>/dev/null; then
  IP=$(command -v ip || echo /usr/sbin/ip)
  echo "==> running the tests with networking removed (unshare --net; loopback only)"
  export PLEURA_TESTS_OFFLINE=1
  unshare --net sh -c "$IP link set lo up && exec .venv/bin/python -m pytest \"\$@\"" pytest "$@" || rc=$?
else
  .venv/bin/python -m pytest "$@" || rc=$?
fi
if [ "${CI:-}" = "true" ] && [ "${PLEURA_CI_CONTAINER:-1}" = "1" ]; then
  # the image build needs the package registries: it runs outside the offline namespace; its checks
  # run without network again (see the script)
  echo "==> container test (CI): bash scripts/test-container.sh"
  crc=0
  bash scripts/test-container.sh || crc=$?
  echo "==> pytest exit $rc; container test exit $crc"
  if [ "$rc" = "0" ]; then rc=$crc; fi
fi
exit "$rc"
