"""Signed model bundles: who vouches for a bundle, checked against public keys this installation pins.

A bundle's ``manifest.json`` pins the sha256 of every other file, so a signature over the
manifest covers the whole bundle. The signature is a detached file in the bundle folder
(``signature.json``, never listed in the manifest)::

    {"format": "pleurarisk-bundle-signature", "version": 1, "algorithm": "Ed25519",
     "key_id": "<sha256 of the raw 32-byte public key, hex>", "signer": "<name>",
     "signed_at": "<UTC ISO time>", "manifest_sha256": "<sha256 of manifest.json = bundle id>",
     "signature": "<base64 Ed25519 signature>"}

The Ed25519 signature covers every field but ``signature`` (canonical JSON: sorted keys, no
spaces, ASCII), so neither the manifest nor the signer's name or time can be changed afterwards.

Trusted keys (Ed25519 public keys, PEM ``-----BEGIN PUBLIC KEY-----``):

* the keys shipped with PleuraRisk in ``pipeline/serving/trusted_keys/*.pem`` (the release key that signs
  ``weights/demo``);
* a site's own keys: ``$PLEURA_TRUSTED_KEYS``, one or more PEM files or folders of ``*.pem`` files
  separated by ``:`` (``os.pathsep``).

Loading policy (:func:`enforce`): a bundle signed by a trusted key loads; an unsigned bundle or
one signed by a key this installation does not trust is refused unless the user explicitly
allows unsigned models (``--allow-unsigned`` or ``PLEURA_ALLOW_UNSIGNED=1``), and is then labelled
"unsigned model" wherever the model is shown; a signature that does not match the bundle (changed
after signing, or a corrupt signature file) is always refused.

Example:
    >>> SignatureCheck("unsigned").label
    'unsigned model (no signature; loaded because unsigned models were explicitly allowed)'
"""

from __future__ import annotations

import base64
import binascii
import datetime as _dt
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.core.env import settings
from pipeline.core.errors import BundleError

SIGNATURE_FILE = "signature.json"
SIGNATURE_FORMAT = "pleurarisk-bundle-signature"
SIGNATURE_VERSION = 1
ALGORITHM = "Ed25519"
BUILTIN_KEYS_DIR = Path(__file__).resolve().parent / "trusted_keys"
ENV_TRUSTED_KEYS = "PLEURA_TRUSTED_KEYS"
ENV_ALLOW_UNSIGNED = "PLEURA_ALLOW_UNSIGNED"
_SIGNED_FIELDS = ("format", "version", "algorithm", "key_id", "signer", "signed_at", "manifest_sha256")

TRUSTED, UNSIGNED, UNKNOWN_KEY, BAD_SIGNATURE = "trusted", "unsigned", "unknown-key", "bad-signature"


@dataclass(frozen=True)
class TrustedKey:
    """A pinned public key: ``key_id`` (sha256 of the raw key, hex), ``name`` (file name without
    ``.pem``/``.pub``), ``source`` ("built-in" or "site")."""

    key_id: str
    name: str
    source: str
    public_key: Any  # cryptography Ed25519PublicKey


@dataclass(frozen=True)
class SignatureCheck:
    """The outcome of checking a bundle's signature (never raises; :func:`enforce` decides).

    Attributes:
        state: ``trusted``, ``unsigned``, ``unknown-key`` or ``bad-signature``.
        signer: the name in the signature file (signed together with the manifest).
        key_id: sha256 of the signing public key (hex).
        signed_at: UTC time written by ``pleura sign``.
        trusted_as: for a trusted key, its pin name and source (e.g. "release-ed25519, built-in").
        reason: for ``bad-signature``, what did not match.
    """

    state: str
    signer: str = ""
    key_id: str = ""
    signed_at: str = ""
    trusted_as: str = ""
    reason: str = ""

    @property
    def trusted(self) -> bool:
        return self.state == TRUSTED

    @property
    def label(self) -> str:
        """One line naming who vouches for the model, shown next to the model's name everywhere."""
        if self.state == TRUSTED:
            return f"signed by {self.signer} (key {self.key_id[:16]}, trusted: {self.trusted_as})"
        if self.state == UNKNOWN_KEY:
            return (f"unsigned model (signed by {self.signer!r} with key {self.key_id[:16]}, which this installation "
                    "does not trust; loaded because unsigned models were explicitly allowed)")
        if self.state == UNSIGNED:
            return "unsigned model (no signature; loaded because unsigned models were explicitly allowed)"
        return f"bad signature ({self.reason})"

    def to_dict(self) -> dict[str, Any]:
        return {"state": self.state, "trusted": self.trusted, "signer": self.signer or None,
                "key_id": self.key_id or None, "signed_at": self.signed_at or None, "label": self.label}


