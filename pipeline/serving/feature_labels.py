"""Feature names and values as a clinician reads them, for explanations (app and PDF): a plain
name with its unit and a rounded value, e.g. ``pleura_ring_wall_fraction = 0.0`` →
``Chest wall in the 10-mm ring around the tumour: 0 %``. The technical name stays available
(:func:`technical_name`) for a hover or a footnote.

Example:
    >>> feature_value_label("pleura_distance_mm", 3.214)
    'Distance to pleura: 3.2 mm'
    >>> feature_value_label("tumour_volume_mm3", 4200.0)
    'Tumour volume: 4.2 mL'
    >>> feature_value_label("log-sigma-3-0-mm-3D_firstorder_Maximum", -2.1443)
    'Texture (LoG σ3 mm · first-order maximum): −2.14'
    >>> feature_value_label("CEA_ng_mL", 3.2)
    'CEA: 3.2 ng/mL'
"""

from __future__ import annotations

from collections.abc import Callable

from pipeline.core.groups import group_of
from pipeline.serving.explain import readable_name


def _pct(v: float) -> str:
    return f"{100 * v:.0f} %"


def _mm(v: float) -> str:
    return f"{v:.1f} mm"


def _ml(v: float) -> str:
    return f"{v / 1000:.3g} mL"


def _cm2(v: float) -> str:
    return f"{v / 100:.3g} cm²"


def _num(v: float) -> str:
    return f"{v:.3g}".replace("-", "−")


def _yes_no(v: float) -> str:
    return "yes" if v >= 0.5 else "no"


_PLAIN: dict[str, tuple[str, Callable[[float], str]]] = {
    "pleura_lung_found": ("Aerated lung found around the tumour", _yes_no),
    "pleura_distance_mm": ("Distance to pleura", _mm),
    "pleura_contact_area_mm2": ("Pleural contact area", _cm2),
    "pleura_contact_fraction": ("Tumour surface touching the pleura", _pct),
    "pleura_contact_length_mm": ("Pleural contact length", _mm),
    "pleura_crossing_fraction": ("Tumour crossing the pleural line", _pct),
    "pleura_tag_count": ("Pleural tags (count)", lambda v: f"{v:.0f}"),
    "pleura_ring_mean_hu": ("Mean density of the 10-mm ring around the tumour", lambda v: f"{v:.0f} HU"),
    "pleura_ring_solid_fraction": ("Solid tissue in the 10-mm ring around the tumour", _pct),
    "pleura_ring_wall_fraction": ("Chest wall in the 10-mm ring around the tumour", _pct),
    "tumour_volume_mm3": ("Tumour volume", _ml),
    "tumour_surface_area_mm2": ("Tumour surface area", _cm2),
    "tumour_diameter_mm": ("Longest tumour diameter", _mm),
    "tumour_solid_volume_mm3": ("Solid part volume", _ml),
    "tumour_solid_fraction": ("Solid fraction (above −300 HU)", _pct),
    "tumour_solid_diameter_mm": ("Solid part diameter", _mm),
    "tumour_ctr": ("Consolidation-to-tumour ratio", lambda v: f"{v:.2f}"),
    "CEA_ng_mL": ("CEA", lambda v: f"{v:g} ng/mL"),
    "CA125_U_mL": ("CA125", lambda v: f"{v:g} U/mL"),
    "age_years": ("Age", lambda v: f"{v:g} years"),
}


def technical_name(name: str) -> str:
    """The model's own feature name (shown on hover)."""
    return name


def plain_name(name: str) -> str:
    """A plain name: measurements and labs by what they measure, radiomics as "Texture (…)",
    deep features as "Deep image feature N"."""
    if name in _PLAIN:
        return _PLAIN[name][0]
    group = group_of(name)
    if group == "deep":
        return f"Deep image feature {int(name[3:])}" if name[3:].isdigit() else readable_name(name)
    if group == "radiomics":
        return f"Texture ({readable_name(name)})"
    return readable_name(name)


def feature_value_label(name: str, value: float) -> str:
    """``"<plain name>: <rounded value with unit>"``; values of texture and deep features have no unit."""
    fmt = _PLAIN[name][1] if name in _PLAIN else _num
    return f"{plain_name(name)}: {fmt(float(value))}"
