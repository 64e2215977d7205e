"""Applicability domain: what a model's training data covered, and a verdict on every result.

``pleura train`` stores ``domain.json`` in the bundle (listed, with its sha256, in the manifest):

* **descriptors** — tumour longest axial diameter (mm) and volume (mL), in-plane pixel spacing and
  slice spacing (mm), image noise (HU; :func:`image_noise_hu`): min, max and 1st/99th percentiles
  over the training cases;
* **features** — min, max and 0.5th/99.5th percentiles of every feature the model uses;
* **multivariate** — squared Mahalanobis distance on the principal components (95 % of the
  variance, at most 30) of the robustly standardised model features (median, IQR), with the
  threshold at the 99th percentile of *out-of-fold* training distances (5 folds: each case's
  distance from a fit without it), so that about 1 % of new in-domain cases cross it.

Verdict (:meth:`DomainModel.verdict`): "out" with one reason per finding when a descriptor lies
outside its training range widened by ``DESCRIPTOR_MARGIN`` of the range on each side, when at
least ``MIN_FEATURES_OUT`` model features lie outside their range widened by ``FEATURE_MARGIN``, or
when the Mahalanobis distance exceeds the threshold; "in" otherwise. Bundles without
``domain.json`` (older ones) give "unknown". False-alarm and detection rates:
``bench/domain_check.py``.

Example:
    >>> import numpy as np, pandas as pd
    >>> rng = np.random.default_rng(0)
    >>> feats = pd.DataFrame(rng.normal(size=(300, 4)), columns=list("abcd"))
    >>> desc = pd.DataFrame({"tumour_diameter_mm": rng.uniform(12, 35, 300)})
    >>> model = DomainModel.from_dict(fit_domain(feats, desc, source="example"))
    >>> model.verdict(dict(zip("abcd", [0.1, 0.0, -0.2, 0.3])), {"tumour_diameter_mm": 20.0}).status
    'in'
    >>> v = model.verdict(dict(zip("abcd", [0.1, 0.0, -0.2, 0.3])), {"tumour_diameter_mm": 95.0})
    >>> v.status, v.reasons[0]
    ('out', 'tumour diameter 95 mm, trained on 12–35 mm')
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pandas is needed to fit a domain, not to check a case against one (≈ 0.4 s import)
    import pandas as pd

DOMAIN_FILE = "domain.json"
DOMAIN_FORMAT = 1
DESCRIPTOR_MARGIN = 0.10
FEATURE_MARGIN = 0.10
MIN_FEATURES_OUT = 3
MAHALANOBIS_QUANTILE = 0.99
PCA_VARIANCE = 0.95
PCA_MAX_COMPONENTS = 30

#: descriptor → (words, unit, decimals)
DESCRIPTORS: dict[str, tuple[str, str, int]] = {
    "tumour_diameter_mm": ("tumour diameter", "mm", 0),
    "tumour_volume_ml": ("tumour volume", "mL", 1),
    "image_pixel_spacing_mm": ("in-plane pixel spacing", "mm", 2),
    "image_slice_spacing_mm": ("slice spacing", "mm", 2),
    "image_noise_hu": ("image noise", "HU", 0),
}

UNKNOWN_REASON = "this model was saved without a record of its training data (no domain.json)"


@dataclass(frozen=True)
class DomainVerdict:
    """``status`` "in" | "out" | "unknown" and the reasons (plain sentences with numbers)."""

    status: str
    reasons: tuple[str, ...] = ()
    distance: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"status": self.status, "reasons": list(self.reasons)}

    @property
    def notice(self) -> str:
        """The line shown next to the probability ("" when inside the domain)."""
        if self.status == "out":
            return "outside the model's experience: " + "; ".join(self.reasons)
        if self.status == "unknown":
            return "applicability domain unknown: " + "; ".join(self.reasons or (UNKNOWN_REASON,))
        return ""


def image_noise_hu(ct: np.ndarray) -> float | None:
    """Image noise (HU) estimated in aerated lung (−1000…−600 HU) of a CT crop (z, y, x): the
    robust SD (1.4826 × MAD) of differences between in-plane neighbours, divided by √2. A proxy
    of the scanner's noise level (smoothed images read lower); ``None`` without 500 lung pairs."""
    a = ct.astype(np.float32)
    left, right = a[:, :, :-1], a[:, :, 1:]
    both = (left > -1000) & (left < -600) & (right > -1000) & (right < -600)
    if np.count_nonzero(both) < 500:
        return None
    d = (right - left)[both]
    return float(1.4826 * np.median(np.abs(d - np.median(d))) / np.sqrt(2.0))


