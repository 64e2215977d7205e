# PleuraRisk — offline hospital workstation image (CPU only, no CUDA libraries).
#   docker build -t pleurarisk .
#   docker run --rm -p 8501:8501 -v /srv/pleurarisk:/data pleurarisk           # the app
#   docker run --rm -v /data:/data pleurarisk pleura batch /data/cases \
#       --clinical /data/clinical.csv --out /data/results.csv                   # batch scoring
# The install step is scripts/setup.sh, the same script the README and CI run.
FROM python:3.11-slim-bookworm

# MALLOC_ARENA_MAX=2: a long app session stays at ~1.0 GB RSS instead of 1.4-1.6 GB (glibc arena per Streamlit run thread).
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PLEURA_VENV=/opt/venv \
    PLEURA_PYTHON=/usr/local/bin/python3.11 \
    PLEURA_TORCH_INDEX=https://download.pytorch.org/whl/cpu \
    PATH=/opt/venv/bin:$PATH \
    PLEURA_BUNDLE=/app/weights/demo \
    PLEURA_AUDIT_LOG=/data/audit/audit.jsonl \
    PLEURA_WORKERS=1 \
    PLEURA_THREADS=2 \
    PLEURA_ADDRESS=0.0.0.0 \
    PLEURA_PORT=8501 \
    STREAMLIT_BROWSER_GATHER_USAGE_STATS=false \
    STREAMLIT_SERVER_HEADLESS=true \
    STREAMLIT_SERVER_MAX_UPLOAD_SIZE=1024 \
    MPLCONFIGDIR=/tmp/matplotlib \
    NUMBA_CACHE_DIR=/tmp/numba \
    MALLOC_ARENA_MAX=2

# gcc is needed to build PyRadiomics' C extension; removed again in the same layer.
WORKDIR /app
COPY requirements.txt requirements-radiomics.txt pyproject.toml README.md ./
COPY scripts/setup.sh scripts/setup.sh
COPY pipeline/ pipeline/
COPY models/ models/
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev curl \
    && bash scripts/setup.sh \
    && apt-get purge -y gcc libc6-dev && apt-get autoremove -y \
    && rm -rf /var/lib/apt/lists/* /root/.cache

COPY app.py ./
COPY pages/ pages/
COPY .streamlit/ .streamlit/
COPY weights/ weights/
COPY scripts/docker-entrypoint.sh scripts/docker-entrypoint.sh

RUN useradd --create-home --uid 10001 pleura \
    && mkdir -p /data && chown pleura:pleura /data \
    && pleura verify /app/weights/demo
USER 10001
VOLUME ["/data"]
EXPOSE 8501
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["curl", "-fsS", "http://localhost:8501/_stcore/health"]
ENTRYPOINT ["bash", "/app/scripts/docker-entrypoint.sh"]
CMD ["app"]
