"""Model bundles: a folder in ``weights/`` holding everything needed to score, verified on load.

Layout::

    weights/NAME/
      manifest.json          format version, feature names, PipelineConfig (incl. the PyRadiomics
                             parameter file), backbone identity, sha256 of every other file,
                             training summary, package versions, intended use, synthetic flag
      model.skops            the fitted classifier (skops, explicit trusted-type list; no pickle)
      forest.safetensors     the same classifier's trees as plain arrays (models.tree_arrays): what
                             scoring loads, without importing scikit-learn or skops; bundles
                             without it (older ones) load model.skops
      backbone.safetensors   MedicalNet ResNet-10 weights (fp16), if deep features are used
      backbone.onnx          the same encoder (BatchNorm folded) for ONNX Runtime: what scoring
                             runs, without importing torch; bundles without it use the weights
      MODEL_CARD.md, report/ (optional) human-readable card, metrics, plots

Loading checks every file listed in the manifest against its sha256 **before** any file is
parsed; a missing file, an extra unlisted model file, or a single flipped byte is refused with a
:class:`~pipeline.core.errors.BundleError`. The bundle id shown to users is the sha256 of
``manifest.json`` (which pins every other file's hash).

A bundle is also signed (``signature.json`` beside the manifest, not listed in it; see
:mod:`pipeline.signing`): loading refuses an unsigned bundle or one signed by a key this
installation does not trust unless unsigned models are explicitly allowed, and always refuses a
signature that does not match. The hashes and the signature are both checked before any file is
deserialised.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, NamedTuple

from pipeline import RESEARCH_NOTICE, SYNTHETIC_NOTICE, __version__
from pipeline.core import env
from pipeline.core.config import PipelineConfig
from pipeline.core.errors import BundleError
from pipeline.core.groups import uses_group
from pipeline.core.hashing import bytes_sha256, file_sha256
from pipeline.serving.signing import SIGNATURE_FILE, SignatureCheck, check_signature, enforce

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
MODEL_FILE = "model.skops"
FOREST_FILE = "forest.safetensors"
BACKBONE_FILE = "backbone.safetensors"
BACKBONE_ONNX_FILE = "backbone.onnx"
REPO_ROOT = env.REPO_ROOT

# Types a bundle's model.skops may contain (besides plain containers, strings, numbers and
# arrays). Anything else — including types skops itself trusts by default — is refused, never loaded.
TRUSTED_TYPES = (
    "sklearn.ensemble._forest.RandomForestClassifier",
    "sklearn.tree._classes.DecisionTreeClassifier",
    "sklearn.tree._tree.Tree",
    "sklearn.linear_model._logistic.LogisticRegression",
    "models.deploy.DeployedForest",
    "models.deploy.DeployedLateFusion",
    "numpy.dtype",
    "numpy.ndarray",
)
# Containers and scalars every skops file is built from (data, never code).
_SKOPS_DATA_TYPES = (
    "builtins.dict", "builtins.list", "builtins.tuple", "builtins.str", "builtins.int", "builtins.float",
    "builtins.bool", "numpy.int32", "numpy.int64", "numpy.float32", "numpy.float64", "numpy.bool_",
)

_PACKAGES = ("numpy", "torch", "SimpleITK", "pyradiomics", "scikit-learn", "pyswarms", "shap", "skops", "safetensors", "onnxruntime")


def package_versions() -> dict[str, str]:
    out = {"python": platform.python_version(), "pleurarisk": __version__}
    for name in _PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def default_bundle_path() -> Path:
    """``$PLEURA_BUNDLE`` if set, else ``weights/demo``."""
    s = env.settings()
    return s.bundle if s.bundle else s.weights_dir / "demo"


def list_bundles(weights_dir: Path | None = None) -> list[Path]:
    root = Path(weights_dir or env.settings().weights_dir)
    return sorted(p for p in root.iterdir() if (p / MANIFEST).is_file()) if root.is_dir() else []


class ManifestFacts:
    """What a manifest says about a bundle (shared by loaded bundles and the app's listings).

    Subclasses provide ``path`` and ``manifest`` attributes."""

    path: Path
    manifest: dict[str, Any]
    signature: SignatureCheck

    @property
    def runtime(self) -> str:
        """What scoring with this bundle loads: "onnx" (tree arrays + ONNX backbone, ONNX Runtime
        installed: no torch, scikit-learn or shap) or "torch" (the full stack); used for the ROI
        memory estimate (:func:`pipeline.inputs.roi_checks.estimate_peak_mib`)."""
        return scoring_runtime(self.manifest)

    @property
    def signer_label(self) -> str:
        """Who vouches for the model (or "unsigned model …"), shown wherever the model is named."""
        return self.signature.label

    @property
    def name(self) -> str:
        return str(self.manifest.get("name", self.path.name))

    @property
    def synthetic(self) -> bool:
        return bool(self.manifest.get("trained_on_synthetic_data", False))

    @property
    def notice(self) -> str:
        """The line every result from this model must carry."""
        return SYNTHETIC_NOTICE if self.synthetic else RESEARCH_NOTICE


@dataclass(frozen=True, eq=False)
class ModelBundle(ManifestFacts):
    """A verified, loaded bundle.

    Attributes:
        path: bundle folder.
        bundle_id: sha256 of manifest.json (model identity shown in results, audit, reports).
        manifest: the parsed manifest.
        config: the PipelineConfig the model was trained with (scoring uses exactly this).
        feature_names: the model's input features, in order.
        estimator: the fitted classifier (``predict_proba``).
        backbone: MedicalNet encoder (``None`` when no deep feature is used).
        signature: who signed the bundle and whether this installation trusts the key.
    """

    path: Path
    bundle_id: str
    manifest: dict[str, Any]
    config: PipelineConfig
    feature_names: tuple[str, ...]
    estimator: Any
    backbone: Any
    signature: SignatureCheck = SignatureCheck("unsigned")

    @property
    def threshold(self) -> float:
        return float(self.manifest.get("training", {}).get("threshold", 0.5))


def canonical_skops(data: bytes) -> bytes:
    """Make a skops archive byte-identical for an identical model.

    skops names array files and memo entries after Python object ids (memory addresses), so two
    dumps of the same model differ. Ids are renumbered in order of first appearance in
    ``schema.json``, entries are written sorted with a fixed timestamp. Loading is unaffected.
    """
    import io
    import re
    import zipfile

    src = zipfile.ZipFile(io.BytesIO(data))
    schema = src.read("schema.json").decode()
    # ids appear as  "__id__": 140638608541552  and  "file": "140638576022544.npy"  — only those
    # contexts are renumbered (a float such as 0.8094772473861893 must never be touched)
    pattern = re.compile(r'("__id__":\s*)(\d+)|("file":\s*")(\d+)(\.npy")')
    mapping: dict[str, str] = {}

    def renumber(m: re.Match) -> str:
        token = m.group(2) or m.group(4)
        new = mapping.setdefault(token, str(len(mapping) + 1))
        return f"{m.group(1)}{new}" if m.group(2) else f"{m.group(3)}{new}{m.group(5)}"

    new_schema = pattern.sub(renumber, schema)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as dst:
        entries = {"schema.json": new_schema.encode()}
        for name in src.namelist():
            if name == "schema.json":
                continue
            stem, dot, ext = name.partition(".")
            entries[(mapping.get(stem, stem) + dot + ext)] = src.read(name)
        for name in sorted(entries):
            info = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            dst.writestr(info, entries[name])
    return out.getvalue()


def canonicalise_safetensors(path: Path) -> None:
    """Rewrite a safetensors header with sorted keys (same length, space-padded).

    The safetensors writer keeps metadata in a hash map, so two saves of the same weights can
    order the header differently; sorting makes the file byte-identical for identical weights.
    Tensor data and offsets are unchanged.
    """
    import struct

    raw = bytearray(path.read_bytes())
    (length,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + length])
    canonical = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    if len(canonical) > length:
        return  # cannot happen for a compact writer; leave the file as written
    raw[8:8 + length] = canonical + b" " * (length - len(canonical))
    path.write_bytes(bytes(raw))


def _write_json(path: Path, data: Mapping[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=False, allow_nan=False) + "\n", encoding="utf-8")


def write_bundle(out_dir: str | os.PathLike[str], *, estimator: Any, feature_names: Sequence[str],
                 config: PipelineConfig, backbone: Any = None, backbone_source: str = "",
                 synthetic: bool, training: Mapping[str, Any] | None = None,
                 intended_use: str = "Research use only; not a medical device.",
                 model_card: str | None = None, extra_files: Mapping[str, bytes] | None = None,
                 name: str | None = None) -> Path:
    """Write a bundle atomically (temporary folder, then rename) and return its path.

    Args:
        estimator: fitted classifier whose ``predict_proba`` takes ``feature_names`` columns.
        backbone: ``models.medicalnet.MedicalNetResNet10`` saved as fp16 safetensors (required
            if any ``dl_*`` feature is used).
        backbone_source: honest description of where the backbone weights came from.
        synthetic: the model was trained on synthetic data (adds the notice everywhere).
        training: JSON-safe training summary (metrics, threshold, PSO trajectory …).
        extra_files: relative path → bytes (report plots, JSON) stored and hashed too.
    """
    import skops.io as sio

    out = Path(out_dir)
    names = list(feature_names)
    uses_deep = uses_group(names, "deep")
    if uses_deep and backbone is None:
        raise BundleError("the model uses deep features (dl_*) but no backbone was given")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        (tmp / MODEL_FILE).write_bytes(canonical_skops(sio.dumps(estimator)))
        files = [MODEL_FILE]
        if write_forest_arrays(estimator, tmp / FOREST_FILE):
            files.append(FOREST_FILE)
        backbone_info: dict[str, Any] | None = None
        if backbone is not None:
            from models.medicalnet import save_backbone_safetensors

            save_backbone_safetensors(backbone, tmp / BACKBONE_FILE)
            canonicalise_safetensors(tmp / BACKBONE_FILE)
            files.append(BACKBONE_FILE)
            if write_backbone_onnx(backbone, tmp / BACKBONE_ONNX_FILE):
                files.append(BACKBONE_ONNX_FILE)
            backbone_info = {"architecture": "MedicalNet ResNet-10 (shortcut B), 512-d GAP encoder",
                             "file": BACKBONE_FILE, "dtype": "float16", "source": backbone_source}
        if model_card is not None:
            (tmp / "MODEL_CARD.md").write_text(model_card, encoding="utf-8")
            files.append("MODEL_CARD.md")
        for rel, data in (extra_files or {}).items():
            target = tmp / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
            files.append(rel)
        manifest = {
            "format": "pleurarisk-bundle",
            "format_version": FORMAT_VERSION,
            "name": name or out.name,
            "created": _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat(),
            "intended_use": intended_use,
            "trained_on_synthetic_data": bool(synthetic),
            "notice": SYNTHETIC_NOTICE if synthetic else RESEARCH_NOTICE,
            "feature_names": names,
            "config": config.to_dict(),
            "backbone": backbone_info,
            "training": dict(training or {}),
            "package_versions": package_versions(),
            "files": {rel: file_sha256(tmp / rel) for rel in sorted(files)},
        }
        _write_json(tmp / MANIFEST, manifest)
        os.chmod(tmp, 0o755)
        for f in tmp.rglob("*"):
            os.chmod(f, 0o755 if f.is_dir() else 0o644)
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


class BundleCheck(NamedTuple):
    """A bundle whose files match its manifest: the manifest, its sha256 (bundle id) and the signature check."""

    manifest: dict[str, Any]
    bundle_id: str
    signature: SignatureCheck


def check_bundle(path: str | os.PathLike[str], *, allow_unsigned: bool | None = None) -> BundleCheck:
    """Check a bundle's manifest, every file's sha256 and its signature (nothing is deserialised).

    Args:
        allow_unsigned: load an unsigned bundle or one signed by an untrusted key (labelled
            "unsigned model"); ``None`` reads ``$PLEURA_ALLOW_UNSIGNED``.

    Raises:
        BundleError: see :func:`verify_files`; unsigned, unknown key (unless allowed) or bad signature.
    """
    root = Path(path)
    manifest, bundle_id = verify_files(root)
    signature = check_signature(root, manifest_sha256=bundle_id)
    enforce(signature, bundle_name=root.name, allow_unsigned=allow_unsigned)
    return BundleCheck(manifest, bundle_id, signature)


def verify_bundle(path: str | os.PathLike[str], *, allow_unsigned: bool | None = None) -> tuple[dict[str, Any], str]:
    """:func:`check_bundle` (hashes and signature policy); return (manifest, bundle_id)."""
    checked = check_bundle(path, allow_unsigned=allow_unsigned)
    return checked.manifest, checked.bundle_id


def verify_files(path: str | os.PathLike[str]) -> tuple[dict[str, Any], str]:
    """Check a bundle's manifest and every file's sha256 (not its signature); return (manifest, bundle_id).

    Raises:
        BundleError: folder or manifest missing/invalid, unsupported format version, a listed file
            missing or with a different sha256, an unlisted model file present, or the manifest
            listing the signature file.
    """
    root = Path(path)
    mpath = root / MANIFEST
    if not root.is_dir():
        raise BundleError(f"model bundle folder not found: {root}")
    if not mpath.is_file():
        raise BundleError(f"model bundle {root.name!r} has no {MANIFEST}")
    raw = mpath.read_bytes()
    try:
        manifest = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):  # RecursionError: nested absurdly deep
        raise BundleError(f"model bundle {root.name!r}: {MANIFEST} is not valid JSON") from None
    if not isinstance(manifest, dict) or manifest.get("format") != "pleurarisk-bundle":
        raise BundleError(f"model bundle {root.name!r}: {MANIFEST} is not a PleuraRisk manifest")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise BundleError(
            f"model bundle {root.name!r} has format version {manifest.get('format_version')}, this PleuraRisk reads {FORMAT_VERSION}"
        )
    files = manifest.get("files")
    if not isinstance(files, dict) or (MODEL_FILE not in files and FOREST_FILE not in files):
        raise BundleError(f"model bundle {root.name!r}: manifest lists no {MODEL_FILE}")
    if SIGNATURE_FILE in files:
        raise BundleError(f"model bundle {root.name!r}: its manifest lists {SIGNATURE_FILE}, "
                          "which must stay outside it")
    for rel, expected in files.items():
        target = (root / rel).resolve()
        if root.resolve() not in target.parents:
            raise BundleError(f"model bundle {root.name!r}: manifest path {rel!r} leaves the bundle folder")
        if not target.is_file():
            raise BundleError(f"model bundle {root.name!r} is missing {rel} (listed in its manifest)")
        actual = file_sha256(target)
        if actual != expected:
            raise BundleError(
                f"model bundle {root.name!r}: {rel} fails its sha256 check (file changed or corrupt); refusing to load it"
            )
    for candidate in (MODEL_FILE, FOREST_FILE, BACKBONE_FILE, BACKBONE_ONNX_FILE):
        if (root / candidate).exists() and candidate not in files:
            raise BundleError(f"model bundle {root.name!r}: {candidate} is present but not listed in the manifest")
    return manifest, bytes_sha256(raw)


def _skops_types(path: Path) -> set[str]:
    """Every ``module.Class`` a skops file names, read from its schema without importing anything.

    ``skops.io.get_untrusted_types`` leaves out the types skops trusts by default (every
    scikit-learn estimator, numpy functions …), so the bundle's own allow-list is checked against
    this complete set instead.
    """
    import zipfile

    found: set[str] = set()

    def note(node: dict[str, Any]) -> dict[str, Any]:  # called by the parser for every JSON object
        module, cls = node.get("__module__"), node.get("__class__")
        if isinstance(module, str) and isinstance(cls, str):
            found.add(f"{module}.{cls}")
        return node

    with zipfile.ZipFile(path) as zf:
        json.loads(zf.read("schema.json"), object_hook=note)
    return found


def load_skops_model(root: Path) -> Any:
    """The classifier in a verified bundle's ``model.skops`` (imports skops and scikit-learn: slow).

    Only the types in :data:`TRUSTED_TYPES` are accepted."""
    import skops.io as sio
    from skops.io.exceptions import UntrustedTypesFoundException

    try:
        types = _skops_types(root / MODEL_FILE)
    except Exception as exc:  # noqa: BLE001 - any parse failure is a bad bundle
        raise BundleError(f"model bundle {root.name!r}: {MODEL_FILE} could not be read ({type(exc).__name__})") from None
    refused = sorted(t for t in types if t not in TRUSTED_TYPES and t not in _SKOPS_DATA_TYPES)
    if refused:
        raise BundleError(f"model bundle {root.name!r}: {MODEL_FILE} contains types PleuraRisk does not trust: {refused[:5]}")
    try:
        # skops audits the file once more against exactly this list while loading (one walk of
        # its tree; a separate get_untrusted_types() pass cost ~1 s of start-up for the demo model)
        return sio.load(root / MODEL_FILE, trusted=sorted(types))
    except UntrustedTypesFoundException as exc:  # a type our schema walk did not see: still refused
        found = str(exc).split("\n", 1)[0].removeprefix("Untrusted types found in the file: ").rstrip(".")
        raise BundleError(f"model bundle {root.name!r}: {MODEL_FILE} contains types PleuraRisk does not trust: "
                          f"{found}") from None
    except Exception as exc:  # noqa: BLE001 - any parse failure is a bad bundle
        raise BundleError(f"model bundle {root.name!r}: {MODEL_FILE} could not be loaded ({type(exc).__name__})") from None


def write_forest_arrays(estimator: Any, path: Path) -> bool:
    """Write ``estimator``'s trees as ``forest.safetensors`` (byte-identical for an identical model);
    False when it is not a tree ensemble the array form can hold."""
    from models.tree_arrays import from_estimator, save_model_arrays

    try:
        model = from_estimator(estimator)
    except (AttributeError, ValueError):
        return False
    save_model_arrays(model, path)
    canonicalise_safetensors(path)
    return True


def onnx_runtime_available() -> bool:
    """ONNX Runtime is installed (checked without importing it)."""
    from importlib.util import find_spec

    return find_spec("onnxruntime") is not None


def write_backbone_onnx(backbone: Any, path: Path) -> bool:
    """Export the backbone for ONNX Runtime (:func:`models.onnx_backbone.export_backbone_onnx`);
    False when the exporter's ``onnx`` package is not installed (the bundle then scores with torch)."""
    from importlib.util import find_spec

    if find_spec("onnx") is None:
        return False
    from models.onnx_backbone import export_backbone_onnx

    export_backbone_onnx(backbone, path)
    return True


def _manifest_settings(root: Path, manifest: Mapping[str, Any]) -> tuple[PipelineConfig, tuple[str, ...]]:
    try:
        return PipelineConfig.from_dict(manifest["config"]), tuple(manifest["feature_names"])
    except (KeyError, TypeError, ValueError) as exc:
        raise BundleError(f"model bundle {root.name!r}: invalid manifest ({exc})") from None


def scoring_runtime(manifest: Mapping[str, Any]) -> str:
    """"onnx" when a bundle with this manifest scores without torch (its classifier as tree arrays,
    its backbone, if any, as ONNX, and ONNX Runtime installed), else "torch"."""
    files = manifest.get("files", {})
    deep = uses_group(tuple(manifest.get("feature_names", ())), "deep")
    light = FOREST_FILE in files and (not deep or (BACKBONE_ONNX_FILE in files and onnx_runtime_available()))
    return "onnx" if light else "torch"


def bundle_setup(path: str | os.PathLike[str] | None = None, *,
                 allow_unsigned: bool | None = None) -> tuple[PipelineConfig, str]:
    """The verified settings of a bundle and its scoring runtime (:func:`scoring_runtime`) without
    loading its model (fast: no skops, torch or ONNX Runtime).

    Lets a caller check a case's images with exactly the model's settings before paying for
    :func:`load_bundle`. Same refusals as :func:`check_bundle`, plus an invalid config.
    """
    root = Path(path) if path is not None else default_bundle_path()
    manifest, _bundle_id = verify_bundle(root, allow_unsigned=allow_unsigned)
    return _manifest_settings(root, manifest)[0], scoring_runtime(manifest)


def bundle_config(path: str | os.PathLike[str] | None = None, *, allow_unsigned: bool | None = None) -> PipelineConfig:
    """The verified settings of a bundle without loading its model (see :func:`bundle_setup`)."""
    return bundle_setup(path, allow_unsigned=allow_unsigned)[0]


def load_bundle(path: str | os.PathLike[str] | None = None, *, allow_unsigned: bool | None = None) -> ModelBundle:
    """Verify (sha256 of every file, signature) and load a bundle; see :func:`check_bundle` for
    refusals and ``allow_unsigned``. The classifier comes from ``forest.safetensors`` when the
    bundle has one (no scikit-learn or skops import), else from ``model.skops``."""
    root = Path(path) if path is not None else default_bundle_path()
    manifest, bundle_id, signature = check_bundle(root, allow_unsigned=allow_unsigned)
    config, feature_names = _manifest_settings(root, manifest)
    if FOREST_FILE in manifest["files"]:
        from models.tree_arrays import load_model_arrays

        try:
            estimator = load_model_arrays(root / FOREST_FILE)
        except Exception as exc:  # noqa: BLE001 - any parse failure is a bad bundle
            raise BundleError(f"model bundle {root.name!r}: {FOREST_FILE} could not be loaded "
                              f"({type(exc).__name__})") from None
    else:
        estimator = load_skops_model(root)
    backbone = None
    if uses_group(feature_names, "deep"):
        if BACKBONE_ONNX_FILE in manifest["files"] and onnx_runtime_available():
            from models.onnx_backbone import OnnxBackbone

            backbone = OnnxBackbone(root / BACKBONE_ONNX_FILE)
        else:
            if not (root / BACKBONE_FILE).is_file():
                raise BundleError(f"model bundle {root.name!r} uses deep features but has no {BACKBONE_FILE}")
            from models.medicalnet import load_backbone_safetensors

            backbone = load_backbone_safetensors(root / BACKBONE_FILE)
    n_in = getattr(estimator, "n_features_in_", len(feature_names))
    if n_in != len(feature_names):
        raise BundleError(
            f"model bundle {root.name!r}: the model expects {n_in} features but the manifest lists {len(feature_names)}"
        )
    return ModelBundle(root, bundle_id, manifest, config, feature_names, estimator, backbone, signature)


def attach_files(path: str | os.PathLike[str], files: Mapping[str, bytes], *,
                 manifest_updates: Mapping[str, Any] | None = None, card_append: str | None = None) -> str:
    """Add report files to a verified bundle and re-seal its manifest (new sha256 entries).

    The model files are untouched; the bundle id (sha256 of the manifest) changes, as it must,
    so a signature no longer matches: it is removed (the bundle is then unsigned until it is
    signed again with ``pleura sign``). A bad signature is refused as when loading.
    Used by ``pleura evaluate --attach`` to keep external-validation results inside the bundle.
    Returns the new bundle id.
    """
    root = Path(path)
    manifest, _, _signature = check_bundle(root, allow_unsigned=True)
    for rel, data in files.items():
        if rel in (MANIFEST, MODEL_FILE, FOREST_FILE, BACKBONE_FILE, BACKBONE_ONNX_FILE, SIGNATURE_FILE) or rel.startswith(("/", "..")):
            raise BundleError(f"cannot attach {rel!r} to a bundle")
        target = root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        manifest["files"][rel] = file_sha256(target)
    if card_append and (root / "MODEL_CARD.md").is_file():
        card = (root / "MODEL_CARD.md").read_text(encoding="utf-8").rstrip("\n") + "\n\n" + card_append.strip("\n") + "\n"
        (root / "MODEL_CARD.md").write_text(card, encoding="utf-8")
        manifest["files"]["MODEL_CARD.md"] = file_sha256(root / "MODEL_CARD.md")
    for key, value in (manifest_updates or {}).items():
        if isinstance(value, Mapping) and isinstance(manifest.get(key), dict):
            manifest[key].update(value)
        else:
            manifest[key] = value
    tmp = root / (MANIFEST + ".tmp")
    _write_json(tmp, manifest)
    (root / SIGNATURE_FILE).unlink(missing_ok=True)  # it signed the old manifest
    os.replace(tmp, root / MANIFEST)
    return bytes_sha256((root / MANIFEST).read_bytes())


def sign_bundle(path: str | os.PathLike[str], *, key_path: str | os.PathLike[str],
                signer: str | None = None) -> SignatureCheck:
    """Sign a bundle with an Ed25519 private key (PEM) and return how this installation sees it now.

    The files are verified (sha256) first; an existing signature is replaced. ``signer`` defaults
    to the key's pin name when the key is trusted here, else ``key <key id prefix>``.

    Raises:
        BundleError: the bundle fails verification, or the key is not a usable Ed25519 private key.
    """
    from pipeline.serving.signing import key_id_of, load_private_key, trusted_keys, write_signature

    root = Path(path)
    _manifest, bundle_id = verify_files(root)
    key = load_private_key(key_path)
    if signer is None:
        pinned = trusted_keys().get(key_id_of(key.public_key()))
        signer = pinned.name if pinned else f"key {key_id_of(key.public_key())[:16]}"
    write_signature(root, manifest_sha256=bundle_id, private_key=key, signer=signer)
    return check_signature(root, manifest_sha256=bundle_id)