def case_descriptors(*, ct_crop: np.ndarray, spacing_xyz: tuple[float, float, float],
                     longest_diameter_mm: float, volume_ml: float) -> dict[str, float | None]:
    """The descriptors of one case (see :data:`DESCRIPTORS`)."""
    return {
        "tumour_diameter_mm": float(longest_diameter_mm),
        "tumour_volume_ml": float(volume_ml),
        "image_pixel_spacing_mm": float(np.mean(spacing_xyz[:2])),
        "image_slice_spacing_mm": float(spacing_xyz[2]),
        "image_noise_hu": image_noise_hu(ct_crop),
    }


def _fmt(value: float, decimals: int) -> str:
    return f"{value:.{decimals}f}"


def _robust_scale(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    center = np.median(X, axis=0)
    q75, q25 = np.percentile(X, [75, 25], axis=0)
    scale = (q75 - q25) / 1.349
    sd = X.std(axis=0)
    scale = np.where(scale > 1e-12, scale, np.where(sd > 1e-12, sd, 1.0))
    return center, scale


def _fit_pca(Z: np.ndarray, k: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mean, components (k × p), variances (k)) of standardised rows Z."""
    mu = Z.mean(axis=0)
    _u, s, vt = np.linalg.svd(Z - mu, full_matrices=False)
    var = s ** 2 / max(1, Z.shape[0] - 1)
    if k is None:
        share = np.cumsum(var) / var.sum() if var.sum() > 0 else np.ones_like(var)
        k = int(min(PCA_MAX_COMPONENTS, np.searchsorted(share, PCA_VARIANCE) + 1, len(var)))
    var_k = np.maximum(var[:k], 1e-12)
    return mu, vt[:k], var_k


def _d2(X: np.ndarray, center: np.ndarray, scale: np.ndarray, mu: np.ndarray, comps: np.ndarray,
        var: np.ndarray) -> np.ndarray:
    scores = ((X - center) / scale - mu) @ comps.T
    return (scores ** 2 / var).sum(axis=1)


def fit_domain(features: pd.DataFrame, descriptors: pd.DataFrame, *, source: str, seed: int = 0) -> dict[str, Any]:
    """The JSON-safe ``domain.json`` content from the training cases' model features (columns in
    model order) and descriptors (columns named as in :data:`DESCRIPTORS`; missing ones skipped)."""
    import pandas as pd

    X = features.to_numpy(dtype=float)
    n, p = X.shape
    if n < 20:
        raise ValueError(f"an applicability domain needs at least 20 training cases, got {n}")
    out: dict[str, Any] = {"format": DOMAIN_FORMAT, "source": source, "n_cases": int(n)}
    desc: dict[str, Any] = {}
    for name in DESCRIPTORS:
        if name in descriptors:
            v = pd.to_numeric(descriptors[name], errors="coerce").to_numpy(dtype=float)
            v = v[np.isfinite(v)]
            if v.size:
                desc[name] = {"min": float(v.min()), "max": float(v.max()), "q01": float(np.percentile(v, 1)),
                              "q99": float(np.percentile(v, 99)), "n": int(v.size)}
    out["descriptors"] = desc
    out["features"] = {"names": list(features.columns), "min": X.min(axis=0).tolist(), "max": X.max(axis=0).tolist(),
                       "q005": np.percentile(X, 0.5, axis=0).tolist(), "q995": np.percentile(X, 99.5, axis=0).tolist()}
    center, scale = _robust_scale(X)
    mu, comps, var = _fit_pca((X - center) / scale)
    k = comps.shape[0]
    rng = np.random.default_rng(seed)
    fold = rng.permutation(n) % 5
    oof = np.empty(n)
    for f in range(5):
        train, test = fold != f, fold == f
        c_f, s_f = _robust_scale(X[train])
        mu_f, comps_f, var_f = _fit_pca((X[train] - c_f) / s_f, k)
        oof[test] = _d2(X[test], c_f, s_f, mu_f, comps_f, var_f)
    out["multivariate"] = {
        "method": f"squared Mahalanobis distance on {k} principal components of the median/IQR-standardised "
                  "model features; threshold = 99th percentile of 5-fold out-of-fold training distances",
        "center": center.tolist(), "scale": scale.tolist(), "mean": mu.tolist(), "components": comps.tolist(),
        "variances": var.tolist(), "threshold": float(np.quantile(oof, MAHALANOBIS_QUANTILE)),
        "oof_median": float(np.median(oof)),
    }
    return out


@dataclass(frozen=True, eq=False)
class DomainModel:
    """A loaded ``domain.json`` (see :func:`fit_domain`)."""

    data: dict[str, Any]
    _arrays: dict[str, np.ndarray] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "DomainModel":
        if data.get("format") != DOMAIN_FORMAT:
            raise ValueError(f"unsupported domain.json format {data.get('format')!r}")
        mv, ft = data["multivariate"], data["features"]
        arrays = {k: np.asarray(mv[k], dtype=float) for k in ("center", "scale", "mean", "components", "variances")}
        arrays.update({f"f_{k}": np.asarray(ft[k], dtype=float) for k in ("min", "max")})
        return cls(dict(data), arrays)

    @property
    def feature_names(self) -> list[str]:
        return list(self.data["features"]["names"])

    def descriptor_range(self, name: str) -> tuple[float, float] | None:
        d = self.data.get("descriptors", {}).get(name)
        return (d["min"], d["max"]) if d else None

    def verdict(self, features: Mapping[str, float], descriptors: Mapping[str, float | None]) -> DomainVerdict:
        """In or out of the training domain, with reasons (module docstring)."""
        reasons: list[str] = []
        for name, (words, unit, dec) in DESCRIPTORS.items():
            rng = self.descriptor_range(name)
            value = descriptors.get(name)
            if rng is None or value is None or not np.isfinite(value):
                continue
            lo, hi = rng
            margin = DESCRIPTOR_MARGIN * (hi - lo)
            if value < lo - margin or value > hi + margin:
                reasons.append(f"{words} {_fmt(value, dec)} {unit}, trained on {_fmt(lo, dec)}–{_fmt(hi, dec)} {unit}")
        names = self.feature_names
        x = np.array([float(features[n]) for n in names])
        lo, hi = self._arrays["f_min"], self._arrays["f_max"]
        margin = FEATURE_MARGIN * (hi - lo)
        outside = np.flatnonzero((x < lo - margin) | (x > hi + margin))
        if outside.size >= MIN_FEATURES_OUT:
            shown = ", ".join(names[i] for i in outside[:3]) + (" …" if outside.size > 3 else "")
            reasons.append(f"{outside.size} of the model's {len(names)} features outside their training range "
                           f"({shown})")
        a = self._arrays
        d2 = float(_d2(x[None, :], a["center"], a["scale"], a["mean"], a["components"], a["variances"])[0])
        threshold = float(self.data["multivariate"]["threshold"])
        if d2 > threshold:
            reasons.append(f"its combination of image features is unlike the training cases (distance {d2:.0f}; "
                           f"99 % of training cases ≤ {threshold:.0f})")
        return DomainVerdict("out" if reasons else "in", tuple(reasons), d2)


def load_domain(bundle_path: str | Path, manifest: Mapping[str, Any]) -> DomainModel | None:
    """The bundle's domain (its file was verified with the manifest's sha256), or ``None``."""
    if DOMAIN_FILE not in manifest.get("files", {}):
        return None
    return DomainModel.from_dict(json.loads((Path(bundle_path) / DOMAIN_FILE).read_text(encoding="utf-8")))


def unknown_verdict() -> DomainVerdict:
    return DomainVerdict("unknown", (UNKNOWN_REASON,))


MIN_DOMAIN_CASES = 20


def domain_files(table: pd.DataFrame, feature_names: list[str], *, source: str) -> dict[str, bytes]:
    """``{"domain.json": bytes}`` for a bundle trained on the ok, labelled rows of a feature table
    (see :mod:`pipeline.training.dataset`; descriptors from its ``tumour_*`` and ``image_*``
    columns), or ``{}`` with fewer than ``MIN_DOMAIN_CASES`` such rows (the bundle then says
    "domain: unknown")."""
    import pandas as pd

    ok = table[(table["status"] == "ok") & table["label"].notna()]
    if len(ok) < MIN_DOMAIN_CASES:
        return {}
    desc = pd.DataFrame(index=ok.index)
    if "tumour_diameter_mm" in ok:
        desc["tumour_diameter_mm"] = ok["tumour_diameter_mm"]
    if "tumour_volume_mm3" in ok:
        desc["tumour_volume_ml"] = ok["tumour_volume_mm3"] / 1000.0
    for name in ("image_pixel_spacing_mm", "image_slice_spacing_mm", "image_noise_hu"):
        if name in ok:
            desc[name] = ok[name]
    data = fit_domain(ok[list(feature_names)].astype(float), desc, source=source)
    return {DOMAIN_FILE: (json.dumps(data, indent=1, allow_nan=False) + "\n").encode()}
