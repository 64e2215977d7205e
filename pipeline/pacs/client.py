"""The DICOMweb connection: :class:`dicomweb_client.DICOMwebClient` (a maintained client) on a
``requests`` session with HTTP basic credentials, TLS verification (on; a site CA bundle if
configured), a timeout, and retries of failed connections and busy answers (429/502/503/504,
exponential back-off). Every failure becomes one :class:`PacsError` sentence saying what to
check; the password and patient identifiers never appear in it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from pipeline.core.errors import PleuraRiskError
from pipeline.pacs.config import PacsConfig

T = TypeVar("T")
RETRIED_STATUS = (429, 502, 503, 504)


class PacsError(PleuraRiskError):
    """The PACS could not do what was asked (unreachable, refused, incomplete, too large, …)."""

    code = "pacs"


def _session(config: PacsConfig):  # noqa: ANN202 - requests.Session
    import requests
    from requests.adapters import HTTPAdapter
    from urllib3.util.retry import Retry

    verify: str | bool = str(config.ca_bundle) if config.ca_bundle else True

    class Session(requests.Session):
        def request(self, method, url, **kwargs):  # noqa: ANN001, ANN003, ANN202
            # given per request, the site's CA bundle is not replaced by $REQUESTS_CA_BUNDLE (requests
            # lets that override a session's verify); True still means the system's CAs
            kwargs.setdefault("verify", verify)
            return super().request(method, url, **kwargs)

    session = Session()
    if config.user:
        session.auth = (config.user, config.password or "")
    # connection failures are retried here; busy answers by dicomweb-client (set_http_retry_params)
    retry = Retry(total=config.retries, connect=config.retries, read=0, status=0, redirect=2, backoff_factor=0.5)
    for prefix in ("http://", "https://"):
        session.mount(prefix, HTTPAdapter(max_retries=retry))
    return session


class PacsClient:
    """A DICOMweb service to search, retrieve from and store into.

    Args:
        config: the checked connection (:func:`pipeline.pacs.config.require_pacs_config`).
    """

    def __init__(self, config: PacsConfig) -> None:
        from dicomweb_client.api import DICOMwebClient

        self.config = config
        self.web = DICOMwebClient(url=config.url, session=_session(config), timeout=float(config.timeout_s))
        self.web.set_http_retry_params(retry=config.retries > 0, max_attempts=config.retries + 1,
                                       wait_exponential_multiplier=500, retriable_error_codes=RETRIED_STATUS)

    def call(self, what: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:  # noqa: ANN401
        """``fn(*args, **kwargs)`` with every connection/HTTP failure turned into a :class:`PacsError`
        naming ``what`` was being done (e.g. "searching for studies")."""
        try:
            return fn(*args, **kwargs)
        except PacsError:
            raise
        except Exception as exc:  # noqa: BLE001 - classified below, re-raised if unknown
            raise self._explain(what, exc) from None

    def _explain(self, what: str, exc: Exception) -> Exception:
        import requests

        where = "the PACS (PLEURA_DICOMWEB_URL)"
        if isinstance(exc, requests.exceptions.SSLError):
            return PacsError(f"the TLS certificate of {where} could not be verified while {what}; give the CA "
                             "that signs it in PLEURA_DICOMWEB_CA_BUNDLE")
        if isinstance(exc, requests.exceptions.Timeout):
            return PacsError(f"{where} did not answer within {self.config.timeout_s} s while {what} "
                             "(PLEURA_DICOMWEB_TIMEOUT_S); try again later")
        if isinstance(exc, requests.exceptions.ConnectionError):
            return PacsError(f"{where} cannot be reached while {what}: is the server running and the "
                             "address right?")
        if isinstance(exc, requests.exceptions.HTTPError) and exc.response is not None:
            status = exc.response.status_code
            if status in (401, 403):
                return PacsError(f"{where} refused the credentials while {what} (HTTP {status}); check "
                                 "PLEURA_DICOMWEB_USER and the password")
            if status in RETRIED_STATUS:
                return PacsError(f"{where} is busy (HTTP {status}) while {what}, also after "
                                 f"{self.config.retries} retries; try again later")
            return PacsError(f"{where} answered HTTP {status} while {what}")
        if isinstance(exc, requests.exceptions.RequestException):
            return PacsError(f"the connection to {where} failed while {what} ({type(exc).__name__})")
        return exc
