"""One rule mapping a feature column name to its feature group.

Groups (order as in :data:`pipeline.core.config.FEATURE_GROUPS`):

* ``"deep"`` — MedicalNet embedding columns ``dl_000`` … ``dl_511``;
* ``"radiomics"`` — PyRadiomics names ``<imageType>_<featureClass>_<feature>``, e.g.
  ``original_firstorder_Mean``, ``log-sigma-3-0-mm-3D_glcm_Idm``,
  ``wavelet-LLH_glszm_ZoneEntropy``, and the peritumoral-ring variants prefixed ``ring_``;
* ``"pleura"`` — names starting ``pleura_`` or ``tumour_``;
* ``"clinical"`` — ``CEA_ng_mL`` (ng/mL), ``CA125_U_mL`` (U/mL), ``age_years``.

Any other name is refused with a ``ValueError`` so a typo never silently lands in a group.

Example:
    >>> feature_group("wavelet-LLH_glszm_ZoneEntropy")
    'radiomics'
    >>> group_columns(["dl_000", "CEA_ng_mL", "pleura_contact_mm"])
    {'deep': ['dl_000'], 'pleura': ['pleura_contact_mm'], 'clinical': ['CEA_ng_mL']}
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from pipeline.core.config import FEATURE_GROUPS

CLINICAL_FEATURES: tuple[str, ...] = ("CEA_ng_mL", "CA125_U_mL", "age_years")
"""Clinical columns: CEA (ng/mL), CA125 (U/mL), age (years)."""

_DEEP = re.compile(r"^dl_\d{3}$")
_RADIOMICS_CLASSES = "firstorder|shape|shape2D|glcm|glrlm|glszm|gldm|ngtdm"
_RADIOMICS = re.compile(
    rf"^(ring_)?[A-Za-z][A-Za-z0-9\-]*_({_RADIOMICS_CLASSES})_[A-Za-z0-9]+$"
)
_PLEURA_PREFIXES = ("pleura_", "tumour_")


def feature_group(name: str) -> str:
    """Return the group (``deep``/``radiomics``/``pleura``/``clinical``) of one column name.

    Raises:
        ValueError: the name matches no group's naming rule.
    """
    if not isinstance(name, str):
        raise ValueError(f"feature names must be strings, got {name!r}")
    if _DEEP.match(name):
        return "deep"
    if name.startswith(_PLEURA_PREFIXES):
        return "pleura"
    if name in CLINICAL_FEATURES:
        return "clinical"
    if _RADIOMICS.match(name):
        return "radiomics"
    raise ValueError(
        f"feature {name!r} belongs to no feature group (expected dl_NNN, a PyRadiomics name, "
        f"pleura_*/tumour_*, or one of {list(CLINICAL_FEATURES)})"
    )


def group_of(name: str) -> str | None:
    """:func:`feature_group`, or ``None`` for a name of no group (display code that must not fail)."""
    try:
        return feature_group(name)
    except ValueError:
        return None


def uses_group(names: Iterable[str], group: str) -> bool:
    """Whether any of ``names`` belongs to ``group`` (e.g. does a model need the CNN?).

    Example:
        >>> uses_group(["CEA_ng_mL", "dl_007"], "deep"), uses_group(["CEA_ng_mL"], "deep")
        (True, False)
    """
    return any(group_of(n) == group for n in names)


def group_columns(columns: Iterable[str]) -> dict[str, list[str]]:
    """Split column names by group, keeping column order; only groups present appear,
    in :data:`FEATURE_GROUPS` order."""
    found: dict[str, list[str]] = {g: [] for g in FEATURE_GROUPS}
    for name in columns:
        found[feature_group(name)].append(name)
    return {g: cols for g, cols in found.items() if cols}
