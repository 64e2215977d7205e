"""Semi-automatic tumour segmentation: a click inside a lung tumour → a 3-D ROI on the CT grid.

Layer: above :mod:`pipeline.preprocess`, below :mod:`pipeline.inputs` (uses only core, io and
preprocess). Classical image processing only (numpy, scipy.ndimage); no learned weights.

Usage (``ct`` a :class:`~pipeline.core.volume.Volume` in HU)::

    seg = segment_from_seed(ct, seed_xyz_mm=(-80.5, 12.0, -140.0), params=SegmentParams(sensitivity=0.6))
    seg.mask  # uint8 Volume on the CT grid; seg.volume_ml, seg.capped, seg.warnings, seg.provenance()

Example:
    >>> from pipeline.segment import SegmentParams
    >>> SegmentParams(sensitivity=0.6, adjust_mm=-1).as_dict()["adjust_mm"]
    -1.0

Coordinates: the click is a physical LPS point in mm (x, y, z) exactly as SimpleITK's
``TransformIndexToPhysicalPoint`` reports it; ``seed_mm_from_voxel`` converts an ITK index
(i, j, k) = (x, y, z). Arrays are (z, y, x).

Algorithm (see bench/README.md for the measurements behind the choice; SimpleITK
ConfidenceConnected at the click was measured and leaks — it has no way to stop at the pleura where
a tumour is continuous with the chest wall, which is what the lung-cavity constraint below provides): on a crop around the click (grown until the region no longer touches
it, up to the growth cap) —

1. the click is checked: inside the CT, inside the body, not aerated lung (< −650 HU), not bone
   (> 300 HU), aerated lung present in the slices around it;
2. the **lung cavity** is the aerated lung (< −400 HU inside the body) closed with a ball a bit
   larger than the click's distance to the lung: a juxta-pleural tumour is a dent in the lung
   whose mouth is its base on the pleura, so closing fills exactly the tumour and not the chest
   wall or mediastinum behind it — this is what keeps the ROI out of the pleura where soft tissue
   continues into the chest wall; a click the closing leaves outside (a mass too large or too
   irregular for it, e.g. a 9 cm hilar mass with a bronchus inside) is grown instead inside the
   per-slice convex hull of its *own* lung (left or right alone; both together take in the
   mediastinum), with fat away from the lung as a barrier, a larger opening (0.3 × the distance to
   that lung, 3–8 mm; v3: 0.15 ×, see 4) and no ground-glass pass;
3. voxels above a threshold halfway (``sensitivity``) between the local lung HU and the HU at the
   click, inside the cavity and within the cap, connected to the click, are opened with a ball
   (radius ≈ 0.3 × the tumour's radius, 1–3 mm) to cut vessels and pleural tags, reconstructed
   and hole-filled; a ground-glass rim (a shell clearly denser than lung) is taken in by a second,
   lower threshold; where the region meets the chest wall it may reach 1.5 mm beyond the cavity
   (a tumour abutting the pleura usually crosses into it a little; measured: juxta-pleural Dice
   and the probability both closer to the true ROI's);
4. a region that reached the cap or was grown in the hull is grown again from its own deepest
   voxel (snapped to the 3 mm grid) until that stops moving (at most 6 rounds), so threshold, crop
   and cap follow the mass, not the click: any click inside the same mass gives the same ROI; the
   click's distance to the lung counts the lungs only (not a bronchus inside the mass); a region
   that leaked to the cap in the closed cavity is grown again in the own-lung hull; in the hull the
   opening is 0.15 × the radius (3–8 mm) and growth stops 2.5 × the region's inscribed radius from
   the seed, flagged ``capped`` with a warning;
5. add-clicks are grown the same way and joined; remove-clicks take the voxels nearer to them than
   to any keep-click; ``adjust_mm`` grows (within soft tissue) or shrinks by distance transform.

A click on a thin tube (a vessel), in air or lung, on bone or outside the body raises
:class:`~pipeline.core.errors.SeedError`; a region that reaches ``max_diameter_mm`` is cut and
returned with ``capped=True`` and a warning.
"""

from pipeline.segment.params import SegmentParams, Segmentation, seed_mm_from_voxel
from pipeline.segment.seeded import METHOD, longest_diameter_mm, segment_from_seed

__all__ = ["segment_from_seed", "SegmentParams", "Segmentation", "seed_mm_from_voxel", "METHOD",
           "longest_diameter_mm"]
