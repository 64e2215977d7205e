"""What the browser viewer is sent: NIfTI bytes whose RAS affine places every voxel where ITK
(LPS) places it, on an asymmetric phantom with flipped axes, and a cropped ROI that keeps its
physical place. The browser half (NiiVue's RAS clicks → LPS) is in tests/e2e/test_viewer_browser.py."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import SimpleITK as sitk

from pipeline.app.viewer.payload import ViewerImage, cropped_mask, mask_centre_lps, nifti_affine_ras, voxel_of_lps
from pipeline.core.volume import Volume

# y and z index axes run against P and S; spacing and shape differ on every axis
DIRECTION = (1.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, -1.0)


def _phantom() -> tuple[Volume, tuple[int, int, int]]:
    array = np.full((7, 9, 11), -1000, np.int16)
    marker_zyx = (5, 2, 8)  # off-centre on every axis
    array[marker_zyx] = 60
    return Volume(array, spacing_xyz=(0.7, 0.9, 2.5), origin_xyz=(-40.0, 25.0, 100.0), direction=DIRECTION), marker_zyx


def test_ct_bytes_place_voxels_where_itk_does(tmp_path: Path) -> None:
    import nibabel as nib

    ct, marker_zyx = _phantom()
    image, view = ViewerImage.of_ct(ct)
    path = tmp_path / image.name
    path.write_bytes(image.data)
    loaded = nib.load(path)
    data = np.asarray(loaded.dataobj)  # (i, j, k) = ITK (x, y, z)
    assert data.dtype == np.int16 and data[marker_zyx[::-1]] == 60
    lps = ct.index_to_physical(np.array(marker_zyx, dtype=float))
    ras = loaded.affine @ np.array([*marker_zyx[::-1], 1.0])
    np.testing.assert_allclose(ras[:3], [-lps[0], -lps[1], lps[2]], atol=1e-4)
    # SimpleITK reads the same geometry back; the session's CT is a read-only view of the bytes
    back = sitk.ReadImage(str(path))
    np.testing.assert_allclose(back.GetOrigin(), ct.origin_xyz, atol=1e-4)
    np.testing.assert_allclose(back.GetDirection(), DIRECTION, atol=1e-6)
    assert np.array_equal(view.array, ct.array) and not view.array.flags.writeable
    assert voxel_of_lps(ct, tuple(lps)) == marker_zyx[::-1]
    assert voxel_of_lps(ct, (1e4, 0.0, 0.0)) is None


def test_cropped_roi_keeps_its_physical_place(tmp_path: Path) -> None:
    ct, marker_zyx = _phantom()
    mask = ct.with_array((ct.array > 0).astype(np.uint8))
    cut = cropped_mask(mask, margin=1)
    assert cut is not None and cut.shape_zyx == (3, 3, 3)
    np.testing.assert_allclose(cut.index_to_physical(np.array([1.0, 1.0, 1.0])),
                               ct.index_to_physical(np.array(marker_zyx, dtype=float)), atol=1e-6)
    image = ViewerImage.of_mask(mask)
    path = tmp_path / image.name
    path.write_bytes(image.data)
    back = sitk.ReadImage(str(path))
    idx = np.argwhere(sitk.GetArrayFromImage(back) > 0)[0]
    np.testing.assert_allclose(back.TransformIndexToPhysicalPoint([int(v) for v in idx[::-1]]),
                               ct.index_to_physical(np.array(marker_zyx, dtype=float)), atol=1e-4)
    assert mask_centre_lps(mask) == tuple(round(float(v), 3) for v in ct.index_to_physical(np.array(marker_zyx, float)))
    assert ViewerImage.of_mask(mask.with_array(np.zeros_like(mask.array))) is None


def test_affine_is_lps_flipped_to_ras() -> None:
    ct, _ = _phantom()
    affine = nifti_affine_ras(ct)
    np.testing.assert_allclose(affine[:3, 3], [40.0, -25.0, 100.0])
    np.testing.assert_allclose(np.diag(affine)[:3], [-0.7, 0.9, -2.5])


def test_previews_keep_sampled_voxels_and_their_places() -> None:
    """Each coarse copy holds the CT's own voxels (every step-th along each axis, same origin and
    direction), so the HU the viewer reads from a preview is the nearest sampled voxel's, at its
    true LPS place. The first view of at most ``first_voxels`` voxels samples the axis with the
    finest spacing most sparsely (here x: 0.7 mm, y: 0.9 mm, z: 2.5 mm)."""
    import nibabel as nib

    ct, _ = _phantom()
    big = ct.with_array(np.arange(24 * 20 * 16, dtype=np.int16).reshape(24, 20, 16))
    previews = ViewerImage.previews_of(big, first_voxels=200, above_voxels=200)
    assert [step for step, _ in previews] == [(4, 4, 4), (2, 2, 2)]
    previews = ViewerImage.previews_of(big, first_voxels=50, above_voxels=200)
    assert [step for step, _ in previews] == [(4, 8, 8), (4, 4, 4), (2, 2, 2)]
    assert [image.name for _, image in previews] == ["preview4x8x8.nii", "preview4.nii", "preview2.nii"]
    square = big.with_array(big.array, spacing_xyz=(0.8, 0.8, 1.0))  # equal in-plane spacing: x and y together
    assert [s for s, _ in ViewerImage.previews_of(square, first_voxels=300, above_voxels=2000)] == [(2, 4, 4), (2, 2, 2)]
    for step, image in previews:
        nii = nib.Nifti1Image.from_bytes(image.data)
        np.testing.assert_array_equal(np.asarray(nii.dataobj).T, big.array[::step[0], ::step[1], ::step[2]])
        coarse_index_xyz = np.array([1, 2, 3, 1.0])
        lps = big.index_to_physical(np.array([3, 2, 1]) * np.array(step))  # (z, y, x) index of the same voxel
        ras = nii.affine @ coarse_index_xyz
        np.testing.assert_allclose([-ras[0], -ras[1], ras[2]], lps, atol=1e-4)
    assert ViewerImage.previews_of(big, first_voxels=50, above_voxels=big.array.size) == []
