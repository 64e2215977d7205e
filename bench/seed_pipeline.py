"""A faithful re-implementation of the *seed* system's per-case pipeline, for timing only.

The seed system (the research code PleuraRisk replaces) scored one case like this, and so does
:class:`SeedPipeline`:

1. ``read``: SimpleITK reads the whole CT ``.nii.gz`` (HU) and the whole ROI mask.
2. ``crop_io``: crop both to the ROI bounding box plus a fixed 15-voxel margin on every axis,
   clamp the CT crop to [−160, 240] HU, WRITE both crops to temporary NIfTI files
   (``.nii.gz``) and read them back.
3. ``window_resize``: window the CT crop at L40/W400 to [0, 1] and resize it to 64³ with
   ``scipy.ndimage.zoom`` (order 1, linear), ignoring the voxel spacing.
4. ``cnn``: MedicalNet ResNet-10 forward pass on the normalised cube → 512 deep features
   (``models.medicalnet.seeded_backbone(0)``: random weights, the same cost as real ones).
5. ``radiomics``: PyRadiomics on the crop *files*, with the default-parameter-file semantics
   the seed used: Original + LoG (σ = 3 mm) + Wavelet; firstorder, shape, glcm, glrlm, glszm,
   gldm (894 features); binWidth 25; B-spline resampling to 1 mm done by PyRadiomics itself;
   diagnostics ON (``additionalInfo: true``, which hashes the image and mask).
6. ``forest``: ``predict_proba`` of a random forest on the concatenated vector (512 deep +
   894 radiomics + 3 clinical values). The forest is fitted once on random data of that width
   when the pipeline is built (outside any timing).

Arrays are (z, y, x); geometry is in ITK (x, y, z) order, millimetres.

Example (small phantom; a few seconds)::

    >>> import tempfile, numpy as np, SimpleITK as sitk
    >>> from pipeline.synth import PhantomSpec, make_phantom
    >>> d = tempfile.mkdtemp()
    >>> ph = make_phantom(PhantomSpec.for_size("small", seed=3))
    >>> sitk.WriteImage(ph.ct.to_sitk(), f"{d}/ct.nii.gz", useCompression=True)
    >>> sitk.WriteImage(ph.roi.to_sitk(), f"{d}/roi.nii.gz", useCompression=True)
    >>> run = SeedPipeline().run(f"{d}/ct.nii.gz", f"{d}/roi.nii.gz", clinical=(3.8, 14.0, 65.0))
    >>> run.n_radiomics, 0.0 <= run.probability <= 1.0          # doctest: +SKIP
    (894, True)
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

__all__ = ["SEED_STAGES", "SEED_RADIOMICS_PARAMS", "SeedRun", "SeedPipeline"]

#: Stage names of :class:`SeedRun.timings_s`, in pipeline order.
SEED_STAGES = ("read", "crop_io", "window_resize", "cnn", "radiomics", "forest")

#: The seed's PyRadiomics settings (its default parameter file, diagnostics left on).
SEED_RADIOMICS_PARAMS: dict = {
    "setting": {
        "binWidth": 25,
        "resampledPixelSpacing": [1, 1, 1],
        "interpolator": "sitkBSpline",
        "label": 1,
        "additionalInfo": True,
    },
    "imageType": {"Original": {}, "LoG": {"sigma": [3.0]}, "Wavelet": {}},
    "featureClass": {"firstorder": [], "shape": [], "glcm": [], "glrlm": [], "glszm": [], "gldm": []},
}

SEED_MARGIN_VOXELS = 15
SEED_CLAMP_HU = (-160.0, 240.0)
SEED_WINDOW = (40.0, 400.0)  # level, width (HU)
SEED_CUBE = 64
N_DEEP = 512


@dataclass(frozen=True)
class SeedRun:
    """One case through the seed pipeline: probability, feature counts, per-stage seconds."""

    probability: float
    n_deep: int
    n_radiomics: int
    crop_shape_zyx: tuple[int, int, int]
    timings_s: dict[str, float] = field(default_factory=dict)

    @property
    def total_s(self) -> float:
        return float(sum(self.timings_s.values()))


class SeedPipeline:
    """The seed system's per-case pipeline (see the module docstring).

    Args:
        num_threads: torch intra-op threads for the CNN (``None``: torch's default).
        n_trees: trees of the stand-in random forest.
        seed: seeds the backbone weights and the stand-in forest.
        tmp_dir: where the crop files are written (default: the system temp folder).
    """

    def __init__(self, *, num_threads: int | None = None, n_trees: int = 100, seed: int = 0,
                 tmp_dir: str | os.PathLike[str] | None = None) -> None:
        import radiomics
        import torch
        from radiomics import featureextractor
        from sklearn.ensemble import RandomForestClassifier

        from models.medicalnet import seeded_backbone

        if num_threads is not None and num_threads < 1:
            raise ValueError(f"num_threads must be None or >= 1, got {num_threads}")
        if n_trees < 1:
            raise ValueError(f"n_trees must be >= 1, got {n_trees}")
        if num_threads is not None:
            torch.set_num_threads(num_threads)
        radiomics.setVerbosity(logging.ERROR)
        self.tmp_dir = str(tmp_dir) if tmp_dir is not None else None
        self.model = seeded_backbone(seed).eval()
        self.extractor = featureextractor.RadiomicsFeatureExtractor(
            {k: (dict(v) if isinstance(v, dict) else v) for k, v in SEED_RADIOMICS_PARAMS.items()})
        self.n_features = N_DEEP + self.expected_radiomics_count() + 3
        rng = np.random.default_rng(seed)
        X = rng.normal(size=(80, self.n_features))
        y = np.arange(80) % 2
        self.forest = RandomForestClassifier(n_estimators=n_trees, random_state=seed, n_jobs=1).fit(X, y)

    @staticmethod
    def expected_radiomics_count() -> int:
        """894: 102 features on the original image, 88 (no shape) on each of 1 LoG + 8 wavelet images."""
        return 102 + 88 * 9

    # -- stages --------------------------------------------------------------------------------
    @staticmethod
    def _crop(ct: sitk.Image, roi: sitk.Image) -> tuple[sitk.Image, sitk.Image]:
        mask = sitk.GetArrayViewFromImage(roi)
        nz = np.nonzero(mask)
        if nz[0].size == 0:
            raise ValueError("empty ROI")
        size_zyx = mask.shape
        lo = [max(0, int(a.min()) - SEED_MARGIN_VOXELS) for a in nz]
        hi = [min(n, int(a.max()) + 1 + SEED_MARGIN_VOXELS) for a, n in zip(nz, size_zyx)]
        # SimpleITK slicing is (x, y, z) and keeps the physical geometry
        sl = tuple(slice(lo[i], hi[i]) for i in (2, 1, 0))
        ct_crop = sitk.Clamp(ct[sl], ct.GetPixelID(), *SEED_CLAMP_HU)
        return ct_crop, roi[sl]

    @staticmethod
    def _window_resize(ct_crop: sitk.Image) -> np.ndarray:
        level, width = SEED_WINDOW
        a = sitk.GetArrayFromImage(ct_crop).astype(np.float32)
        a = (np.clip(a, level - width / 2, level + width / 2) - (level - width / 2)) / width
        factors = [SEED_CUBE / n for n in a.shape]
        cube = ndimage.zoom(a, factors, order=1)
        return cube[:SEED_CUBE, :SEED_CUBE, :SEED_CUBE]

    def _cnn(self, cube: np.ndarray) -> np.ndarray:
        import torch

        from models.medicalnet import medicalnet_normalise

        x = torch.from_numpy(medicalnet_normalise(cube))[None, None]
        with torch.inference_mode():
            return self.model(x).numpy()[0]

    def _radiomics(self, ct_path: str, roi_path: str) -> np.ndarray:
        raw = self.extractor.execute(ct_path, roi_path, label=1)
        return np.array([float(v) for k, v in raw.items() if not k.startswith("diagnostics_")], dtype=np.float64)

    # -- one case ------------------------------------------------------------------------------
    def run(self, ct_path: str | os.PathLike[str], roi_path: str | os.PathLike[str], *,
            clinical: Sequence[float]) -> SeedRun:
        """Score one case; ``clinical`` is (CEA ng/mL, CA125 U/mL, age years)."""
        if len(clinical) != 3:
            raise ValueError(f"clinical must be (CEA, CA125, age), got {clinical!r}")
        t: dict[str, float] = {}
        t0 = time.perf_counter()
        ct = sitk.ReadImage(str(ct_path))
        roi = sitk.ReadImage(str(roi_path))
        t["read"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        ct_crop, roi_crop = self._crop(ct, roi)
        del ct, roi
        with tempfile.TemporaryDirectory(prefix="seed-crop-", dir=self.tmp_dir) as d:
            ct_file, roi_file = str(Path(d) / "ct_crop.nii.gz"), str(Path(d) / "roi_crop.nii.gz")
            sitk.WriteImage(ct_crop, ct_file, useCompression=True)
            sitk.WriteImage(roi_crop, roi_file, useCompression=True)
            ct_crop = sitk.ReadImage(ct_file)
            roi_crop = sitk.ReadImage(roi_file)
            t["crop_io"] = time.perf_counter() - t0

            t0 = time.perf_counter()
            cube = self._window_resize(ct_crop)
            t["window_resize"] = time.perf_counter() - t0

            t0 = time.perf_counter()
            deep = self._cnn(cube)
            t["cnn"] = time.perf_counter() - t0

            t0 = time.perf_counter()
            rad = self._radiomics(ct_file, roi_file)
            t["radiomics"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        vector = np.concatenate([deep.astype(np.float64), rad, np.asarray(clinical, dtype=np.float64)])
        if vector.size != self.n_features:
            raise RuntimeError(f"seed vector has {vector.size} values, expected {self.n_features}")
        probability = float(self.forest.predict_proba(vector[None])[0, 1])
        t["forest"] = time.perf_counter() - t0
        return SeedRun(probability=probability, n_deep=int(deep.size), n_radiomics=int(rad.size),
                       crop_shape_zyx=tuple(int(s) for s in sitk.GetArrayViewFromImage(roi_crop).shape),
                       timings_s=t)
