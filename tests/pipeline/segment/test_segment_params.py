"""Contract of the segmentation API: settings are validated early with one clear sentence."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pipeline.core.errors import ConfigError, InputError
from pipeline.core.volume import Volume
from pipeline.segment import SegmentParams, seed_mm_from_voxel


def test_defaults_are_the_documented_ones():
    p = SegmentParams()
    assert (p.sensitivity, p.adjust_mm, p.add_seeds_xyz_mm, p.remove_seeds_xyz_mm, p.max_diameter_mm) == \
        (0.5, 0.0, (), (), 120.0)


@pytest.mark.parametrize("kwargs, words", [
    ({"sensitivity": 1.5}, "sensitivity must be within [0, 1]"),
    ({"sensitivity": float("nan")}, "sensitivity must be a number"),
    ({"sensitivity": "high"}, "sensitivity must be a number"),
    ({"adjust_mm": -40}, "adjust_mm must be within [-10, 10]"),
    ({"max_diameter_mm": 5}, "max_diameter_mm must be within [20, 300]"),
    ({"add_seeds_xyz_mm": ((1, 2),)}, "three finite numbers"),
    ({"remove_seeds_xyz_mm": "1,2,3"}, "list of x, y, z points"),
])
def test_bad_settings_are_refused_with_the_setting_named(kwargs, words):
    with pytest.raises(ConfigError) as err:
        SegmentParams(**kwargs)
    assert words in str(err.value)


def test_params_are_keyword_only_frozen_and_json_safe():
    with pytest.raises(TypeError):
        SegmentParams(0.7)  # type: ignore[misc]
    p = SegmentParams(sensitivity=0.7, add_seeds_xyz_mm=[(1, 2, 3)])
    with pytest.raises(AttributeError):
        p.sensitivity = 0.2  # type: ignore[misc]
    assert p.add_seeds_xyz_mm == ((1.0, 2.0, 3.0),)
    assert json.loads(json.dumps(p.as_dict()))["add_seeds_xyz_mm"] == [[1.0, 2.0, 3.0]]


def test_voxel_click_converts_like_simpleitk():
    ct = Volume(np.zeros((4, 5, 6), np.int16), spacing_xyz=(0.5, 0.7, 2.0), origin_xyz=(-10.0, 20.0, 30.0))
    img = ct.to_sitk()
    assert seed_mm_from_voxel(ct, (5, 4, 3)) == pytest.approx(img.TransformIndexToPhysicalPoint((5, 4, 3)))
    with pytest.raises(InputError, match="outside the CT"):
        seed_mm_from_voxel(ct, (6, 0, 0))
