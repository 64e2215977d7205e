"""Signed model bundles: only bundles signed by a trusted key load unless unsigned ones are allowed.

The attack of issue #15 (item 16): swap model.skops and recompute the manifest's hashes. The
signature covers the manifest, so the swap is refused, and so is re-signing with a key this
installation does not trust. Keys here are throwaway keys made by the tests.
"""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from signing_helpers import TEST_SIGNER, make_key, sign_for_tests

from pipeline.serving import bundle as bundle_mod
from pipeline.serving.bundle import MANIFEST, MODEL_FILE, canonical_skops, check_bundle, load_bundle, verify_bundle
from pipeline.cli.main import main
from pipeline.core.errors import BundleError
from pipeline.core.hashing import file_sha256
from pipeline.serving.signing import SIGNATURE_FILE, trusted_keys

REPO = Path(__file__).resolve().parents[3]
DEMO = REPO / "weights" / "demo"
RELEASE_SIGNER = "PleuraRisk maintainers (release key)"


@pytest.fixture()
def bundle_copy(tiny_bundle: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "b"
    shutil.copytree(tiny_bundle, dst)
    return dst


def _swap_model_and_reseal(bundle: Path) -> None:
    """The attack: another (working) forest in model.skops, the manifest's hash recomputed."""
    import skops.io as sio
    from sklearn.ensemble import RandomForestClassifier

    n = len(json.loads((bundle / MANIFEST).read_text())["feature_names"])
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, n))
    forest = RandomForestClassifier(n_estimators=5, random_state=0).fit(X, (X[:, 0] > 0).astype(int))
    (bundle / MODEL_FILE).write_bytes(canonical_skops(sio.dumps(forest)))
    manifest = json.loads((bundle / MANIFEST).read_text())
    manifest["files"][MODEL_FILE] = file_sha256(bundle / MODEL_FILE)
    (bundle / MANIFEST).write_text(json.dumps(manifest, indent=2))


def test_a_swapped_model_with_recomputed_hashes_is_refused(bundle_copy: Path, capsys: pytest.CaptureFixture):
    _swap_model_and_reseal(bundle_copy)
    with pytest.raises(BundleError, match="bad signature: manifest.json changed after the bundle was signed"):
        load_bundle(bundle_copy)
    # the allowance for unsigned models does not cover a signature that does not match
    with pytest.raises(BundleError, match="bad signature"):
        load_bundle(bundle_copy, allow_unsigned=True)
    assert main(["verify", str(bundle_copy)]) == 2
    assert "bad signature" in capsys.readouterr().err


def test_resigning_with_an_unknown_key_is_refused_unless_allowed(bundle_copy: Path, tmp_path: Path):
    _swap_model_and_reseal(bundle_copy)
    attacker, _public = make_key(tmp_path / "attacker", "attacker")
    sign_for_tests(bundle_copy, key=attacker, signer="PleuraRisk maintainers (release key)")
    with pytest.raises(BundleError, match=r"signed by 'PleuraRisk maintainers \(release key\)' with key [0-9a-f]{16}, "
                                          "which this installation does not trust"):
        load_bundle(bundle_copy)
    b = load_bundle(bundle_copy, allow_unsigned=True)
    assert not b.signature.trusted
    assert b.signer_label.startswith("unsigned model (signed by 'PleuraRisk maintainers (release key)'")


def test_a_tampered_signature_is_refused(bundle_copy: Path):
    sig_path = bundle_copy / SIGNATURE_FILE
    original = json.loads(sig_path.read_text())
    raw = bytearray(base64.b64decode(original["signature"]))
    raw[5] ^= 0x01
    sig_path.write_text(json.dumps({**original, "signature": base64.b64encode(bytes(raw)).decode()}))
    with pytest.raises(BundleError, match="does not verify with the signer's key"):
        verify_bundle(bundle_copy)
    # the signer's name is signed too: it cannot be changed afterwards
    sig_path.write_text(json.dumps({**original, "signer": "Someone Else"}))
    with pytest.raises(BundleError, match="does not verify"):
        verify_bundle(bundle_copy)
    sig_path.write_text("not json")
    with pytest.raises(BundleError, match="not a PleuraRisk signature file"):
        verify_bundle(bundle_copy, allow_unsigned=True)


def test_unsigned_is_refused_allowed_explicitly_and_labelled(bundle_copy: Path, monkeypatch: pytest.MonkeyPatch):
    (bundle_copy / SIGNATURE_FILE).unlink()
    with pytest.raises(BundleError, match="'b' is unsigned; refusing to load it .*--allow-unsigned"):
        load_bundle(bundle_copy)
    b = load_bundle(bundle_copy, allow_unsigned=True)
    assert b.signer_label.startswith("unsigned model (no signature")
    monkeypatch.setenv("PLEURA_ALLOW_UNSIGNED", "1")
    assert check_bundle(bundle_copy).signature.state == "unsigned"
    # an explicit False wins over the setting
    with pytest.raises(BundleError, match="is unsigned"):
        check_bundle(bundle_copy, allow_unsigned=False)


