#!/usr/bin/env bash
# Set up PleuraRisk from nothing: a virtual environment with every pinned dependency,
# PyRadiomics' install quirk handled, and the `pleura` command installed.
#
#   bash scripts/setup.sh          # runtime (app, CLI)
#   bash scripts/setup.sh --dev    # + test tools, Debian's chromium (browser tests), dicom3tools (dciodvfy)
#                                  #   and orthanc + orthanc-dicomweb (a real PACS for the PACS tests)
#
# Environment: PLEURA_VENV (default ./.venv; the Dockerfile uses /opt/venv),
#              PLEURA_PYTHON (default python3.11, else python3),
#              PLEURA_EDITABLE=0 to install the package non-editable,
#              PLEURA_TORCH_INDEX=URL: take torch from this index (the Dockerfile sets the
#              PyTorch CPU wheel index so the image never carries CUDA libraries; on this
#              project's machines torch 2.13.0 CPU comes from local disk and it stays unset).
# This same script is what the Dockerfile runs, so CI exercises the image's install path.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
DEV=0
for arg in "$@"; do
  case "$arg" in
    --dev) DEV=1 ;;
    *) echo "setup.sh: unknown option $arg" >&2; exit 2 ;;
  esac
done

PY=${PLEURA_PYTHON:-$(command -v python3.11 || command -v python3)}
VENV=${PLEURA_VENV:-$ROOT/.venv}
"$PY" - <<'PYCHECK'
import sys
if sys.version_info[:2] != (3, 11):
    sys.exit(f"PleuraRisk needs Python 3.11 (found {sys.version.split()[0]}); set PLEURA_PYTHON")
PYCHECK

if [ ! -x "$VENV/bin/python" ]; then
  echo "==> creating virtual environment $VENV"
  "$PY" -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check --no-input)

# Re-install only when the requirement files changed (keeps re-runs to about a second).
stamp="$VENV/.pleura-setup-stamp"
want=$(cat requirements.txt requirements-radiomics.txt pyproject.toml | sha256sum | cut -c1-16)
if [ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ]; then
  echo "==> installing numpy and CPU torch first (torch==2.13.0 is the CPU build)"
  if [ -n "${PLEURA_TORCH_INDEX:-}" ]; then
    "${PIP[@]}" install -q --index-url "$PLEURA_TORCH_INDEX" "$(grep -E '^torch==' requirements.txt)"
  fi
  "${PIP[@]}" install -q "$(grep -E '^numpy==' requirements.txt)" "$(grep -E '^torch==' requirements.txt)"
  echo "==> installing pinned requirements"
  "${PIP[@]}" install -q -r requirements.txt
  echo "==> installing PyRadiomics (needs numpy at build time: --no-build-isolation)"
  "${PIP[@]}" install -q setuptools wheel
  "${PIP[@]}" install -q --no-build-isolation -r requirements-radiomics.txt
  echo "==> installing the pleurarisk package"
  if [ "${PLEURA_EDITABLE:-1}" = "1" ]; then
    "${PIP[@]}" install -q --no-deps --no-build-isolation -e .
  else
    "${PIP[@]}" install -q --no-deps --no-build-isolation .
  fi
  echo "$want" > "$stamp"
fi

if [ "$DEV" = "1" ]; then
  dstamp="$VENV/.pleura-dev-stamp"
  dwant=$(sha256sum requirements-dev.txt | cut -c1-16)
  if [ "$(cat "$dstamp" 2>/dev/null || true)" != "$dwant" ]; then
    echo "==> installing test tools"
    "${PIP[@]}" install -q -r requirements-dev.txt
    echo "$dwant" > "$dstamp"
  fi
  if [ ! -x /usr/bin/chromium ]; then
    if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null; then
      echo "==> installing Debian's chromium for the browser tests (no browser download)"
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium poppler-utils >/dev/null
    else
      echo "note: /usr/bin/chromium missing and not root: browser tests will be skipped" >&2
    fi
  fi
  if [ ! -x /usr/sbin/Orthanc ] || [ ! -e /usr/share/orthanc/plugins/libOrthancDicomWeb.so ]; then
    if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null; then
      echo "==> installing Debian's orthanc + orthanc-dicomweb (the PACS tests start their own server)"
      # the package's own service is not wanted: the tests start Orthanc themselves on a free port
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq orthanc orthanc-dicomweb >/dev/null
      if [ -d /run/systemd/system ] && command -v systemctl >/dev/null; then
        systemctl disable --now orthanc >/dev/null 2>&1 || true
      fi
    else
      echo "note: Orthanc missing and not root: the PACS tests will be skipped" >&2
    fi
  fi
  if ! command -v dciodvfy >/dev/null; then
    if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null; then
      echo "==> installing Debian's dicom3tools (dciodvfy validates the DICOM output in the tests)"
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dicom3tools >/dev/null
    else
      echo "note: dciodvfy missing and not root: the DICOM output validation tests will be skipped" >&2
    fi
  fi
fi

"$VENV/bin/python" -c "import radiomics, torch, SimpleITK, shap, pyswarms; print('==> environment ready: torch', torch.__version__, '| pyradiomics', radiomics.__version__, '| shap', shap.__version__)"
