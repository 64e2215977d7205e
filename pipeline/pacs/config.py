"""The PACS connection an administrator configures (``PLEURA_DICOMWEB_*``, ``PLEURA_PACS_*``;
read by :func:`pipeline.core.env.settings`), checked once and never printing the password.

Example:
    >>> c = pacs_config({"PLEURA_DICOMWEB_URL": "https://pacs.example/dicom-web", "PLEURA_DICOMWEB_USER": "u",
    ...                  "PLEURA_DICOMWEB_PASSWORD": "secret"})
    >>> c.url, c.user, "secret" in repr(c)
    ('https://pacs.example/dicom-web', 'u', False)
    >>> pacs_config({}) is None
    True
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.core.env import settings
from pipeline.core.errors import ConfigError


@dataclass(frozen=True)
class PacsConfig:
    """A checked DICOMweb connection.

    Attributes:
        url: DICOMweb base URL (QIDO-RS, WADO-RS and STOW-RS live under it).
        user, password: HTTP basic credentials (None: none sent); the password is left out of ``repr``.
        ca_bundle: PEM file of the CAs that sign the server's TLS certificate (None: the system's).
        timeout_s: seconds to wait for a connection or an answer.
        retries: further attempts after a failed connection or a busy answer (429/502/503/504).
        search_fields: the study search fields offered (``patient_id``, ``accession``, ``study_date``).
        max_study_mb: largest retrieval for one study, MB.
    """

    url: str
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    ca_bundle: Path | None = None
    timeout_s: int = 30
    retries: int = 2
    search_fields: tuple[str, ...] = ("patient_id", "accession", "study_date")
    max_study_mb: int = 2048


def pacs_config(environ: Mapping[str, str] | None = None) -> PacsConfig | None:
    """The configured PACS connection, or None when ``PLEURA_DICOMWEB_URL`` is not set.

    Raises:
        ConfigError: a setting is unusable (password file unreadable, CA bundle missing, a
            password without a user), naming the variable.
    """
    s = settings(environ)
    if s.dicomweb_url is None:
        return None
    password = s.dicomweb_password
    if s.dicomweb_password_file is not None:
        try:
            lines = s.dicomweb_password_file.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            reason = getattr(exc, "strerror", None) or type(exc).__name__
            raise ConfigError(f"PLEURA_DICOMWEB_PASSWORD_FILE cannot be read ({reason})") from None
        password = lines[0].strip() if lines else ""
    if password and not s.dicomweb_user:
        raise ConfigError("a DICOMweb password is set but PLEURA_DICOMWEB_USER is not; set the user name too")
    if s.dicomweb_ca_bundle is not None and not s.dicomweb_ca_bundle.is_file():
        raise ConfigError("PLEURA_DICOMWEB_CA_BUNDLE must be a PEM file of CA certificates (not found)")
    return PacsConfig(url=s.dicomweb_url, user=s.dicomweb_user, password=password, ca_bundle=s.dicomweb_ca_bundle,
                      timeout_s=s.dicomweb_timeout_s, retries=s.dicomweb_retries,
                      search_fields=s.pacs_search_fields, max_study_mb=s.pacs_max_study_mb)


def require_pacs_config(environ: Mapping[str, str] | None = None) -> PacsConfig:
    """:func:`pacs_config`, refusing when no PACS is configured."""
    config = pacs_config(environ)
    if config is None:
        raise ConfigError("no PACS is configured: set PLEURA_DICOMWEB_URL to the DICOMweb service's address "
                          "(and PLEURA_DICOMWEB_USER / PLEURA_DICOMWEB_PASSWORD if it needs them)")
    return config
