#!/usr/bin/env bash
# The container test: build the image from this repository's Dockerfile with Debian's podman and
# check it the way a hospital would run it (tests/container/test_container.py, marker `container`).
#
#   bash scripts/test-container.sh     # 15-21 min from nothing on 2 cores, 6-11 min with the cached base (README)
#
# Needs root and Debian's packages (podman runc debootstrap, installed here with apt-get).
# Podman's storage, run state and configuration live in a scratch folder that is removed at the
# end; nothing is written to /etc/containers or /var/lib/containers. No container registry is
# used: the base image is made with debootstrap + `podman import`, and a stand-in for
# python:3.11-slim-bookworm (Debian's python3.11) is built from it. Both are cached as image
# archives in $PLEURA_CONTAINER_CACHE (default /var/tmp/pleurarisk-container-cache), keyed by a
# hash of what makes them, so a re-run skips debootstrap and the base build; delete the folder to start
# from nothing. The application image itself is always built fresh from the Dockerfile.
#
# Build inputs taken from the machine: pip's CA bundle (PIP_CERT / pip config `cert`, else
# /etc/ssl/certs/ca-certificates.crt) and pip's local wheel directory (PIP_FIND_LINKS / pip config
# `find-links`) are mounted read-only into the build; when that directory holds a CPU torch wheel,
# torch comes from it instead of the PyTorch CPU index.
#
# Environment: PLEURA_CONTAINER_KEEP=1 keeps the scratch folder and image (prints their path);
#              PLEURA_HOST_PYTHON=path: Python with the project installed (default: scripts/setup.sh --dev, .venv);
#              DEBIAN_MIRROR (default http://deb.debian.org/debian).
# Extra arguments are passed to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
T_START=$(date +%s)
say() { echo "==> [$(( $(date +%s) - T_START )) s] $*"; }

if [ "$(id -u)" != "0" ]; then
  echo "test-container.sh: needs root (podman with runc, debootstrap)" >&2
  exit 2
fi

# ------------------------------------------------------------------------------------ host tools
missing=()
for tool in podman runc debootstrap; do command -v "$tool" >/dev/null || missing+=("$tool"); done
if [ "${#missing[@]}" -gt 0 ]; then
  say "installing ${missing[*]} (Debian packages)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq podman runc debootstrap >/dev/null
fi
if [ -n "${PLEURA_HOST_PYTHON:-}" ]; then
  PY=$PLEURA_HOST_PYTHON
else
  bash scripts/setup.sh --dev
  PY=$ROOT/.venv/bin/python
fi

# ------------------------------------------------------------------------------------ scratch podman
WORK=$(mktemp -d /var/tmp/pleurarisk-ctest.XXXXXX)
mkdir -p "$WORK/storage" "$WORK/run" "$WORK/tmp" "$WORK/networks" "$WORK/out"
cat > "$WORK/containers.conf" <<EOF
[containers]
# podman's default limits exceed this machine's hard limits
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
[engine]
# crun refuses the hybrid cgroup layout of these machines; runc works
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "$WORK/run/events.log"
tmp_dir = "$WORK/run/libpod"
volume_path = "$WORK/storage/volumes"
[network]
network_config_dir = "$WORK/networks"
EOF
cat > "$WORK/storage.conf" <<EOF
[storage]
driver = "overlay"
graphroot = "$WORK/storage"
runroot = "$WORK/run/storage"
EOF
cat > "$WORK/registries.conf" <<EOF
unqualified-search-registries = []
EOF
export CONTAINERS_CONF=$WORK/containers.conf CONTAINERS_STORAGE_CONF=$WORK/storage.conf \
       CONTAINERS_REGISTRIES_CONF=$WORK/registries.conf TMPDIR=$WORK/tmp

