"""Throwaway Ed25519 keys for the tests (made fresh in a temporary folder per test session).

The release key's private part never appears in tests: bundles the tests train are signed with
:data:`TEST_KEY`, whose public part the test session trusts through ``$PLEURA_TRUSTED_KEYS`` (set
by ``tests/conftest.py`` before anything runs, so the CLI and app subprocesses trust it too).
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat

ROOT = Path(tempfile.mkdtemp(prefix="pleura-test-keys-"))
atexit.register(shutil.rmtree, ROOT, ignore_errors=True)
TRUSTED_DIR = ROOT / "trusted"
TEST_SIGNER = "PleuraRisk test key"


def make_key(folder: Path, name: str) -> tuple[Path, Path]:
    """A new Ed25519 key pair: (private PEM path, public PEM path) in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    key = Ed25519PrivateKey.generate()
    private = folder / f"{name}.key"
    private.write_bytes(key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
    public = folder / f"{name}.pem"
    public.write_bytes(key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo))
    return private, public


TEST_KEY, TEST_PUBLIC_KEY = make_key(ROOT, "test-signer")
shutil.copy(TEST_PUBLIC_KEY, TRUSTED_DIR.mkdir() or TRUSTED_DIR / "test-signer.pem")
# Commands the tests run as an unprivileged user (tests/reliability/test_hostile_cli.py) must read
# the trusted public key too; the private key stays readable by its owner only.
for _path, _mode in ((ROOT, 0o755), (TRUSTED_DIR, 0o755), (TRUSTED_DIR / "test-signer.pem", 0o644),
                     (TEST_PUBLIC_KEY, 0o644), (TEST_KEY, 0o600)):
    os.chmod(_path, _mode)


def sign_for_tests(bundle: Path, *, key: Path = TEST_KEY, signer: str = TEST_SIGNER) -> Path:
    """Sign ``bundle`` with the session's trusted test key (or ``key``); return the bundle."""
    from pipeline.serving.bundle import sign_bundle

    sign_bundle(bundle, key_path=key, signer=signer)
    return bundle
