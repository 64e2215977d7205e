"""PyRadiomics through PleuraRisk equals PyRadiomics called directly with the same parameter file."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from pipeline.core.config import PipelineConfig, RadiomicsConfig
from pipeline.io.readers import read_image
from pipeline.preprocess import roi_crop
from pipeline.features.radiomics import RadiomicsExtractor, split_feature_name
from pipeline.inputs.validate import binarise_mask


@pytest.fixture(scope="module")
def lung1(real_ct):
    ct = read_image(real_ct[0], role="CT")
    roi = binarise_mask(read_image(real_ct[1], role="ROI mask"))
    p = PipelineConfig().preprocess
    crop = roi_crop(ct, roi, margin_mm=p.crop_margin_mm, min_margin_voxels=p.crop_min_margin_voxels)
    return ct, roi, crop


def _direct(ct, roi, params: dict, clamp=(-160.0, 240.0)):
    from radiomics import featureextractor

    array = np.clip(ct.array.astype(np.float32), *clamp) if clamp else ct.array.astype(np.float32)
    out = featureextractor.RadiomicsFeatureExtractor(params).execute(ct.with_array(array).to_sitk(), roi.to_sitk())
    return {k: float(v) for k, v in out.items() if not k.startswith("diagnostics_")}


def test_seed_defaults_give_894_features_with_pyradiomics_names(lung1):
    _ct, _roi, (ct_c, roi_c, crop) = lung1
    feats = RadiomicsExtractor().extract(ct_c, roi_c, crop)
    assert len(feats) == 894
    assert "wavelet-LLH_glszm_ZoneEntropy" in feats and "log-sigma-3-0-mm-3D_glcm_Idm" in feats
    assert all(np.isfinite(v) for v in feats.values())


def test_crop_equals_pyradiomics_on_the_whole_ct(lung1):
    """Same parameter file, PyRadiomics on the full 512×512×48 CT vs PleuraRisk on the crop."""
    ct, roi, (ct_c, roi_c, crop) = lung1
    params = yaml.safe_load(RadiomicsConfig().params_yaml)
    direct = _direct(ct, roi, params)
    ours = RadiomicsExtractor().extract(ct_c, roi_c, crop)
    assert set(ours) == set(direct)
    rel = np.array([abs(ours[k] - direct[k]) / (abs(direct[k]) + 1e-9) for k in ours])
    assert np.median(rel) == 0.0
    assert rel.max() < 1e-3, max(ours, key=lambda k: abs(ours[k] - direct[k]) / (abs(direct[k]) + 1e-9))


def test_identical_to_direct_call_on_same_crop_without_resampling(lung1):
    """With resampling disabled both paths see the same voxels: results are bit-identical."""
    _ct, _roi, (ct_c, roi_c, _crop) = lung1
    params = yaml.safe_load(RadiomicsConfig().params_yaml)
    params["setting"].pop("resampledPixelSpacing")
    text = yaml.safe_dump(params)
    ours = RadiomicsExtractor(config=RadiomicsConfig(params_yaml=text)).extract(ct_c, roi_c)
    assert ours == _direct(ct_c, roi_c, params)


def test_named_subset_is_extracted_in_the_requested_order(lung1):
    _ct, _roi, (ct_c, roi_c, crop) = lung1
    names = ["wavelet-HHH_glcm_Idm", "original_shape_Sphericity", "log-sigma-3-0-mm-3D_firstorder_Mean"]
    ext = RadiomicsExtractor(feature_names=names)
    assert sorted(ext.enabled_image_types()) == ["LoG", "Original", "Wavelet"]
    sub = ext.extract(ct_c, roi_c, crop)
    full = RadiomicsExtractor().extract(ct_c, roi_c, crop)
    assert list(sub) == names
    assert all(sub[n] == pytest.approx(full[n], rel=1e-9) for n in names)


def test_clamp_is_a_parameter(lung1):
    _ct, _roi, (ct_c, roi_c, crop) = lung1
    names = ["original_firstorder_Minimum"]
    clamped = RadiomicsExtractor(feature_names=names).extract(ct_c, roi_c, crop)
    raw = RadiomicsExtractor(config=RadiomicsConfig(clamp_hu=None), feature_names=names).extract(ct_c, roi_c, crop)
    # clamped before B-spline resampling (as the seed did), so small overshoot below −160 is possible
    assert clamped[names[0]] > -200
    assert raw[names[0]] < clamped[names[0]] - 100


def test_feature_name_parsing():
    assert split_feature_name("log-sigma-3-0-mm-3D_glcm_Idm") == ("log-sigma-3-0-mm-3D", "glcm", "Idm")
    with pytest.raises(ValueError):
        split_feature_name("not a feature")
    with pytest.raises(ValueError, match="image types"):
        RadiomicsExtractor(feature_names=["square_firstorder_Mean"])


def test_each_filtered_image_gets_only_its_own_features_with_identical_values(lung1):
    """The demo model's 50 radiomics features (9 image types, some needing only first-order
    statistics): each class runs only on the images that need it, and every value is exactly
    what the unrestricted PyRadiomics run gives."""
    import json
    from pathlib import Path

    manifest = json.loads((Path(__file__).resolve().parents[3] / "weights/demo/manifest.json").read_text())
    names = [n for n in manifest["feature_names"] if n.startswith(("original_", "log-", "wavelet-"))]
    _ct, _roi, (ct_c, roi_c, crop) = lung1
    ext = RadiomicsExtractor(feature_names=names)
    plan = ext._extractor.plan
    assert sum(len(f) for classes in plan.values() for f in classes.values()) == len(names)
    assert any(list(classes) == ["firstorder"] for classes in plan.values())  # e.g. a wavelet sub-band
    sub = ext.extract(ct_c, roi_c, crop)
    full = RadiomicsExtractor().extract(ct_c, roi_c, crop)
    assert list(sub) == names and all(sub[n] == full[n] for n in names)


def test_binning_is_computed_once_per_filtered_image_with_identical_values(lung1, monkeypatch):
    """The classes on one filtered image share its gray-level binning (PyRadiomics bins again
    for each class); the features are exactly those of binning per class."""
    import json
    import threading
    from pathlib import Path

    from radiomics.base import RadiomicsFeaturesBase

    import pipeline.features.radiomics as R

    manifest = json.loads((Path(__file__).resolve().parents[3] / "weights/demo/manifest.json").read_text())
    names = [n for n in manifest["feature_names"] if n.startswith(("original_", "log-", "wavelet-"))]
    _ct, _roi, (ct_c, roi_c, crop) = lung1
    ext = RadiomicsExtractor(feature_names=names)
    binned = []
    real = RadiomicsFeaturesBase._applyBinning

    def counting(self, matrix):  # noqa: ANN001, ANN202
        binned.append(type(self).__name__)
        return real(self, matrix)

    monkeypatch.setattr(RadiomicsFeaturesBase, "_applyBinning", counting)
    shared = ext.extract(ct_c, roi_c, crop)
    n_shared = len(binned)

    class NoSharing(threading.local):
        def __setattr__(self, name, value):  # noqa: ANN001, ANN204 - memo stays None: bin per class
            pass

    monkeypatch.setattr(R, "_BINNING", NoSharing())
    binned.clear()
    per_class = ext.extract(ct_c, roi_c, crop)
    texture_images = [t for t, classes in ext._extractor.plan.items() if set(classes) - {"shape"}]
    assert n_shared == len(texture_images) < len(binned)
    assert shared == per_class  # bitwise