# ------------------------------------------------------------------------------------------------
# keys
def key_id_of(public_key: Any) -> str:  # noqa: ANN401 - cryptography Ed25519PublicKey
    """sha256 (hex) of the raw 32-byte Ed25519 public key."""
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    return hashlib.sha256(public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)).hexdigest()


def _key_name(path: Path) -> str:
    name = path.name
    for suffix in (".pem", ".pub"):
        name = name.removesuffix(suffix)
    return name


def read_public_key(path: Path, *, source: str) -> TrustedKey:
    """One PEM Ed25519 public key file → :class:`TrustedKey`.

    Raises:
        BundleError: not readable, not PEM, or not an Ed25519 key.
    """
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    what = "a trusted public key" if source == "built-in" else f"a trusted public key named by ${ENV_TRUSTED_KEYS}"
    try:
        key = load_pem_public_key(path.read_bytes())
    except OSError as exc:
        raise BundleError(f"{what} ({path.name}) could not be read ({exc.strerror or type(exc).__name__})") from None
    except ValueError:
        raise BundleError(f"{what} ({path.name}) is not a PEM public key") from None
    if not isinstance(key, Ed25519PublicKey):
        raise BundleError(f"{what} ({path.name}) is not an Ed25519 key")
    return TrustedKey(key_id_of(key), _key_name(path), source, key)


def _pem_files(entry: Path, *, source: str) -> list[Path]:
    if entry.is_dir():
        return sorted(p for p in entry.iterdir() if p.is_file() and p.suffix == ".pem")
    if entry.is_file():
        return [entry]
    if source == "built-in":
        return []
    raise BundleError(f"${ENV_TRUSTED_KEYS} names {entry}, which is neither a key file nor a folder")


def trusted_keys() -> dict[str, TrustedKey]:
    """Every key this installation trusts, by key id: built-in first, then ``$PLEURA_TRUSTED_KEYS``.

    Read on every call (a few small files), so a changed setting applies at once.
    """
    keys: dict[str, TrustedKey] = {}
    sources = [(BUILTIN_KEYS_DIR, "built-in"), *((p, "site") for p in settings().trusted_keys)]
    for entry, source in sources:
        for path in _pem_files(entry, source=source):
            key = read_public_key(path, source=source)
            keys.setdefault(key.key_id, key)
    return keys


def allow_unsigned_from_env() -> bool:
    """``$PLEURA_ALLOW_UNSIGNED`` is on (the app's and batch's explicit allowance)."""
    return settings().allow_unsigned


# ------------------------------------------------------------------------------------------------
# signing and checking
def _canonical(fields: dict[str, Any]) -> bytes:
    return json.dumps({k: fields[k] for k in _SIGNED_FIELDS}, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=True).encode()


def load_private_key(path: str | os.PathLike[str]) -> Any:  # noqa: ANN401 - Ed25519PrivateKey
    """An unencrypted PEM (PKCS#8) Ed25519 private key.

    Raises:
        BundleError: unreadable, encrypted, not PEM or not Ed25519 (the message never shows key bytes).
    """
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    try:
        key = load_pem_private_key(Path(path).read_bytes(), password=None)
    except OSError as exc:
        raise BundleError(f"the signing key could not be read ({exc.strerror or type(exc).__name__})") from None
    except TypeError:
        raise BundleError("the signing key is encrypted; give an unencrypted PEM key file") from None
    except ValueError:
        raise BundleError("the signing key is not a PEM private key") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise BundleError("the signing key is not an Ed25519 key")
    return key