cleanup() {
  local rc=$?
  if [ "${PLEURA_CONTAINER_KEEP:-0}" = "1" ]; then
    echo "kept: $WORK (export CONTAINERS_CONF=$WORK/containers.conf CONTAINERS_STORAGE_CONF=$WORK/storage.conf)"
  else
    podman rm -af -t 0 >/dev/null 2>&1 || true
    podman system reset -f >/dev/null 2>&1 || true
    rm -rf "$WORK" 2>/dev/null || { umount -R "$WORK/storage/overlay" 2>/dev/null || true; rm -rf "$WORK" || true; }
  fi
  say "container test finished (exit $rc) in $(( $(date +%s) - T_START )) s"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ------------------------------------------------------------------------------------ base images (cached)
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
BASE_PACKAGES="python3.11 python3.11-venv libpython3.11-dev ca-certificates"
BASE_TAG=localhost/pleurarisk-test/python:3.11-slim-bookworm
CACHE=${PLEURA_CONTAINER_CACHE:-/var/tmp/pleurarisk-container-cache}
# the key changes when how the base is made changes (this block of the script) or the month does
# (so security updates are picked up)
key=$( { sed -n '/^# -* base images/,/^# -* application image/p' "$0"; date -u +%Y-%m; } | sha256sum | cut -c1-16)
archive=$CACHE/python-3.11-bookworm-$key.tar
mkdir -p "$CACHE"
if [ -s "$archive" ] && podman load -q -i "$archive" >/dev/null 2>&1 && podman image exists "$BASE_TAG"; then
  say "base image from cache ($archive)"
else
  say "debootstrap --variant=minbase bookworm (Debian minimal root file system)"
  rootfs=$WORK/rootfs
  debootstrap --variant=minbase bookworm "$rootfs" "$MIRROR" >"$WORK/debootstrap.log" 2>&1 \
    || { tail -20 "$WORK/debootstrap.log" >&2; exit 1; }
  cat > "$rootfs/etc/apt/sources.list" <<EOF
deb $MIRROR bookworm main
deb $MIRROR bookworm-updates main
deb ${MIRROR%/debian}/debian-security bookworm-security main
EOF
  # like Debian's slim images (and so python:3.11-slim): no manuals, documentation or translations
  printf '%s\n' 'path-exclude /usr/share/doc/*' 'path-include /usr/share/doc/*/copyright' \
    'path-exclude /usr/share/man/*' 'path-exclude /usr/share/info/*' 'path-exclude /usr/share/locale/*' \
    'path-exclude /usr/share/lintian/*' > "$rootfs/etc/dpkg/dpkg.cfg.d/docker-slim"
  find "$rootfs/usr/share/doc" -mindepth 1 ! -name copyright ! -type d -delete
  rm -rf "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* "$rootfs"/usr/share/locale/* "$rootfs"/usr/share/lintian/*
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/lib/apt/lists/*
  tar -C "$rootfs" --numeric-owner -c . | podman import -q - localhost/pleurarisk-test/debian:bookworm-minbase >/dev/null
  rm -rf "$rootfs"
  say "stand-in for python:3.11-slim-bookworm (Debian's $BASE_PACKAGES)"
  mkdir -p "$WORK/base"
  cat > "$WORK/base/Containerfile" <<EOF
FROM localhost/pleurarisk-test/debian:bookworm-minbase
ENV LANG=C.UTF-8
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get -y upgrade \\
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $BASE_PACKAGES \\
 && ln -s /usr/bin/python3.11 /usr/local/bin/python3.11 && ln -s /usr/bin/python3.11 /usr/local/bin/python3 \\
 && ln -s /usr/bin/python3.11 /usr/local/bin/python \\
 && rm -rf /usr/lib/python3.11/config-3.11-x86_64-linux-gnu/libpython3.11*.a /usr/lib/python3.11/test \\
 && apt-get clean && rm -rf /var/lib/apt/lists/*
CMD ["python3"]
EOF
  podman build --pull=never --network host --format docker -t "$BASE_TAG" "$WORK/base" >"$WORK/base.log" 2>&1 \
    || { tail -20 "$WORK/base.log" >&2; exit 1; }
  podman save -q --format docker-archive -o "$archive.part" "$BASE_TAG" && mv "$archive.part" "$archive"
  find "$CACHE" -name 'python-3.11-bookworm-*.tar' ! -name "$(basename "$archive")" -delete
fi

# ------------------------------------------------------------------------------------ application image
IMAGE=localhost/pleurarisk:test
build_args=(--build-arg "BASE_IMAGE=$BASE_TAG")
pip_conf() { "$PY" -m pip config get "global.$1" 2>/dev/null | head -1 || true; }
ca=${PIP_CERT:-$(pip_conf cert)}
[ -n "$ca" ] && [ -f "$ca" ] || ca=/etc/ssl/certs/ca-certificates.crt
if [ -f "$ca" ]; then
  # over the base image's own bundle (a new mount point would stay in the image as an empty file)
  build_args+=(--volume "$ca:/etc/ssl/certs/ca-certificates.crt:ro" --build-arg PIP_CERT=/etc/ssl/certs/ca-certificates.crt)
fi
wheels=${PIP_FIND_LINKS:-$(pip_conf find-links)}
wheels=${wheels%% *}
if [ -n "$wheels" ] && [ -d "$wheels" ]; then
  build_args+=(--volume "$wheels:/mnt:ro" --build-arg PIP_FIND_LINKS=/mnt)  # /mnt: empty in Debian images
  if compgen -G "$wheels/torch-*+cpu-cp311-*.whl" >/dev/null; then
    build_args+=(--build-arg PLEURA_TORCH_INDEX=)  # CPU torch from the local wheel directory
  fi
fi
say "building $IMAGE from the Dockerfile (podman build ${build_args[*]})"
t_build=$(date +%s)
podman build --pull=never --network host --format docker "${build_args[@]}" -t "$IMAGE" . \
  >"$WORK/build.log" 2>&1 || { tail -40 "$WORK/build.log" >&2; exit 1; }
build_s=$(( $(date +%s) - t_build ))
size=$(podman image inspect --format '{{.Size}}' "$IMAGE")
say "image built in ${build_s} s; size $(( size / 1000000 )) MB"
echo "$build_s $size" > "$WORK/out/build-stats.txt"

# ------------------------------------------------------------------------------------ the checks
export PLEURA_CONTAINER_IMAGE=$IMAGE
say "checks (tests/container, network removed)"
cmd=("$PY" -m pytest tests/container -m container -p no:cacheprovider "$@")
if [ "${PLEURA_TEST_OFFLINE:-1}" = "1" ] && unshare --net true 2>/dev/null; then
  IP=$(command -v ip || echo /usr/sbin/ip)
  # only a loopback interface: the app's published port is reached over it
  unshare --net sh -c "$IP link set lo up && exec \"\$@\"" sh "${cmd[@]}"
else
  "${cmd[@]}"
fi
