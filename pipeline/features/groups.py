"""The feature groups behind one protocol and one registry.

A :class:`FeatureGroup` computes one group's named values for a prepared case. The registry
:data:`GROUPS` maps each group name of :data:`pipeline.core.config.FEATURE_GROUPS` to the class
that builds it; :class:`~pipeline.features.extract.FeatureExtractors` builds the groups a model
needs from it and joins their values in registry order (deep, radiomics, pleura, clinical). A new
group is one class here plus its naming rule in :mod:`pipeline.core.groups`.

Every group's ``compute`` returns ``{name: value}`` for exactly its ``names`` (or, for radiomics
with a subset, the subset), float values, in a fixed order; ``concurrent`` groups (the CNN) run in
a helper thread while the others run.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar, Protocol

import numpy as np

from pipeline.core.config import PipelineConfig
from pipeline.inputs.case import PreparedCase
from pipeline.inputs.clinical import ClinicalValues


class FeatureGroup(Protocol):
    """One feature group: what it is called, what it reports while running, how it computes."""

    name: ClassVar[str]
    label: ClassVar[str]  # progress text shown while it runs ("" = silent)
    concurrent: ClassVar[bool]  # run in a helper thread beside the others (releases the GIL)

    def compute(self, case: PreparedCase, clinical: ClinicalValues) -> dict[str, float]: ...


class DeepGroup:
    """MedicalNet ResNet-10 embedding (``dl_000…dl_511``) of the case's 64³ windowed CNN cube."""

    name, label, concurrent = "deep", "deep features (MedicalNet ResNet-10)", True

    def __init__(self, *, config: PipelineConfig, backbone: Any, num_threads: int | None = None,
                 backbone_owned: bool = False, feature_names: Sequence[str] | None = None) -> None:
        from models.deep_common import deep_feature_names

        if backbone is None:
            raise ValueError("deep features requested but no backbone given")
        self.preprocess = config.preprocess
        if hasattr(backbone, "encoder"):  # models.onnx_backbone.OnnxBackbone: ONNX Runtime, no torch
            self.encoder = backbone.encoder(num_threads=num_threads)
        else:
            from models.medicalnet import DeepFeatureExtractor

            self.encoder = DeepFeatureExtractor(model=backbone, num_threads=num_threads, fold_in_place=backbone_owned)
        self.names = tuple(deep_feature_names())

    def compute(self, case: PreparedCase, clinical: ClinicalValues) -> dict[str, float]:
        from pipeline.preprocess import cnn_cube

        p = self.preprocess
        cube, _record = cnn_cube(case.ct_crop, case.roi_crop, size=p.cnn_cube_voxels,
                                 spacing_mm=p.target_spacing_mm, level=p.hu_window_level, width=p.hu_window_width)
        embedding = self.encoder.encode(cube)
        return {n: float(v) for n, v in zip(self.names, np.asarray(embedding))}


class RadiomicsGroup:
    """PyRadiomics features (original, LoG, wavelet) of the ROI, only those a model names."""

    name, label, concurrent = "radiomics", "radiomics features (PyRadiomics)", False

    def __init__(self, *, config: PipelineConfig, feature_names: Sequence[str] | None = None, **_: Any) -> None:
        from pipeline.features.radiomics import RadiomicsExtractor

        self.extractor = RadiomicsExtractor(config=config.radiomics,
                                            feature_names=None if feature_names is None else list(feature_names))

    def compute(self, case: PreparedCase, clinical: ClinicalValues) -> dict[str, float]:
        return dict(self.extractor.extract(case.ct_crop, case.roi_crop, case.crop))


class PleuraGroup:
    """Tumour–pleura geometry (distance, contact, crossing, solid fraction, peritumoral ring)."""

    name, label, concurrent = "pleura", "pleura features", False

    def __init__(self, *, config: PipelineConfig, **_: Any) -> None:
        from pipeline.features.pleura import PLEURA_FEATURE_NAMES

        self.config = config.pleura
        self.names = tuple(PLEURA_FEATURE_NAMES)

    def compute(self, case: PreparedCase, clinical: ClinicalValues) -> dict[str, float]:
        from pipeline.features.pleura import pleura_features

        values = pleura_features(case.ct_crop, case.roi_crop, config=self.config)
        return {n: float(values[n]) for n in self.names}


class ClinicalGroup:
    """CEA (ng/mL), CA125 (U/mL) and age (years), as entered and validated."""

    name, label, concurrent = "clinical", "", False

    def __init__(self, **_: Any) -> None:
        pass

    def compute(self, case: PreparedCase, clinical: ClinicalValues) -> dict[str, float]:
        return clinical.as_features()


GROUPS: dict[str, type] = {"deep": DeepGroup, "radiomics": RadiomicsGroup, "pleura": PleuraGroup,
                           "clinical": ClinicalGroup}
"""Group name → class, in the order the groups' values are joined."""