def write_signature(root: Path, *, manifest_sha256: str, private_key: Any, signer: str,  # noqa: ANN401
                    signed_at: _dt.datetime | None = None) -> dict[str, Any]:
    """Sign a bundle whose manifest has sha256 ``manifest_sha256`` (already verified by the caller)
    and write ``signature.json`` atomically; return its content."""
    signer = " ".join(str(signer).split())
    if not signer:
        raise BundleError("the signer name is empty")
    when = (signed_at or _dt.datetime.now(_dt.timezone.utc)).replace(microsecond=0)
    fields: dict[str, Any] = {
        "format": SIGNATURE_FORMAT, "version": SIGNATURE_VERSION, "algorithm": ALGORITHM,
        "key_id": key_id_of(private_key.public_key()), "signer": signer, "signed_at": when.isoformat(),
        "manifest_sha256": manifest_sha256,
    }
    fields["signature"] = base64.b64encode(private_key.sign(_canonical(fields))).decode("ascii")
    tmp = root / (SIGNATURE_FILE + ".tmp")
    tmp.write_text(json.dumps(fields, indent=2) + "\n", encoding="utf-8")
    os.chmod(tmp, 0o644)
    os.replace(tmp, root / SIGNATURE_FILE)
    return fields


def check_signature(root: Path, *, manifest_sha256: str, keys: dict[str, TrustedKey] | None = None) -> SignatureCheck:
    """Check ``root/signature.json`` against the manifest's sha256 and the trusted keys."""
    from cryptography.exceptions import InvalidSignature

    path = root / SIGNATURE_FILE
    if not path.exists():
        return SignatureCheck(UNSIGNED)
    try:
        data = json.loads(path.read_bytes())
        if not isinstance(data, dict) or data.get("format") != SIGNATURE_FORMAT:
            raise ValueError
        fields = {k: data[k] for k in _SIGNED_FIELDS}
        raw_sig = base64.b64decode(str(data["signature"]), validate=True)
    except (OSError, ValueError, KeyError, binascii.Error):
        return SignatureCheck(BAD_SIGNATURE, reason=f"{SIGNATURE_FILE} is not a PleuraRisk signature file")
    signer, key_id = str(fields["signer"]), str(fields["key_id"])
    common = {"signer": signer, "key_id": key_id, "signed_at": str(fields["signed_at"])}
    if fields["version"] != SIGNATURE_VERSION or fields["algorithm"] != ALGORITHM:
        return SignatureCheck(BAD_SIGNATURE, reason=f"unsupported signature ({fields['algorithm']}, "
                              f"version {fields['version']})", **common)
    keys = trusted_keys() if keys is None else keys
    key = keys.get(key_id)
    if key is None:
        return SignatureCheck(UNKNOWN_KEY, **common)
    try:
        key.public_key.verify(raw_sig, _canonical(fields))
    except InvalidSignature:
        return SignatureCheck(BAD_SIGNATURE, reason="the signature does not verify with the signer's key "
                              "(the signature file was altered)", **common)
    if fields["manifest_sha256"] != manifest_sha256:
        return SignatureCheck(BAD_SIGNATURE, reason="manifest.json changed after the bundle was signed", **common)
    return SignatureCheck(TRUSTED, trusted_as=f"{key.name}, {key.source}", **common)


def enforce(check: SignatureCheck, *, bundle_name: str, allow_unsigned: bool | None) -> None:
    """Refuse a bundle that is not signed by a trusted key, unless unsigned models are allowed.

    ``allow_unsigned=None`` reads ``$PLEURA_ALLOW_UNSIGNED``. A bad signature is refused even then.

    Raises:
        BundleError: one sentence saying which of unsigned / unknown key / bad signature.
    """
    if check.trusted:
        return
    name = repr(bundle_name)
    if check.state == BAD_SIGNATURE:
        raise BundleError(
            f"model bundle {name} has a bad signature: {check.reason}; refusing to load it (re-sign it with "
            f"`pleura sign`, or delete its {SIGNATURE_FILE} to treat it as an unsigned model)")
    allowed = allow_unsigned_from_env() if allow_unsigned is None else allow_unsigned
    if allowed:
        return
    hint = f"pass --allow-unsigned (app and batch: {ENV_ALLOW_UNSIGNED}=1) to load it anyway"
    if check.state == UNSIGNED:
        raise BundleError(f"model bundle {name} is unsigned; refusing to load it (sign it with `pleura sign`, "
                          f"or {hint})")
    raise BundleError(
        f"model bundle {name} is signed by {check.signer!r} with key {check.key_id[:16]}, which this installation "
        f"does not trust; refusing to load it (add the signer's public key to ${ENV_TRUSTED_KEYS}, or {hint})")
