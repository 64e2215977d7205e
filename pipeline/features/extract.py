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
from pipeline.core.errors import InputError, reraise_with_step
from pipeline.features.groups import GROUPS, FeatureGroup

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

    The groups come from the registry :data:`pipeline.features.groups.GROUPS`; only the groups a
    model uses are built (no CNN when no ``dl_*`` feature is used), and their values are joined in
    registry order.

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
        self.config = config
        wanted = None if feature_names is None else list(feature_names)
        by_group = group_columns(wanted) if wanted is not None else {g: None for g in config.feature_groups}
        self.groups: list[FeatureGroup] = [
            cls(config=config, backbone=backbone, num_threads=num_threads, backbone_owned=backbone_owned,
                feature_names=by_group[name])
            for name, cls in GROUPS.items() if name in by_group
        ]
        self.feature_names = tuple(wanted) if wanted is not None else None

    @property
    def group_names(self) -> tuple[str, ...]:
        """The groups this extractor computes, in output order."""
        return tuple(g.name for g in self.groups)

    def extract(self, case: PreparedCase, clinical: ClinicalValues, *, progress: ProgressFn | None = None) -> FeatureVector:
        """All requested features of one case, in order (deep, radiomics, pleura, clinical)."""
        say = progress or (lambda _step: None)
        results: dict[str, dict[str, float]] = {}
        timings: dict[str, float] = {}

        def run(group: FeatureGroup) -> tuple[dict[str, float], float]:
            t = time.perf_counter()
            try:
                values = group.compute(case, clinical)
            except Exception as exc:  # noqa: BLE001 - re-raised, with the step when unexpected
                reraise_with_step(f"computing the {group.name} features", exc)
            return values, time.perf_counter() - t

        # Concurrent groups (the CNN) run in a helper thread while the others run here: torch
        # releases the GIL, so on 2 cores most of the CNN's time leaves the wall time of a single
        # case (its timing then overlaps the others').
        background = [g for g in self.groups if g.concurrent]
        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pleura-cnn") if background else None
        try:
            jobs = {}
            for group in background:
                say(group.label)
                jobs[group.name] = pool.submit(run, group)
            for group in self.groups:
                if group.concurrent:
                    continue
                if group.label:
                    say(group.label)
                results[group.name], seconds = run(group)
                if group.label:
                    timings[group.name] = seconds
            for name, job in jobs.items():
                results[name], timings[name] = job.result()
        finally:
            if pool is not None:
                pool.shutdown(wait=True)  # never leave the CNN running after an error above
        names = [n for g in self.groups for n in results[g.name]]
        values = [v for g in self.groups for v in results[g.name].values()]
        vector = FeatureVector(tuple(names), np.asarray(values, dtype=np.float64), timings)
        if self.feature_names is not None:
            vector = vector.subset(self.feature_names)
        if not np.all(np.isfinite(vector.values)):
            bad = [n for n, v in zip(vector.names, vector.values) if not np.isfinite(v)]
            raise InputError(f"{len(bad)} feature(s) are not finite (e.g. {bad[:3]}); the ROI may be degenerate")
        return vector
