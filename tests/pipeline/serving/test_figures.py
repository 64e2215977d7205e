"""Figures: orientation and aspect of the slice viewer, SHAP charts adding up, PNG versions."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.serving import figures
from pipeline.serving.explain import Explanation
from pipeline.core.volume import Volume

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _explanation(n_deep: int = 30) -> Explanation:
    names = tuple([f"dl_{i:03d}" for i in range(n_deep)] + [
        "original_firstorder_Mean", "wavelet-LLH_glszm_ZoneEntropy", "pleura_distance_mm",
        "CEA_ng_mL", "CA125_U_mL", "age_years"])
    rng = np.random.default_rng(1)
    values = rng.normal(0, 0.02, len(names))
    values[-3] = 0.12  # CEA pushes the probability up the most
    return Explanation(names, values, rng.normal(size=len(names)), 0.35)


def _marked_volume() -> tuple[Volume, Volume]:
    """LPS volume (identity direction): a bright voxel at the patient's right-anterior-inferior corner."""
    ct = np.full((10, 12, 14), -1000, np.int16)
    ct[0, 0, 0] = 1000  # x=0 → patient right, y=0 → anterior, z=0 → inferior
    roi = np.zeros_like(ct, dtype=np.uint8)
    roi[4:7, 4:8, 5:9] = 1
    return (Volume(ct, spacing_xyz=(1.0, 1.0, 1.0)), Volume(roi, spacing_xyz=(1.0, 1.0, 1.0)))


def test_axial_view_shows_patient_right_on_the_left_and_anterior_on_top() -> None:
    ct, roi = _marked_volume()
    viewer = figures.viewer_volumes(ct, roi)
    img = figures.render_slice(viewer, plane="axial", index=0, window="mediastinal")
    assert img.rgb[0, 0].tolist() == [255, 255, 255]
    assert img.orientation == ("R", "L", "A", "P")


def test_a_flipped_direction_volume_is_shown_the_same_way() -> None:
    ct, roi = _marked_volume()
    # same anatomy stored with x and y axes reversed (RAS-like storage)
    flipped_dir = (-1.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 1.0)
    origin = (13.0, 11.0, 0.0)
    ct2 = Volume(ct.array[:, ::-1, ::-1].copy(), spacing_xyz=(1.0, 1.0, 1.0), origin_xyz=origin, direction=flipped_dir)
    roi2 = Volume(roi.array[:, ::-1, ::-1].copy(), spacing_xyz=(1.0, 1.0, 1.0), origin_xyz=origin, direction=flipped_dir)
    a = figures.render_slice(figures.viewer_volumes(ct, roi), plane="axial", index=0, window="lung")
    b = figures.render_slice(figures.viewer_volumes(ct2, roi2), plane="axial", index=0, window="lung")
    np.testing.assert_array_equal(a.rgb, b.rgb)


def test_coronal_view_has_superior_on_top_and_true_aspect() -> None:
    ct = np.full((20, 16, 32), -800, np.int16)
    ct[-1, :, :] = 500  # top slice (superior)
    roi = np.zeros_like(ct, dtype=np.uint8)
    roi[8:12, 6:10, 10:20] = 1
    viewer = figures.viewer_volumes(Volume(ct, spacing_xyz=(0.5, 0.5, 2.5)), Volume(roi, spacing_xyz=(0.5, 0.5, 2.5)))
    img = figures.render_slice(viewer, plane="coronal", index=8, window="mediastinal", max_pixels=512)
    height_mm, width_mm = img.rgb.shape[0] * img.pixel_mm, img.rgb.shape[1] * img.pixel_mm
    assert height_mm == pytest.approx(20 * 2.5, rel=0.05) and width_mm == pytest.approx(32 * 0.5, rel=0.05)
    assert img.rgb[0].mean() > 200  # superior slice is the first row
    assert img.title == "Coronal slice 9/16, mediastinal window"


def test_roi_outline_is_drawn_only_on_the_tumour_border() -> None:
    ct = np.full((9, 40, 40), 40, np.int16)
    roi = np.zeros_like(ct, dtype=np.uint8)
    roi[:, 10:30, 10:30] = 1
    viewer = figures.viewer_volumes(Volume(ct), Volume(roi))
    img = figures.render_slice(viewer, plane="axial", index=4, window="mediastinal")
    yellow = np.all(img.rgb == figures.OUTLINE_RGB, axis=2)
    assert yellow[10, 10:30].all() and yellow[29, 10:30].all()
    assert not yellow[15:25, 15:25].any() and not yellow[:5].any()


def test_window_presets_change_the_grey_levels() -> None:
    ct = np.full((5, 8, 8), -600, np.int16)
    roi = np.zeros_like(ct, dtype=np.uint8)
    roi[2, 3, 3] = 1
    viewer = figures.viewer_volumes(Volume(ct), Volume(roi))
    lung = figures.render_slice(viewer, plane="axial", index=0, window="lung").rgb[0, 0, 0]
    medi = figures.render_slice(viewer, plane="axial", index=0, window="mediastinal").rgb[0, 0, 0]
    assert 120 <= lung <= 135 and medi == 0  # -600 HU: mid-grey in the lung window, black in mediastinal


