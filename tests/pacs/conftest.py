"""A real Orthanc PACS (Debian's ``orthanc`` + ``orthanc-dicomweb``) for the PACS tests, started on
127.0.0.1 with a free port, a temporary storage folder and a generated configuration
(authentication on, remote access off, DICOM network off, the DICOMweb plugin on), and stopped
after the session. Without the ``Orthanc`` binary the tests are skipped, except under CI
(``CI=true``) where that is a failure (``bash scripts/setup.sh --dev`` installs it).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from orthanc_helpers import OrthancServer, TlsFront, self_signed, start_orthanc, stop_orthanc


@pytest.fixture(scope="session")
def orthanc(tmp_path_factory: pytest.TempPathFactory) -> OrthancServer:
    server, proc, log = start_orthanc(tmp_path_factory.mktemp("orthanc"))
    yield server
    stop_orthanc(proc, log)


@pytest.fixture(scope="session")
def orthanc_tls(orthanc: OrthancServer, tmp_path_factory: pytest.TempPathFactory) -> tuple[OrthancServer, Path]:
    """The test Orthanc behind HTTPS with a certificate from a test CA; (server, the CA bundle)."""
    pem, bundle = self_signed(tmp_path_factory.mktemp("tls"))
    front = TlsFront(pem, target_port=int(orthanc.rest.rsplit(":", 1)[1]))
    base = f"https://127.0.0.1:{front.port}"
    yield OrthancServer(rest=base, dicomweb=f"{base}/dicom-web", user=orthanc.user, password=orthanc.password), bundle
    front.close()


@pytest.fixture()
def pacs_env(orthanc: OrthancServer, monkeypatch: pytest.MonkeyPatch) -> OrthancServer:
    """The process environment pointed at the test Orthanc (in-process CLI calls)."""
    for key, value in orthanc.env().items():
        monkeypatch.setenv(key, value)
    return orthanc


REFUSE_SR = """
function ReceivedInstanceFilter(dicom, origin, info)
  return dicom.Modality ~= 'SR'
end
"""


@pytest.fixture(scope="session")
def orthanc_refusing_sr(tmp_path_factory: pytest.TempPathFactory) -> OrthancServer:
    """A second Orthanc whose site policy (a Lua filter) refuses every SR: a STOW-RS rejection."""
    server, proc, log = start_orthanc(tmp_path_factory.mktemp("orthanc-strict"), lua=REFUSE_SR)
    yield server
    stop_orthanc(proc, log)
