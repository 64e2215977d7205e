"""What the browser viewer loads: a CT or a ROI :class:`~pipeline.core.volume.Volume` as NIfTI-1
bytes, and the conversions between the viewer's clicks and the CT's voxels.

Coordinates: ``Volume`` geometry is ITK's (LPS mm, ``*_xyz`` order); NIfTI and NiiVue use RAS mm,
so the NIfTI affine is ``diag(-1, -1, 1, 1) @ (LPS affine)``. Clicks come back from the browser
already converted to LPS mm (see ``frontend/viewer.js``).

The CT is sent uncompressed: gzip level 1 of a 512×512×300 int16 CT takes ~3.5 s for a factor ~2,
while the uncompressed bytes are built in ~0.2 s and the app serves them from memory. The ROI is
cropped to its bounding box (NiiVue places it by its own affine) and gzipped: a few kB.

Example:
    >>> import numpy as np
    >>> ct = Volume(np.zeros((4, 5, 6), np.int16), spacing_xyz=(0.5, 0.6, 2.0), origin_xyz=(10.0, 20.0, 30.0))
    >>> affine = nifti_affine_ras(ct)
    >>> affine[:3, 3].tolist()  # RAS: x and y of the LPS origin change sign
    [-10.0, -20.0, 30.0]
    >>> voxel_of_lps(ct, (11.0, 21.2, 34.0))  # (x, y, z) index, ITK order
    (2, 2, 2)
"""

from __future__ import annotations

import gzip
import hashlib
import secrets
from dataclasses import dataclass

import numpy as np

from pipeline.core.volume import Volume

_LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


def nifti_affine_ras(volume: Volume) -> np.ndarray:
    """4×4 voxel (i, j, k) = ITK (x, y, z) index → RAS mm affine of ``volume``."""
    lps = np.eye(4)
    lps[:3, :3] = volume.direction_matrix * np.asarray(volume.spacing_xyz)[None, :]
    lps[:3, 3] = volume.origin_xyz
    return _LPS_TO_RAS @ lps


def nifti_bytes(volume: Volume, *, compress: bool = False) -> bytes:
    """``volume`` as a NIfTI-1 file (sform and qform = its geometry), optionally gzip-compressed
    (level 1). int16 / uint8 / float32 arrays keep their type; other types become float32."""
    import nibabel as nib

    array = volume.array
    if array.dtype not in (np.int16, np.uint8, np.float32):
        array = array.astype(np.float32)
    image = nib.Nifti1Image(array.T, nifti_affine_ras(volume))  # (z, y, x) → (i, j, k), no copy
    image.header.set_xyzt_units("mm")
    data = image.to_bytes()
    return gzip.compress(data, compresslevel=1) if compress else data


def voxel_of_lps(volume: Volume, lps_mm: tuple[float, float, float] | list[float]) -> tuple[int, int, int] | None:
    """The (x, y, z) voxel index (ITK order) holding the LPS point ``lps_mm``, or ``None`` outside."""
    zyx = np.rint(volume.physical_to_index(np.asarray(lps_mm, dtype=float))).astype(int)
    if any(i < 0 or i >= n for i, n in zip(zyx, volume.shape_zyx)):
        return None
    return int(zyx[2]), int(zyx[1]), int(zyx[0])


def mask_centre_lps(mask: Volume) -> tuple[float, float, float] | None:
    """Centre of mass (LPS mm) of the non-zero voxels of ``mask``, or ``None`` when it is empty."""
    idx = np.argwhere(mask.array > 0)
    if idx.size == 0:
        return None
    centre = mask.index_to_physical(idx.mean(axis=0))
    return tuple(round(float(c), 3) for c in centre)  # type: ignore[return-value]


def cropped_mask(mask: Volume, *, margin: int = 2) -> Volume | None:
    """The non-zero part of ``mask`` (0/1 uint8) cut to its bounding box plus ``margin`` voxels,
    with the origin moved so that every voxel keeps its physical place; ``None`` when empty."""
    binary = mask.array > 0
    idx = np.argwhere(binary)
    if idx.size == 0:
        return None
    lo = np.maximum(idx.min(axis=0) - margin, 0)
    hi = np.minimum(idx.max(axis=0) + margin + 1, binary.shape)
    cut = binary[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]].astype(np.uint8)
    origin = mask.index_to_physical(lo.astype(float))
    return Volume(np.ascontiguousarray(cut), spacing_xyz=mask.spacing_xyz, origin_xyz=tuple(origin),
                  direction=mask.direction)


