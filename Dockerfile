# PleuraRisk — offline hospital workstation image (CPU only, no CUDA libraries).
#   docker build -t pleurarisk .
#   docker run --rm -p 8501:8501 --read-only --tmpfs /tmp --cap-drop ALL \
#       --security-opt no-new-privileges -v /srv/pleura/audit:/audit pleurarisk       # the app
#   docker run --rm --network none --read-only --tmpfs /tmp --cap-drop ALL \
#       --security-opt no-new-privileges -v /srv/cases:/data:ro -v /srv/results:/results \
#       -v /srv/pleura/audit:/audit pleurarisk \
#       pleura batch /data --clinical /data/clinical.csv --out /results/results.csv  # batch scoring
# The install step is scripts/setup.sh, the same script the README and CI run.
# Built and run by scripts/test-container.sh (podman), which passes BASE_IMAGE, PLEURA_TORCH_INDEX,
# PIP_FIND_LINKS and PIP_CERT as build arguments.
ARG BASE_IMAGE=python:3.11-slim-bookworm
FROM ${BASE_IMAGE}

# Where CPU-only torch comes from (the PyTorch CPU wheel index: no CUDA libraries in the image).
# Build with --build-arg PLEURA_TORCH_INDEX= to take torch from the normal index / PIP_FIND_LINKS.
ARG PLEURA_TORCH_INDEX=https://download.pytorch.org/whl/cpu
# Optional, build time only: a local wheel directory and a CA bundle for pip, mounted read-only
# into the build (e.g. podman build --volume /opt/wheels:/mnt:ro --build-arg PIP_FIND_LINKS=/mnt);
# neither ends up in the image.
ARG PIP_FIND_LINKS
ARG PIP_CERT

# MALLOC_ARENA_MAX=2: a long app session stays at ~1.0 GB RSS instead of 1.4-1.6 GB (glibc arena per Streamlit run thread).
# The audit log goes to its own volume (/audit), so the cases can be mounted read-only at /data.
# ORT_DISABLE_TELEMETRY=1: ONNX Runtime's Linux telemetry (device id on disk, HTTPS uploads) stays off.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PLEURA_VENV=/opt/venv \
    PLEURA_PYTHON=/usr/local/bin/python3.11 \
    PATH=/opt/venv/bin:$PATH \
    PLEURA_BUNDLE=/app/weights/demo \
    PLEURA_AUDIT_LOG=/audit/audit.jsonl \
    PLEURA_WORKERS=1 \
    PLEURA_THREADS=2 \
    PLEURA_ADDRESS=0.0.0.0 \
    PLEURA_PORT=8501 \
    STREAMLIT_BROWSER_GATHER_USAGE_STATS=false \
    ORT_DISABLE_TELEMETRY=1 \
    STREAMLIT_SERVER_HEADLESS=true \
    STREAMLIT_SERVER_MAX_UPLOAD_SIZE=1024 \
    MPLCONFIGDIR=/tmp/matplotlib \
    NUMBA_CACHE_DIR=/tmp/numba \
    MALLOC_ARENA_MAX=2

# gcc is needed to build PyRadiomics' C extension; removed again in the same layer (with binutils,
# which apt's autoremove keeps when the base's Debian python3.11 recommends it).
WORKDIR /app
COPY requirements.txt requirements-radiomics.txt pyproject.toml README.md ./
COPY scripts/setup.sh scripts/setup.sh
COPY scripts/slim-venv.sh scripts/slim-venv.sh
COPY pipeline/ pipeline/
COPY models/ models/
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev \
    && bash scripts/setup.sh \
    && bash scripts/slim-venv.sh /opt/venv \
    && apt-get purge -y gcc libc6-dev binutils && apt-get autoremove -y && apt-get clean \
    && rm -rf /var/lib/apt/lists/* /root/.cache /tmp/*

COPY app.py ./
COPY pages/ pages/
COPY .streamlit/ .streamlit/
COPY weights/ weights/
COPY scripts/docker-entrypoint.sh scripts/docker-entrypoint.sh

RUN useradd --create-home --uid 10001 pleura \
    && mkdir -p /data /audit && chown pleura:pleura /data /audit
USER 10001
# Checked as the user that runs it; what verify leaves in /tmp (matplotlib's cache) is removed.
RUN pleura verify /app/weights/demo && rm -rf /tmp/matplotlib /tmp/numba
VOLUME ["/data", "/audit"]
EXPOSE 8501
# Python's urllib instead of curl: one network client fewer in the image (fails on any non-200 answer).
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request as u; u.urlopen('http://localhost:8501/_stcore/health', timeout=4)"]
ENTRYPOINT ["bash", "/app/scripts/docker-entrypoint.sh"]
CMD ["app"]
