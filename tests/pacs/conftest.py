"""A real Orthanc PACS (Debian's ``orthanc`` + ``orthanc-dicomweb``) for the PACS tests, started on
127.0.0.1 with a free port, a temporary storage folder and a generated configuration
(authentication on, remote access off, DICOM network off, the DICOMweb plugin on), and stopped
after the session. Without the ``Orthanc`` binary the tests are skipped, except under CI
(``CI=true``) where that is a failure (``bash scripts/setup.sh --dev`` installs it).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

PLUGIN_CANDIDATES = ("/usr/share/orthanc/plugins/libOrthancDicomWeb.so", "/usr/lib/orthanc/libOrthancDicomWeb.so")
USER, PASSWORD = "pleura", "test-only-password"


@dataclass(frozen=True)
class OrthancServer:
    """A running Orthanc: its REST root, its DICOMweb root and the credentials."""

    rest: str
    dicomweb: str
    user: str
    password: str

    def env(self, **extra: str) -> dict[str, str]:
        """The ``PLEURA_*`` settings that point PleuraRisk at this server."""
        return {"PLEURA_DICOMWEB_URL": self.dicomweb, "PLEURA_DICOMWEB_USER": self.user,
                "PLEURA_DICOMWEB_PASSWORD": self.password, "PLEURA_DICOMWEB_TIMEOUT_S": "20",
                "PLEURA_DICOMWEB_RETRIES": "1", **extra}

    def upload(self, paths: list[Path]) -> None:
        """Store DICOM files through Orthanc's REST API (``POST /instances``)."""
        import requests

        with requests.Session() as s:
            s.auth = (self.user, self.password)
            for p in paths:
                r = s.post(f"{self.rest}/instances", data=Path(p).read_bytes(), timeout=60)
                r.raise_for_status()

    def instance_count(self, study_uid: str) -> int:
        import requests

        r = requests.get(f"{self.dicomweb}/studies/{study_uid}/instances", auth=(self.user, self.password),
                         timeout=30)
        return 0 if r.status_code == 204 else len(r.json())


def _missing(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (required under CI: bash scripts/setup.sh --dev installs orthanc)")
    pytest.skip(f"{reason}: apt-get install orthanc orthanc-dicomweb (bash scripts/setup.sh --dev does)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def orthanc(tmp_path_factory: pytest.TempPathFactory) -> OrthancServer:
    import requests

    exe = shutil.which("Orthanc") or ("/usr/sbin/Orthanc" if os.path.exists("/usr/sbin/Orthanc") else None)
    if exe is None:
        _missing("the Orthanc PACS server is not installed")
    plugin = next((p for p in PLUGIN_CANDIDATES if os.path.exists(p)), None)
    if plugin is None:
        _missing("Orthanc's DICOMweb plugin is not installed")
    root = tmp_path_factory.mktemp("orthanc")
    port = free_port()
    config = {
        "Name": "PleuraRiskTest", "StorageDirectory": str(root / "db"), "IndexDirectory": str(root / "db"),
        "HttpPort": port, "RemoteAccessAllowed": False, "AuthenticationEnabled": True,
        "RegisteredUsers": {USER: PASSWORD}, "DicomServerEnabled": False, "OrthancExplorerEnabled": False,
        "WebDavEnabled": False, "HttpCompressionEnabled": False, "Plugins": [plugin],
        "DicomWeb": {"Enable": True, "Root": "/dicom-web/"},
    }
    (root / "orthanc.json").write_text(json.dumps(config))
    log = (root / "orthanc.log").open("w")
    proc = subprocess.Popen([exe, str(root / "orthanc.json")], stdout=log, stderr=subprocess.STDOUT, cwd=root)
    server = OrthancServer(rest=f"http://127.0.0.1:{port}", dicomweb=f"http://127.0.0.1:{port}/dicom-web",
                           user=USER, password=PASSWORD)
    deadline = time.monotonic() + 60
    while True:
        try:
            if requests.get(f"{server.rest}/system", auth=(USER, PASSWORD), timeout=2).ok:
                break
        except requests.RequestException:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail("Orthanc did not start: " + (root / "orthanc.log").read_text()[-2000:])
        time.sleep(0.2)
    yield server
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


@pytest.fixture()
def pacs_env(orthanc: OrthancServer, monkeypatch: pytest.MonkeyPatch) -> OrthancServer:
    """The process environment pointed at the test Orthanc (in-process CLI calls)."""
    for key, value in orthanc.env().items():
        monkeypatch.setenv(key, value)
    return orthanc
