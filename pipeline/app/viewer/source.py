"""Read what the viewer shows from the session's uploads: the CT (image file, DICOM folder or zip)
and, when one was uploaded, the ROI on the CT grid (mask image or RTSTRUCT/SEG rasterised), with
the same readers and checks as a prediction.

Example (a CT without a ROI)::

    shown = read_for_viewer(ct_path="ct.nii.gz", roi_path=None)
    shown.ct.shape_zyx, shown.roi   # → ((300, 512, 512), None)
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from pipeline.core.volume import Volume


@dataclass(frozen=True)
class ShownImages:
    """CT (HU) and ROI (on the CT grid, or ``None``) for the viewer, and a sentence when an uploaded
    ROI cannot be drawn over this CT (another grid: a prediction may still resample it)."""

    ct: Volume
    roi: Volume | None
    roi_note: str | None = None


def read_for_viewer(*, ct_path: str | os.PathLike[str], roi_path: str | os.PathLike[str] | None = None,
                    roi_name: str | None = None, series_uid: str | None = None,
                    roi_in_ct: bool = False) -> ShownImages:
    """Read the CT and (if given, or held in the CT's DICOM folder when ``roi_in_ct``) the ROI.

    Raises:
        PleuraRiskError subclasses naming the CT for a CT that cannot be read. A ROI that cannot
        be read is not an error here (the prediction reports it): the viewer shows the CT alone.
    """
    from pipeline.core.errors import PleuraRiskError
    from pipeline.inputs.dicom_inputs import resolve_ct, resolve_inputs
    from pipeline.io.readers import read_image

    if roi_path is None and not roi_in_ct:
        with resolve_ct(ct_path, series_uid=series_uid) as path:
            return ShownImages(read_image(path, role="CT"), None)
    try:
        with resolve_inputs(ct_path, roi_path, roi_name=roi_name, series_uid=series_uid) as inputs:
            ct = read_image(inputs.ct_path, role="CT")
            roi = read_image(inputs.roi_path, role="ROI mask")
    except PleuraRiskError:
        with resolve_ct(ct_path, series_uid=series_uid) as path:
            return ShownImages(read_image(path, role="CT"), None, "The ROI is not drawn in the viewer: it could not "
                                                                   "be read (Predict says why).")
    if roi.shape_zyx != ct.shape_zyx:
        return ShownImages(ct, None, "The ROI is not drawn in the viewer: it is on another voxel grid than the CT.")
    return ShownImages(ct, roi)
