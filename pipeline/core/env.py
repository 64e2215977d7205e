"""Every ``PLEURA_*`` environment setting, read and checked in one place.

Settings are read when :func:`settings` is called (not at import), so a process, a test or a
worker sees the environment it runs in. A value that cannot be used is a
:class:`~pipeline.core.errors.ConfigError` naming the variable and what it accepts, never a
traceback; an empty value counts as unset.

==========================  ==============================================  =====================
variable                    meaning                                         default
==========================  ==============================================  =====================
``PLEURA_BUNDLE``           model bundle folder                             ``weights/demo``
``PLEURA_WEIGHTS_DIR``      folder whose sub-folders are offered as models  ``weights/``
``PLEURA_AUDIT_LOG``        audit log file (JSON lines)                     ``./audit/audit.jsonl``
``PLEURA_THREADS``          torch threads per process (≥ 1)                 cores / workers
``PLEURA_WORKERS``          batch worker processes (≥ 1)                    1
``PLEURA_DASK_SCHEDULER``   Dask scheduler address for ``pleura batch``     none (local pool)
``PLEURA_PORT``             app port (1–65535)                              8501
``PLEURA_ADDRESS``          app listen address                              ``localhost``
``PLEURA_MAX_UPLOAD_MB``    largest app upload, MB (≥ 1)                    1024
``PLEURA_TRUSTED_KEYS``     a site's bundle-signing public keys: PEM files  none (only the keys
                            or folders of ``*.pem``, ``:``-separated        pinned in the package)
``PLEURA_ALLOW_UNSIGNED``   load bundles not signed by a trusted key        off
                            (1/true/yes/on or 0/false/no/off)
==========================  ==============================================  =====================

The PACS connection (DICOMweb; :mod:`pipeline.pacs`), all unset unless a site configures it:

=================================  =========================================  ========================
variable                           meaning                                    default
=================================  =========================================  ========================
``PLEURA_DICOMWEB_URL``            DICOMweb base URL (QIDO/WADO/STOW root)    none (no PACS)
``PLEURA_DICOMWEB_USER``           HTTP basic user name                       none (no credentials)
``PLEURA_DICOMWEB_PASSWORD``       its password (never printed)               none
``PLEURA_DICOMWEB_PASSWORD_FILE``  file holding the password (first line)     none
``PLEURA_DICOMWEB_CA_BUNDLE``      PEM CA bundle to verify the server's TLS   the system's CAs
``PLEURA_DICOMWEB_TIMEOUT_S``      seconds to wait for the server (1–3600)    30
``PLEURA_DICOMWEB_RETRIES``        retries of a failed connection (0–10)      2
``PLEURA_PACS_SEARCH_FIELDS``      search fields offered, ``,``-separated:    all three
                                   ``patient_id``, ``accession``,
                                   ``study_date``
``PLEURA_PACS_MAX_STUDY_MB``       largest study retrieval, MB (≥ 1)          2048
=================================  =========================================  ========================

Example:
    >>> s = settings({"PLEURA_WORKERS": "2", "PLEURA_PORT": "8600", "PLEURA_ALLOW_UNSIGNED": "1"})
    >>> s.workers, s.port, s.threads is None, s.allow_unsigned
    (2, 8600, True, True)
    >>> settings({"PLEURA_WORKERS": "two"})
    Traceback (most recent call last):
    ...
    pipeline.core.errors.ConfigError: PLEURA_WORKERS must be a whole number from 1 to 256 (got 'two')
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.core.errors import ConfigError

REPO_ROOT = Path(__file__).resolve().parents[2]
"""The checkout (or installed tree) holding ``pipeline/``, ``weights/`` and ``app.py``."""

DEFAULT_AUDIT_LOG = Path("audit") / "audit.jsonl"
PACS_SEARCH_FIELDS = ("patient_id", "accession", "study_date")
"""The PACS search fields an administrator may enable (``PLEURA_PACS_SEARCH_FIELDS``)."""


@dataclass(frozen=True)
class Settings:
    """The process's ``PLEURA_*`` settings, checked (see the module table)."""

    bundle: Path | None
    weights_dir: Path
    audit_log: Path
    threads: int | None
    workers: int
    dask_scheduler: str | None
    port: int
    address: str
    max_upload_mb: int
    trusted_keys: tuple[Path, ...] = ()
    allow_unsigned: bool = False
    dicomweb_url: str | None = None
    dicomweb_user: str | None = None
    dicomweb_password: str | None = field(default=None, repr=False)
    dicomweb_password_file: Path | None = None
    dicomweb_ca_bundle: Path | None = None
    dicomweb_timeout_s: int = 30
    dicomweb_retries: int = 2
    pacs_search_fields: tuple[str, ...] = PACS_SEARCH_FIELDS
    pacs_max_study_mb: int = 2048


def _text(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name, "").strip()
    return value or None


