"""One ordered, named feature vector per case: deep (``dl_000…dl_511``), radiomics (PyRadiomics
names), pleura (``pleura_*``/``tumour_*``, units in names) and clinical (``CEA_ng_mL``,
``CA125_U_mL``, ``age_years``), in that group order.

:class:`FeatureExtractors` is built once per process (it holds the CNN and the PyRadiomics
extractor) and reused for every case; with ``feature_names`` it computes only what a model uses
(e.g. only the radiomics features a bundle selected, no CNN pass if no ``dl_*`` is used).
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from pipeline.inputs.case import PreparedCase
from pipeline.inputs.clinical import ClinicalValues
from pipeline.core.config import PipelineConfig
from pipeline.core.groups import group_columns
from pipeline.preprocess import cnn_cube

ProgressFn = Callable[[str], None]


@dataclass(frozen=True, eq=False)
class FeatureVector:
    """Feature values (float64) with their names, in model order."""

    names: tuple[str, ...]
    values: np.ndarray
    timings_s: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if len(self.names) != len(self.values):
            raise ValueError(f"{len(self.names)} names for {len(self.values)} values")

    def as_dict(self) -> dict[str, float]:
        return {n: float(v) for n, v in zip(self.names, self.values)}

    def subset(self, names: Sequence[str]) -> "FeatureVector":
        index = {n: i for i, n in enumerate(self.names)}
        missing = [n for n in names if n not in index]
        if missing:
            raise KeyError(f"feature vector lacks {len(missing)} feature(s), e.g. {missing[:3]}")
        return FeatureVector(tuple(names), self.values[[index[n] for n in names]], dict(self.timings_s))


class FeatureExtractors:
    """Reusable extractors for every feature group of a :class:`PipelineConfig`.

    Args:
        config: pipeline settings (from the model bundle when scoring).
        backbone: a ``models.medicalnet.MedicalNetResNet10`` (required when deep features are used).
        feature_names: compute only these features (a bundle's list); ``None`` = every feature
            of every group in ``config.feature_groups``.
        num_threads: torch threads for the CNN (``None`` keeps torch's setting).
        backbone_owned: the caller hands ``backbone`` over (nothing else uses it), so it is
            folded for inference in place rather than copied (see ``DeepFeatureExtractor``).
    """

    def __init__(self, *, config: PipelineConfig, backbone=None, feature_names: Sequence[str] | None = None,
                 num_threads: int | None = None, backbone_owned: bool = False) -> None:
        from models.medicalnet import DeepFeatureExtractor, deep_feature_names

        from pipeline.features.pleura import PLEURA_FEATURE_NAMES
        from pipeline.features.radiomics import RadiomicsExtractor

        self.config = config
        groups = set(config.feature_groups)
        wanted = None if feature_names is None else list(feature_names)
        by_group = group_columns(wanted) if wanted is not None else {}
        self.use_deep = ("deep" in by_group) if wanted is not None else ("deep" in groups)
        self.use_radiomics = ("radiomics" in by_group) if wanted is not None else ("radiomics" in groups)
        self.use_pleura = ("pleura" in by_group) if wanted is not None else ("pleura" in groups)
        self.use_clinical = ("clinical" in by_group) if wanted is not None else ("clinical" in groups)
        self.deep = None
        if self.use_deep:
            if backbone is None:
                raise ValueError("deep features requested but no backbone given")
            self.deep = DeepFeatureExtractor(model=backbone, num_threads=num_threads, fold_in_place=backbone_owned)
        self._deep_names = tuple(deep_feature_names())
        self.radiomics = None
        if self.use_radiomics:
            radiomics_names = [n for n in by_group.get("radiomics", [])] if wanted is not None else None
            self.radiomics = RadiomicsExtractor(config=config.radiomics, feature_names=radiomics_names)
        self._pleura_names = tuple(PLEURA_FEATURE_NAMES)
        self.feature_names = tuple(wanted) if wanted is not None else None

    def _deep_features(self, case: PreparedCase) -> tuple[np.ndarray, float]:
        """(512-d MedicalNet embedding, seconds) of the case's 64³ windowed cube."""
        t = time.perf_counter()
        p = self.config.preprocess
        cube, _record = cnn_cube(case.ct_crop, case.roi_crop, size=p.cnn_cube_voxels,
                                 spacing_mm=p.target_spacing_mm, level=p.hu_window_level, width=p.hu_window_width)
        return self.deep.encode(cube), time.perf_counter() - t

    def extract(self, case: PreparedCase, clinical: ClinicalValues, *, progress: ProgressFn | None = None) -> FeatureVector:
        """All requested features of one case, in order (deep, radiomics, pleura, clinical)."""
        from pipeline.features.pleura import pleura_features

        say = progress or (lambda _step: None)
        names: list[str] = []
        values: list[float] = []
        timings: dict[str, float] = {}
        # The CNN runs in a helper thread while PyRadiomics and the pleura features run here:
        # torch releases the GIL, so on 2 cores most of the CNN's time leaves the wall time of a
        # single case (the "deep" timing then overlaps the others').
        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pleura-cnn") if self.deep is not None else None
        try:
            if pool is not None:
                say("deep features (MedicalNet ResNet-10)")
                deep_job = pool.submit(self._deep_features, case)
            if self.radiomics is not None:
                say("radiomics features (PyRadiomics)")
                t = time.perf_counter()
                rad = self.radiomics.extract(case.ct_crop, case.roi_crop, case.crop)
                names += list(rad)
                values += list(rad.values())
                timings["radiomics"] = time.perf_counter() - t
            if self.use_pleura:
                say("pleura features")
                t = time.perf_counter()
                ple = pleura_features(case.ct_crop, case.roi_crop, config=self.config.pleura)
                names += list(self._pleura_names)
                values += [float(ple[n]) for n in self._pleura_names]
                timings["pleura"] = time.perf_counter() - t
            if pool is not None:
                emb, timings["deep"] = deep_job.result()
                names[:0] = self._deep_names
                values[:0] = [float(v) for v in emb]
        finally:
            if pool is not None:
                pool.shutdown(wait=True)  # never leave the CNN running after an error above
        if self.use_clinical:
            clin = clinical.as_features()
            names += list(clin)
            values += list(clin.values())
        vector = FeatureVector(tuple(names), np.asarray(values, dtype=np.float64), timings)
        if self.feature_names is not None:
            vector = vector.subset(self.feature_names)
        if not np.all(np.isfinite(vector.values)):
            bad = [n for n, v in zip(vector.names, vector.values) if not np.isfinite(v)]
            from pipeline.core.errors import InputError

            raise InputError(f"{len(bad)} feature(s) are not finite (e.g. {bad[:3]}); the ROI may be degenerate")
        return vector
