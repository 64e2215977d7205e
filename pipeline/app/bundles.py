"""Model bundles as the pages show them: which exist, a verified description of one (no model
loaded), training and version rows, the message shown when there is none.
"""


from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.serving.bundle import MANIFEST, ManifestFacts, check_bundle, default_bundle_path, list_bundles, package_versions
from pipeline.core.env import settings
from pipeline.core.errors import BundleError
from pipeline.serving.signing import SignatureCheck


ENV_BUNDLE = "PLEURA_BUNDLE"

NO_BUNDLE_HELP = (
    "No model bundle was found. PleuraRisk looks at `$PLEURA_BUNDLE` and then `weights/demo`. "
    "Put a bundle folder (with `manifest.json`) into `weights/`, or start the app with "
    "`PLEURA_BUNDLE=/path/to/bundle pleura app`. The demo bundle is rebuilt from synthetic phantoms by "
    "`bash scripts/build_demo_model.sh`."
)
GENERIC_ERROR = "Something went wrong while processing this request; nothing was saved. Please try again, and report it if it persists."

def bundle_choices(weights_dir: str | os.PathLike[str] | None = None) -> list[Path]:
    """Bundles the user can pick: ``$PLEURA_BUNDLE`` (if it has a manifest) first, then every
    bundle in ``weights/`` (sorted), without duplicates."""
    out: list[Path] = []
    env = os.environ.get(ENV_BUNDLE)
    if env and (Path(env) / MANIFEST).is_file():
        out.append(Path(env))
    for p in list_bundles(Path(weights_dir) if weights_dir else None):
        if all(p.resolve() != q.resolve() for q in out):
            out.append(p)
    return out


def initial_bundle_path(weights_dir: str | os.PathLike[str] | None = None) -> Path | None:
    """The bundle a new session starts with: the default (``$PLEURA_BUNDLE`` or ``weights/demo``)
    when it exists, else the first available one, else ``None``."""
    default = default_bundle_path()
    if (default / MANIFEST).is_file():
        return default
    choices = bundle_choices(weights_dir)
    return choices[0] if choices else None


def bundle_stamp(path: str | os.PathLike[str]) -> tuple:
    """Cheap change detector for cache keys: (name, size, mtime_ns) of the bundle's top-level files
    (signature.json included), then the signature settings (a changed allowance or key list must
    not reuse a bundle checked under the old one)."""
    s = settings()
    policy = ("signature settings", s.allow_unsigned, tuple(str(p) for p in s.trusted_keys))
    root = Path(path)
    try:
        files = tuple(sorted((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in root.iterdir() if p.is_file()))
    except OSError:
        return (policy,)
    return (*files, policy)


@dataclass(frozen=True, eq=False)
class BundleInfo(ManifestFacts):
    """A bundle described for display (verified by sha256 and signature, model not loaded).

    ``error`` holds the refusal message when the bundle is missing or fails verification (also an
    unsigned or untrusted bundle unless ``PLEURA_ALLOW_UNSIGNED=1``); the other fields are then empty.
    """

    path: Path
    error: str | None = None
    bundle_id: str = ""
    manifest: dict[str, Any] = field(default_factory=dict)
    model_card: str | None = None
    report_files: tuple[str, ...] = ()
    signature: SignatureCheck = SignatureCheck("unsigned")

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def short_id(self) -> str:
        return self.bundle_id[:12]

    def summary_rows(self) -> list[tuple[str, str]]:
        """(field, value) rows of the model card summary shown on Home and Model."""
        m = self.manifest
        training = m.get("training") or {}
        features = m.get("feature_names") or []
        from pipeline.core.groups import group_columns

        try:
            groups = ", ".join(f"{g} {len(c)}" for g, c in group_columns(features).items())
        except ValueError:
            groups = f"{len(features)} features"
        rows = [
            ("Model", self.name),
            ("Signed by", self.signer_label),
            ("Bundle id", self.bundle_id),
            ("Created", str(m.get("created", "unknown"))),
            ("Trained on", "synthetic phantoms (demo)" if self.synthetic else "real data (see model card)"),
            ("Intended use", str(m.get("intended_use", ""))),
            ("Features", f"{len(features)} ({groups})"),
            ("Method", str(training.get("method", "not recorded"))),
            ("Operating threshold", f"{float(training.get('threshold', 0.5)):.2f}"),
        ]
        if "n_cases" in training:
            rows.append(("Training cases", f"{training['n_cases']} ({training.get('n_positive', '?')} with VPI)"))
        backbone = m.get("backbone") or {}
        if backbone:
            rows.append(("CNN backbone", f"{backbone.get('architecture', '')}; weights: {backbone.get('source', 'not recorded')}"))
        return rows


def describe_bundle(path: str | os.PathLike[str] | None) -> BundleInfo:
    """Verify a bundle's files (sha256) and read its manifest, model card and report file list.

    Never raises for a bad bundle: the refusal is in :attr:`BundleInfo.error`.
    """
    if path is None:
        return BundleInfo(Path(default_bundle_path()), error=NO_BUNDLE_HELP)
    root = Path(path)
    if not (root / MANIFEST).is_file():
        return BundleInfo(root, error=f"No model bundle at `{root}`. {NO_BUNDLE_HELP}")
    try:
        manifest, bundle_id, signature = check_bundle(root)
    except BundleError as err:
        return BundleInfo(root, error=str(err))
    card_path = root / "MODEL_CARD.md"
    card = card_path.read_text(encoding="utf-8", errors="replace") if card_path.is_file() else None
    listed = manifest.get("files") or {}
    reports = tuple(sorted(rel for rel in listed if rel.startswith("report/") and rel.lower().endswith((".png", ".html", ".htm", ".json", ".csv", ".svg"))))
    return BundleInfo(root, None, bundle_id, manifest, card, reports, signature)


def _scalar(v: Any) -> bool:
    return isinstance(v, (int, float, str, bool)) or v is None


def training_rows(manifest: dict[str, Any], *, max_depth: int = 3) -> list[tuple[str, str]]:
    """Scalar entries of ``manifest['training']`` flattened to ``a.b.c`` keys (lists left out)."""
    rows: list[tuple[str, str]] = []

    def walk(prefix: str, value: Any, depth: int) -> None:
        if _scalar(value):
            rows.append((prefix, f"{value:.4g}" if isinstance(value, float) else str(value)))
        elif isinstance(value, dict) and depth < max_depth:
            for k, v in value.items():
                walk(f"{prefix}.{k}" if prefix else str(k), v, depth + 1)

    walk("", manifest.get("training") or {}, 0)
    return rows


def version_rows(manifest: dict[str, Any]) -> list[dict[str, str]]:
    """Package versions the bundle was built with next to the ones installed now."""
    built = manifest.get("package_versions") or {}
    now = package_versions()
    return [{"package": k, "bundle": str(built.get(k, "")), "installed": str(now.get(k, "")),
             "same": "yes" if str(built.get(k, "")) == str(now.get(k, "")) else "NO"}
            for k in sorted(set(built) | set(now))]

