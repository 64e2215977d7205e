"""Findings as numbers: the measurements a radiologist reads, with units, for every result.

Taken from the pleura/tumour features (:mod:`pipeline.pleura`, same definitions): longest axial
diameter (largest in-plane Feret diameter over the slices), volume, solid fraction (volume
fraction above −300 HU), shortest distance to the pleura (capped at the features' search range,
then reported as "at least"), and pleural contact length (largest extent of the contact patch).

Example:
    >>> f = Findings.from_features({"tumour_diameter_mm": 23.4, "tumour_volume_mm3": 4180.0,
    ...     "tumour_solid_fraction": 0.62, "pleura_distance_mm": 0.0, "pleura_contact_length_mm": 11.2,
    ...     "pleura_lung_found": 1.0}, max_distance_mm=20.0)
    >>> [f"{label}: {text}" for label, text in f.rows()][:2]
    ['Longest axial diameter: 23.4 mm', 'Volume: 4.18 mL']
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

FINDING_SOURCES = ("tumour_diameter_mm", "tumour_volume_mm3", "tumour_solid_fraction", "pleura_distance_mm",
                   "pleura_contact_length_mm", "pleura_lung_found")


@dataclass(frozen=True)
class Findings:
    """Measurements of one tumour (mm, mL, fraction in [0, 1]).

    Attributes:
        longest_diameter_mm: longest axial diameter.
        volume_ml: ROI volume.
        solid_fraction: share of the volume above −300 HU.
        distance_to_pleura_mm: shortest tumour–pleura gap; ``None`` when no aerated lung was found.
        distance_at_least: the gap reached the search range (the true gap is at least that).
        contact_length_mm: pleural contact length (0 without contact).
    """

    longest_diameter_mm: float
    volume_ml: float
    solid_fraction: float
    distance_to_pleura_mm: float | None
    distance_at_least: bool
    contact_length_mm: float

    @classmethod
    def from_features(cls, values: Mapping[str, float], *, max_distance_mm: float) -> "Findings":
        lung = bool(values.get("pleura_lung_found", 1.0))
        distance = float(values["pleura_distance_mm"]) if lung else None
        return cls(
            longest_diameter_mm=float(values["tumour_diameter_mm"]),
            volume_ml=float(values["tumour_volume_mm3"]) / 1000.0,
            solid_fraction=float(values["tumour_solid_fraction"]),
            distance_to_pleura_mm=distance,
            distance_at_least=distance is not None and distance >= max_distance_mm - 1e-9,
            contact_length_mm=float(values["pleura_contact_length_mm"]),
        )

    def rows(self) -> list[tuple[str, str]]:
        """(label, value with unit) for display (app, PDF, CLI)."""
        if self.distance_to_pleura_mm is None:
            distance = "not measured (no aerated lung around the tumour)"
        else:
            distance = ("≥ " if self.distance_at_least else "") + f"{self.distance_to_pleura_mm:.1f} mm"
        return [
            ("Longest axial diameter", f"{self.longest_diameter_mm:.1f} mm"),
            ("Volume", f"{self.volume_ml:.3g} mL"),
            ("Solid fraction (above −300 HU)", f"{100 * self.solid_fraction:.0f} %"),
            ("Distance to pleura", distance),
            ("Pleural contact length", f"{self.contact_length_mm:.1f} mm"),
        ]

    def to_dict(self) -> dict[str, Any]:
        """JSON form: numbers with their unit in the key."""
        return {
            "longest_diameter_mm": round(self.longest_diameter_mm, 2),
            "volume_ml": round(self.volume_ml, 4),
            "solid_fraction": round(self.solid_fraction, 4),
            "distance_to_pleura_mm": None if self.distance_to_pleura_mm is None else round(self.distance_to_pleura_mm, 2),
            "distance_to_pleura_is_lower_bound": self.distance_at_least,
            "pleural_contact_length_mm": round(self.contact_length_mm, 2),
        }

    def csv_columns(self) -> dict[str, Any]:
        """Batch CSV columns (``finding_*``, unit in the name)."""
        d = self.to_dict()
        return {f"finding_{k}": ("" if v is None else v) for k, v in d.items()}


FINDING_CSV_COLUMNS = tuple(f"finding_{k}" for k in (
    "longest_diameter_mm", "volume_ml", "solid_fraction", "distance_to_pleura_mm",
    "distance_to_pleura_is_lower_bound", "pleural_contact_length_mm"))
