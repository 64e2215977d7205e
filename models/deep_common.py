"""What the deep-feature path needs without torch: the feature count and names and MedicalNet's
cube normalisation (shared by the torch backbone, :mod:`models.medicalnet`, and the ONNX Runtime
one, :mod:`models.onnx_backbone`)."""

from __future__ import annotations

import numpy as np

FEATURE_DIM = 512
"""Length of the deep feature vector (channels of layer4)."""


def deep_feature_names() -> list[str]:
    """Names of the deep features, in output order: ``dl_000`` … ``dl_511``."""
    return [f"dl_{index:03d}" for index in range(FEATURE_DIM)]


def medicalnet_normalise(cube: np.ndarray) -> np.ndarray:
    """MedicalNet intensity normalisation of one (z, y, x) cube, as float32.

    Non-zero voxels are shifted and scaled to zero mean and unit variance (statistics over the
    non-zero voxels only). Zero voxels stay 0 — MedicalNet filled them with N(0, 1) noise, whose
    expected value this is, so features stay deterministic. An all-zero cube stays all zero and
    a cube whose non-zero voxels are all equal maps to zeros; the result is never NaN.
    (MedicalNet selected ``voxel > 0`` for its non-negative MRI input; for non-negative cubes that
    is the same set.)

    Example:
        >>> out = medicalnet_normalise(np.array([[[0.0, 2.0, 4.0]]]))
        >>> out.tolist()
        [[[0.0, -1.0, 1.0]]]
    """
    values = np.asarray(cube, dtype=np.float64)
    if values.ndim != 3 or values.size == 0:
        raise ValueError(f"cube must be a non-empty 3-D (z, y, x) array, got shape {values.shape}")
    if not np.isfinite(values).all():
        raise ValueError("cube contains NaN or infinite values")
    out = np.zeros(values.shape, dtype=np.float32)
    foreground = values != 0
    if foreground.any():
        selected = values[foreground]
        mean, std = selected.mean(), selected.std()
        # Equal values leave only rounding noise in std; treat them as constant (→ zeros).
        if std > 1e-7 * np.abs(selected).max():
            out[foreground] = (selected - mean) / std
    return out