def test_viewer_centre_is_the_tumour_and_bad_arguments_are_refused() -> None:
    ct, roi = _marked_volume()
    viewer = figures.viewer_volumes(ct, roi)
    assert viewer.centre_zyx == (5, 6, 6)
    assert viewer.centre_index("sagittal") == 6 and viewer.n_slices("coronal") == 12
    with pytest.raises(ValueError, match="plane"):
        figures.render_slice(viewer, plane="oblique", index=0)
    with pytest.raises(ValueError, match="window"):
        figures.render_slice(viewer, plane="axial", index=0, window="bone")
    with pytest.raises(ValueError, match="empty"):
        figures.viewer_volumes(ct, roi.with_array(np.zeros_like(roi.array)))
    # an index past the end shows the last slice instead of failing
    assert figures.render_slice(viewer, plane="axial", index=999).index == 9


def test_waterfall_goes_from_base_value_to_the_prediction() -> None:
    e = _explanation()
    fig = figures.shap_waterfall(e, top_k=8)
    trace = fig.data[0]
    assert trace.measure[0] == "absolute" and trace.measure[-1] == "total"
    assert trace.x[0] == pytest.approx(e.base_value)
    assert trace.x[0] + sum(trace.x[1:-1]) == pytest.approx(e.base_value + e.values.sum())
    assert trace.x[-1] == pytest.approx(e.base_value + e.values.sum())
    labels = list(trace.y)
    assert len(labels) == 8 + 3  # base, "N other features", 8 features, prediction
    assert labels[1] == f"{len(e.names) - 8} other features"
    assert labels[-2].startswith("CEA: ") and labels[-2].endswith(" ng/mL")  # largest |SHAP| next to the prediction
    assert not any(lab.startswith("dl_") for lab in labels)
    # the technical name is one hover away; no raw numbers with 7 decimals in the hover text
    assert "model feature: CEA_ng_mL" in list(trace.customdata)
    assert trace.hovertemplate == "%{customdata}<br>%{text}<extra></extra>"


def test_group_totals_sum_to_the_total_contribution() -> None:
    e = _explanation()
    fig = figures.group_totals_bar(e)
    assert list(fig.data[0].y) == ["Deep (MedicalNet)", "Radiomics", "Pleura", "Clinical"]
    assert sum(fig.data[0].x) == pytest.approx(e.values.sum())


def test_gauge_shows_probability_bands_and_threshold() -> None:
    fig = figures.probability_gauge(0.62, threshold=0.4, tree_p05=0.5, tree_p95=0.7)
    ind = fig.data[0]
    assert ind.value == pytest.approx(62) and ind.number.suffix == " %"
    assert ind.gauge.threshold.value == pytest.approx(40)
    # bands anchored on the threshold: high ⇔ at or above it
    assert [tuple(s.range) for s in ind.gauge.steps] == [(0.0, 20.0), (20.0, 40.0), (40.0, 100.0)]
    assert "50–70 %" in ind.title.text
    legend = fig.layout.annotations[0].text
    assert "operating threshold 40 %" in legend and "intermediate 20–40 %" in legend
    with pytest.raises(ValueError, match="probability"):
        figures.probability_gauge(1.5)


def test_png_versions_are_images() -> None:
    e = _explanation()
    ct, roi = _marked_volume()
    img = figures.render_slice(figures.viewer_volumes(ct, roi), plane="sagittal", index=6)
    for png in (figures.gauge_png(0.3, threshold=0.5, tree_p05=0.2, tree_p95=0.4),
                figures.waterfall_png(e), figures.group_totals_png(e), figures.slice_png(img)):
        assert png.startswith(PNG_MAGIC) and len(png) > 2000
    fig = figures.slice_figure(img)
    assert fig.data[0].source.startswith("data:image/png;base64,")
    assert {a.text for a in fig.layout.annotations} == {"A", "P", "S", "I"}


def test_axis_aligned_reorientation_matches_sitk_for_all_48_directions():
    """The numpy fast path (views, no copy) gives exactly SimpleITK's DICOMOrient(…, 'LPS')."""
    import itertools

    import SimpleITK as sitk

    from pipeline.serving.figures import viewer_volumes
    from pipeline.core.volume import Volume

    arr = np.random.default_rng(0).integers(-1000, 500, (5, 6, 7)).astype(np.int16)
    roi = np.zeros((5, 6, 7), np.uint8)
    roi[1:3, 2:5, 3:6] = 1
    roi[4, 0, 0] = 1
    for perm in itertools.permutations(range(3)):
        for signs in itertools.product([1, -1], repeat=3):
            d = np.zeros((3, 3))
            for k in range(3):
                d[perm[k], k] = signs[k]
            ct = Volume(arr, spacing_xyz=(0.7, 0.8, 2.5), origin_xyz=(1, 2, 3), direction=tuple(d.ravel()))
            v = viewer_volumes(ct, ct.with_array(roi))
            ct_img = sitk.DICOMOrient(ct.to_sitk(), "LPS")
            ref_roi = sitk.GetArrayFromImage(sitk.DICOMOrient(ct.with_array(roi).to_sitk(), "LPS"))
            assert np.array_equal(v.ct, sitk.GetArrayFromImage(ct_img)) and np.array_equal(v.roi, ref_roi)
            assert np.allclose(v.spacing_zyx, ct_img.GetSpacing()[::-1])
            assert v.centre_zyx == tuple(int(round(float(c))) for c in np.argwhere(ref_roi).mean(axis=0))
            assert np.shares_memory(v.ct, arr)  # a view: no copy of the CT