def _whole(env: Mapping[str, str], name: str, *, default: int | None, low: int, high: int) -> int | None:
    raw = _text(env, name)
    if raw is None:
        return default
    try:
        value = int(raw, 10)
    except ValueError:
        value = None
    if value is None or not low <= value <= high:
        raise ConfigError(f"{name} must be a whole number from {low} to {high} (got {raw[:40]!r})")
    return value


_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def _flag(env: Mapping[str, str], name: str) -> bool:
    raw = _text(env, name)
    if raw is None or raw.lower() in _FALSE:
        return False
    if raw.lower() in _TRUE:
        return True
    raise ConfigError(f"{name} must be 1 or 0 (also true/false, yes/no, on/off; got {raw[:40]!r})")


def _search_fields(env: Mapping[str, str]) -> tuple[str, ...]:
    raw = _text(env, "PLEURA_PACS_SEARCH_FIELDS")
    if raw is None:
        return PACS_SEARCH_FIELDS
    fields = tuple(dict.fromkeys(f.strip().lower() for f in raw.split(",") if f.strip()))
    unknown = [f for f in fields if f not in PACS_SEARCH_FIELDS]
    if unknown or not fields:
        raise ConfigError(f"PLEURA_PACS_SEARCH_FIELDS must list some of {', '.join(PACS_SEARCH_FIELDS)} "
                          f"separated by commas (got {raw[:60]!r})")
    return fields


def _dicomweb_url(env: Mapping[str, str]) -> str | None:
    url = _text(env, "PLEURA_DICOMWEB_URL")
    if url is not None and not url.lower().startswith(("http://", "https://")):
        raise ConfigError("PLEURA_DICOMWEB_URL must be an http:// or https:// address of the DICOMweb service")
    return url.rstrip("/") if url else None


def settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Read and check every ``PLEURA_*`` setting from ``environ`` (default ``os.environ``).

    Raises:
        ConfigError: a setting is present but unusable (says which and what it accepts).
    """
    env = os.environ if environ is None else environ
    bundle = _text(env, "PLEURA_BUNDLE")
    weights = _text(env, "PLEURA_WEIGHTS_DIR")
    audit = _text(env, "PLEURA_AUDIT_LOG")
    return Settings(
        bundle=Path(bundle) if bundle else None,
        weights_dir=Path(weights) if weights else REPO_ROOT / "weights",
        audit_log=Path(audit) if audit else DEFAULT_AUDIT_LOG,
        threads=_whole(env, "PLEURA_THREADS", default=None, low=1, high=1024),
        workers=_whole(env, "PLEURA_WORKERS", default=1, low=1, high=256) or 1,
        dask_scheduler=_text(env, "PLEURA_DASK_SCHEDULER"),
        port=_whole(env, "PLEURA_PORT", default=8501, low=1, high=65535) or 8501,
        address=_text(env, "PLEURA_ADDRESS") or "localhost",
        max_upload_mb=_whole(env, "PLEURA_MAX_UPLOAD_MB", default=1024, low=1, high=1024 * 1024) or 1024,
        trusted_keys=tuple(Path(p.strip()) for p in (_text(env, "PLEURA_TRUSTED_KEYS") or "").split(os.pathsep)
                           if p.strip()),
        allow_unsigned=_flag(env, "PLEURA_ALLOW_UNSIGNED"),
        dicomweb_url=_dicomweb_url(env),
        dicomweb_user=_text(env, "PLEURA_DICOMWEB_USER"),
        dicomweb_password=env.get("PLEURA_DICOMWEB_PASSWORD") or None,
        dicomweb_password_file=Path(pf) if (pf := _text(env, "PLEURA_DICOMWEB_PASSWORD_FILE")) else None,
        dicomweb_ca_bundle=Path(ca) if (ca := _text(env, "PLEURA_DICOMWEB_CA_BUNDLE")) else None,
        dicomweb_timeout_s=_whole(env, "PLEURA_DICOMWEB_TIMEOUT_S", default=30, low=1, high=3600) or 30,
        dicomweb_retries=_whole(env, "PLEURA_DICOMWEB_RETRIES", default=2, low=0, high=10) or 0,
        pacs_search_fields=_search_fields(env),
        pacs_max_study_mb=_whole(env, "PLEURA_PACS_MAX_STUDY_MB", default=2048, low=1, high=1024 * 1024) or 2048,
    )


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity where the OS tells, else the CPU count)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def threads_per_worker(workers: int, *, cores: int | None = None) -> int:
    """Torch threads for each of ``workers`` processes sharing ``cores`` (default: this
    process's cores) so they do not oversubscribe the machine: ``max(1, cores // workers)``.

    Example:
        >>> threads_per_worker(2, cores=8), threads_per_worker(4, cores=2)
        (4, 1)
    """
    if workers < 1:
        raise ConfigError(f"the number of workers must be at least 1 (got {workers})")
    return max(1, (available_cores() if cores is None else cores) // workers)