def test_the_signature_file_must_stay_outside_the_manifest(bundle_copy: Path):
    manifest = json.loads((bundle_copy / MANIFEST).read_text())
    manifest["files"][SIGNATURE_FILE] = file_sha256(bundle_copy / SIGNATURE_FILE)
    (bundle_copy / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="must stay outside it"):
        verify_bundle(bundle_copy, allow_unsigned=True)


def test_shipped_demo_bundle_is_signed_by_the_pinned_release_key(monkeypatch: pytest.MonkeyPatch,
                                                                 capsys: pytest.CaptureFixture):
    if not (DEMO / MANIFEST).is_file():
        pytest.skip("weights/demo not built yet")
    monkeypatch.delenv("PLEURA_TRUSTED_KEYS")  # only what the installation pins
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat, load_pem_public_key

    pinned = load_pem_public_key((REPO / "pipeline/serving/trusted_keys/release-ed25519.pub.pem").read_bytes())
    release_id = hashlib.sha256(pinned.public_bytes(Encoding.Raw, PublicFormat.Raw)).hexdigest()
    assert set(trusted_keys()) == {release_id}
    checked = check_bundle(DEMO, allow_unsigned=False)
    assert checked.signature.trusted and checked.signature.key_id == release_id
    assert checked.signature.signer == RELEASE_SIGNER and checked.signature.trusted_as == "release-ed25519, built-in"
    assert main(["verify", str(DEMO)]) == 0
    out = capsys.readouterr().out
    assert f"signature: valid, signed by {RELEASE_SIGNER}" in out and f"key {release_id} is trusted" in out


def test_no_private_key_is_committed():
    needle = b"PRIVATE" + b" KEY-----"  # split so this file does not match itself
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout
    for rel in tracked.decode().split("\0"):
        path = REPO / rel
        if rel and path.is_file() and path.stat().st_size < 5_000_000:
            assert needle not in path.read_bytes(), rel


def test_a_site_key_given_by_the_setting_is_trusted(bundle_copy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    private, public = make_key(tmp_path / "site", "hospital-a")
    sign_for_tests(bundle_copy, key=private, signer="Hospital A model board")
    with pytest.raises(BundleError, match="does not trust"):
        load_bundle(bundle_copy)
    for setting in (str(public), str(public.parent)):  # a key file, or a folder of keys
        monkeypatch.setenv("PLEURA_TRUSTED_KEYS", setting)
        sig = check_bundle(bundle_copy).signature
        assert sig.trusted and sig.signer == "Hospital A model board" and sig.trusted_as == "hospital-a, site"
    monkeypatch.setenv("PLEURA_TRUSTED_KEYS", str(tmp_path / "nowhere"))
    with pytest.raises(BundleError, match="neither a key file nor a folder"):
        check_bundle(bundle_copy)
    monkeypatch.setenv("PLEURA_TRUSTED_KEYS", str(private))  # a private key is not a trusted public key
    with pytest.raises(BundleError, match="is not a PEM public key"):
        check_bundle(bundle_copy)


def test_pleura_sign_cli(bundle_copy: Path, tmp_path: Path, capsys: pytest.CaptureFixture):
    (bundle_copy / SIGNATURE_FILE).unlink()
    private, _public = make_key(tmp_path / "k", "k")
    assert main(["sign", str(bundle_copy), "--key", str(private), "--signer", "Lab  X"]) == 0
    out = capsys.readouterr().out
    assert "signed b as 'Lab X'" in out and "does not trust that key" in out
    assert main(["sign", str(bundle_copy), "--key", str(bundle_copy / MANIFEST)]) == 2
    assert "the signing key is not a PEM private key" in capsys.readouterr().err
    from signing_helpers import TEST_KEY

    assert main(["sign", str(bundle_copy), "--key", str(TEST_KEY)]) == 0
    assert "this installation trusts that key (test-signer, site)" in capsys.readouterr().out
    assert load_bundle(bundle_copy).signature.signer == "test-signer"  # default name: the key's pin name


def test_attaching_files_removes_the_stale_signature(bundle_copy: Path):
    bundle_mod.attach_files(bundle_copy, {"report/extra.json": b"{}"})
    assert not (bundle_copy / SIGNATURE_FILE).exists()
    with pytest.raises(BundleError, match="is unsigned"):
        verify_bundle(bundle_copy)


def test_the_signer_is_shown_in_cli_score_output(bundle_copy: Path, phantom_cohort: Path,
                                                 capsys: pytest.CaptureFixture):
    import csv

    row = next(csv.DictReader(phantom_cohort.open()))
    args = ["score", str(phantom_cohort.parent / row["ct_path"]), str(phantom_cohort.parent / row["roi_path"]),
            "--cea", row["CEA"], "--ca125", row["CA125"], "--age", row["age"], "--bundle", str(bundle_copy),
            "--threads", "2"]
    assert main([*args, "--json"]) == 0
    signed = json.loads(capsys.readouterr().out)["model"]["signature"]
    assert signed["trusted"] and signed["signer"] == TEST_SIGNER and signed["label"].startswith("signed by")
    (bundle_copy / SIGNATURE_FILE).unlink()
    assert main(args) == 2
    assert "is unsigned; refusing to load it" in capsys.readouterr().err
    assert main([*args, "--allow-unsigned"]) == 0
    out = capsys.readouterr().out
    assert "Model: tiny (" in out and "), unsigned model (no signature" in out