@dataclass(frozen=True)
class ViewerImage:
    """One image as the browser gets it: NIfTI bytes and a key that changes with the content."""

    data: bytes
    key: str
    name: str  # "ct.nii" or "roi.nii.gz": NiiVue picks its reader by this name

    @classmethod
    def of_ct(cls, ct: Volume, *, key: str | None = None) -> tuple[ViewerImage, Volume]:
        """The CT, uncompressed, and the same CT as a read-only :class:`Volume` whose array is a
        view into those bytes (one copy of the CT per session, not two). The key is random unless
        given: built once per upload, it need not be a content hash (hashing 150 MB costs ~0.3 s)."""
        import nibabel as nib

        array = ct.array if ct.array.dtype in (np.int16, np.uint8, np.float32) else ct.array.astype(np.float32)
        header = nib.Nifti1Image(array.T, nifti_affine_ras(ct)).header
        header.set_xyzt_units("mm")
        header.set_data_offset(352)
        head = header.binaryblock + b"\0" * (352 - len(header.binaryblock))
        native = array.dtype.newbyteorder("=")
        data = b"".join([head, np.ascontiguousarray(array, dtype=native)])  # one copy of the voxels, not two
        view = np.frombuffer(data, dtype=native, offset=352).reshape(array.shape)
        return cls(data, key or secrets.token_hex(12), "ct.nii"), ct.with_array(view)

    @classmethod
    def previews_of(cls, ct: Volume, *, first_voxels: int = 330_000,
                    above_voxels: int = 2_000_000) -> list[tuple[tuple[int, int, int], ViewerImage]]:
        """Quick first views of a CT of more than ``above_voxels`` voxels, coarsest first, as
        (step_zyx, image): every ``step``-th voxel along each axis (same origin, spacing × step,
        so each kept voxel keeps its HU and its place); ``[]`` for a smaller CT.

        The stages: every ``s``-th voxel along every axis for s = …, 4, 2, where the coarsest has
        at most ``above_voxels`` voxels; before them, when that one has more than
        ``first_voxels``, a first view of at most ``first_voxels`` voxels whose steps are chosen
        per axis (the steps of the axes with the finest sampled spacing are doubled until the copy
        fits), e.g. every 8th voxel in-plane and every 4th slice of a 512×512×300 CT (64×64×75).

        Without a GPU (software WebGL) NiiVue needs roughly 1 s per million voxels to show a
        volume, so the first view is drawn in a few tenths of a second, then each finer stage.

        Example:
            >>> ct = Volume(np.zeros((300, 512, 512), np.int16), spacing_xyz=(0.7, 0.7, 1.0))
            >>> [(step, image.name) for step, image in ViewerImage.previews_of(ct)]
            [((4, 8, 8), 'preview4x8x8.nii'), ((4, 4, 4), 'preview4.nii'), ((2, 2, 2), 'preview2.nii')]
        """
        shape = ct.array.shape
        if ct.array.size <= above_voxels:
            return []
        step = 2
        while _count(shape, (step,) * 3) > above_voxels:
            step *= 2
        steps = [(s, s, s) for s in (2 ** k for k in range(step.bit_length() - 1, 0, -1))]  # step, …, 4, 2
        if _count(shape, steps[0]) > first_voxels:
            first = [1, 1, 1]
            spacing_zyx = ct.spacing_xyz[::-1]
            while _count(shape, first) > first_voxels:
                finest = min(spacing_zyx[a] * first[a] for a in range(3))
                for axis in (a for a in range(3) if spacing_zyx[a] * first[a] <= 1.01 * finest):  # ties together
                    first[axis] *= 2
            steps.insert(0, tuple(first))
        out = []
        for s in steps:
            sampled = ct.with_array(np.ascontiguousarray(ct.array[::s[0], ::s[1], ::s[2]]),
                                    spacing_xyz=tuple(k * v for k, v in zip(s[::-1], ct.spacing_xyz)))
            label = str(s[0]) if len(set(s)) == 1 else "x".join(str(k) for k in s)
            out.append((s, cls(nifti_bytes(sampled, compress=False), secrets.token_hex(12), f"preview{label}.nii")))
        return out

    @classmethod
    def of_mask(cls, mask: Volume) -> ViewerImage | None:
        """The ROI (cropped, gzipped); ``None`` for an empty mask."""
        cut = cropped_mask(mask)
        if cut is None:
            return None
        data = nifti_bytes(cut, compress=True)
        return cls(data, _key(data), "roi.nii.gz")


def _count(shape_zyx: tuple[int, ...], step_zyx: tuple[int, ...] | list[int]) -> int:
    """Voxels of ``array[::step_z, ::step_y, ::step_x]`` for an array of ``shape_zyx``."""
    return int(np.prod([-(-n // k) for n, k in zip(shape_zyx, step_zyx)]))


def _key(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=12).hexdigest()
