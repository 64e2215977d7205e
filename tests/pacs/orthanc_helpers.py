"""The test PACS: a real Orthanc (Debian's ``orthanc`` + ``orthanc-dicomweb``) started on 127.0.0.1
with a free port, a temporary storage folder and a generated configuration (authentication on,
remote access off, DICOM network off, the DICOMweb plugin on); an HTTPS front with a test CA; a
phantom study written as DICOM and stored on it. Used by the fixtures of ``conftest.py``."""

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


def start_orthanc(root: Path, *, lua: str | None = None):  # noqa: ANN202 - (server, process, log)
    """Start Orthanc with a generated configuration in ``root`` (and the Lua script ``lua``, e.g. a
    filter refusing some objects); wait until it answers; (server, process, log file)."""
    import requests

    exe = shutil.which("Orthanc") or ("/usr/sbin/Orthanc" if os.path.exists("/usr/sbin/Orthanc") else None)
    if exe is None:
        _missing("the Orthanc PACS server is not installed")
    plugin = next((p for p in PLUGIN_CANDIDATES if os.path.exists(p)), None)
    if plugin is None:
        _missing("Orthanc's DICOMweb plugin is not installed")
    port = free_port()
    config = {
        "Name": "PleuraRiskTest", "StorageDirectory": str(root / "db"), "IndexDirectory": str(root / "db"),
        "HttpPort": port, "RemoteAccessAllowed": False, "AuthenticationEnabled": True,
        "RegisteredUsers": {USER: PASSWORD}, "DicomServerEnabled": False, "OrthancExplorerEnabled": False,
        "WebDavEnabled": False, "HttpCompressionEnabled": False, "Plugins": [plugin],
        "DicomWeb": {"Enable": True, "Root": "/dicom-web/"},
    }
    if lua is not None:
        (root / "filter.lua").write_text(lua)
        config["LuaScripts"] = [str(root / "filter.lua")]
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
            log.close()
            pytest.fail("Orthanc did not start: " + (root / "orthanc.log").read_text()[-2000:])
        time.sleep(0.2)
    return server, proc, log


def stop_orthanc(proc: subprocess.Popen, log) -> None:  # noqa: ANN001
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


def self_signed(folder: Path) -> tuple[Path, Path]:
    """A CA and a server certificate for 127.0.0.1 signed by it (made here, with ``cryptography``):
    (the server's PEM: certificate + key, the CA bundle PEM)."""
    import datetime as dt
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = dt.datetime.now(dt.timezone.utc)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "PleuraRisk test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(hours=1))
          .not_valid_after(now + dt.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                       data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                       crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(hours=1)).not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    pem = folder / "orthanc.pem"
    pem.write_bytes(cert.public_bytes(serialization.Encoding.PEM) + key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()))
    bundle = folder / "ca.pem"
    bundle.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    return pem, bundle


class TlsFront:
    """HTTPS in front of the test Orthanc: a TLS endpoint on 127.0.0.1 (Python's ``ssl``, the
    certificate of :func:`self_signed`) passing the bytes on to Orthanc's HTTP port. (Debian's
    Orthanc 1.10 crashes on its own HTTPS connections, so TLS is terminated here, as a reverse
    proxy does at many sites.)"""

    def __init__(self, pem: Path, *, target_port: int) -> None:
        import ssl
        import threading

        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(str(pem))
        self.target_port = target_port
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.port = self.listener.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        import threading

        while True:
            try:
                conn, _addr = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        import select
        import ssl

        try:
            tls = self.context.wrap_socket(conn, server_side=True)
        except (ssl.SSLError, OSError):  # a client that does not trust the certificate hangs up here
            conn.close()
            return
        back = socket.create_connection(("127.0.0.1", self.target_port))
        try:
            while True:
                ready, _, _ = select.select([tls, back], [], [], 30)
                if not ready:
                    return
                for src, dst in ((tls, back), (back, tls)):
                    if src in ready or (src is tls and tls.pending()):
                        data = src.recv(65536)
                        if not data:
                            return
                        dst.sendall(data)
        except (ssl.SSLError, OSError):
            return
        finally:
            back.close()
            tls.close()

    def close(self) -> None:
        self.listener.close()


def upload_phantom_study(server: OrthancServer, folder: Path, *, patient_id: str, seed: int,
                         leave_out: tuple[int, ...] = ()) -> dict[str, str]:
    """Write a phantom (CT series + an RTSTRUCT with GTV-1, tests/pipeline/io/dicom_factory) for
    ``patient_id`` into ``folder`` and store it on ``server`` (without the CT slices ``leave_out``:
    a series not yet complete); its Study and CT Series UIDs."""
    import sys

    import numpy as np
    import pydicom

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "pipeline" / "io"))
    from dicom_factory import phantom, write_ct_series, write_rtstruct

    ph = phantom(seed=seed)
    case = write_ct_series(ph.ct, folder / "ct")
    for f in case.files:
        ds = pydicom.dcmread(f)
        ds.PatientID = patient_id
        ds.save_as(f)
    write_rtstruct(case, {"GTV-1": ph.roi.array.astype(np.uint8)}, folder / "ct" / "rtstruct.dcm")
    left_out = {case.files[i] for i in leave_out}
    server.upload([p for p in sorted((folder / "ct").iterdir()) if p not in left_out])
    return {"study": case.study_uid, "ct_series": case.series_uid}
