"""The Predict page's viewer section: the uploaded CT in the browser viewer, the uploaded ROI over
it, and, when there is no ROI, click-to-segment (click → :func:`pipeline.segment.segment_from_seed`
→ ROI shown at once; sensitivity, grow/shrink, add/remove clicks; accept → Predict uses it).

Streamlit is imported lazily; state lives in ``st.session_state`` (keys start with ``viewer_``/``semi_``).
"""

from __future__ import annotations

import json
import logging
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.app.viewer import PICK_MODES, ct_viewer, wants_ct
from pipeline.app.viewer.payload import ViewerImage, mask_centre_lps, nifti_bytes
from pipeline.app.viewer.trace import mark

log = logging.getLogger("pleurarisk.app")
VIEWER_KEY = "viewer_ct"
CLICK_MODES = {"seed": "New tumour click", "add": "Add to the ROI", "remove": "Remove from the ROI"}


@dataclass
class _Shown:
    source: str
    ct_key: str = ""
    ct: Any = None  # Volume (once ct_image is built, a read-only view into ct_image.data)
    ct_image: ViewerImage | None = None  # built when the viewer asks for it (a CT with previews)
    previews: list[tuple[tuple[int, int, int], ViewerImage]] = field(default_factory=list)
    roi_image: ViewerImage | None = None
    roi_centre: tuple[float, float, float] | None = None
    note: str | None = None
    error: BaseException | None = None


@dataclass
class _Semi:
    """Click-to-segment state of one CT (``ct_key``)."""

    ct_key: str
    seed: tuple[float, float, float] | None = None
    add: list[tuple[float, float, float]] = field(default_factory=list)
    remove: list[tuple[float, float, float]] = field(default_factory=list)
    seg: Any = None  # pipeline.segment.Segmentation
    seg_key: str | None = None
    image: ViewerImage | None = None
    error: BaseException | None = None
    last_click: str | None = None
    accepted: AcceptedRoi | None = None


@dataclass(frozen=True)
class AcceptedRoi:
    """A semi-automatic ROI the user accepted: the mask file Predict reads, what it came from."""

    path: Path
    token: str
    provenance: dict[str, Any]
    description: str


def _load(source: str, *, ct_path: Any, roi_path: Any, roi_name: str | None, series_uid: str | None,
          roi_in_ct: bool) -> _Shown:
    from pipeline.app.viewer.source import read_for_viewer
    from pipeline.core.errors import PleuraRiskError

    shown = _Shown(source)
    mark("viewer: read CT starts")
    try:
        images = read_for_viewer(ct_path=ct_path, roi_path=roi_path, roi_name=roi_name, series_uid=series_uid,
                                 roi_in_ct=roi_in_ct)
    except PleuraRiskError as err:
        shown.error = err
        return shown
    mark("viewer: CT read")
    shown.ct, shown.ct_key = images.ct, secrets.token_hex(12)
    shown.previews = ViewerImage.previews_of(shown.ct)
    mark("viewer: previews built", stages=len(shown.previews))
    if not shown.previews:  # a small CT is sent whole at once; a large one when the viewer asks
        _build_ct(shown)
    shown.note = images.roi_note
    if images.roi is not None:
        shown.roi_image = ViewerImage.of_mask(images.roi)
        shown.roi_centre = mask_centre_lps(images.roi)
    return shown


def _build_ct(shown: _Shown) -> None:
    """The full CT's NIfTI bytes; the session then keeps one copy of the CT (a view into them)."""
    shown.ct_image, shown.ct = ViewerImage.of_ct(shown.ct, key=shown.ct_key)
    mark("viewer: NIfTI bytes built")


def _seg_key(semi: _Semi, sensitivity: float, adjust_mm: float) -> str:
    return json.dumps([semi.seed, semi.add, semi.remove, round(sensitivity, 3), round(adjust_mm, 2)])


def _take_click(semi: _Semi) -> None:
    """Apply the viewer's last click (once: each click has a new ``seq``)."""
    import streamlit as st

    click = st.session_state.get(VIEWER_KEY)
    if not isinstance(click, dict) or click.get("seq") == semi.last_click or click.get("kind") not in PICK_MODES:
        return
    semi.last_click = click.get("seq")
    try:
        point = tuple(float(v) for v in click["lps_mm"])
    except (KeyError, TypeError, ValueError):
        return
    if len(point) != 3:
        return
    kind = click.get("kind")
    if kind == "seed" or semi.seed is None:
        semi.seed, semi.add, semi.remove = point, [], []  # type: ignore[assignment]
    elif kind == "add":
        semi.add.append(point)  # type: ignore[arg-type]
    elif kind == "remove":
        semi.remove.append(point)  # type: ignore[arg-type]


def _segment(semi: _Semi, ct: Any, *, sensitivity: float, adjust_mm: float) -> None:
    from pipeline.core.errors import PleuraRiskError
    from pipeline.segment import SegmentParams, segment_from_seed

    key = _seg_key(semi, sensitivity, adjust_mm)
    if semi.seed is None or key == semi.seg_key:
        return
    semi.seg_key = key
    try:
        params = SegmentParams(sensitivity=sensitivity, adjust_mm=adjust_mm, add_seeds_xyz_mm=tuple(semi.add),
                               remove_seeds_xyz_mm=tuple(semi.remove))
        semi.seg = segment_from_seed(ct, seed_xyz_mm=semi.seed, params=params)
    except PleuraRiskError as err:
        semi.seg, semi.image, semi.error = None, None, err
        return
    except Exception as err:  # noqa: BLE001 - the page stays usable; the log has the details
        log.exception("segmentation failed")
        semi.seg, semi.image, semi.error = None, None, err
        return
    semi.error = None
    semi.image = ViewerImage.of_mask(semi.seg.mask)


def viewer_section(*, uploads: Any, paths: dict[str, Any], tokens: dict[str, str], series_uid: str | None,
                   roi_name: str | None, roi_in_ct: bool) -> AcceptedRoi | None:
    """Draw the viewer section; return the accepted semi-automatic ROI (``None`` when there is
    none, or when an uploaded ROI is used)."""
    import streamlit as st

    st.subheader("CT viewer")
    # fixed slots: the viewer's iframe keeps its place (and its loaded CT) whatever the controls show
    top, viewer_slot = st.container(), st.container()
    with top:
        accepted = _section_controls(uploads=uploads, paths=paths, tokens=tokens, series_uid=series_uid,
                                     roi_name=roi_name, roi_in_ct=roi_in_ct)
    with viewer_slot:
        if accepted.shown is None:
            ct_viewer(ct=None, height=320, key=VIEWER_KEY)
        else:
            ct_viewer(ct=accepted.shown.ct_image, ct_key=accepted.shown.ct_key, previews=accepted.shown.previews,
                      ct_shape_zyx=accepted.shown.ct.shape_zyx, roi=accepted.roi_image,
                      pick=accepted.pick, centre_lps=accepted.centre, centre_seq=accepted.centre_seq, key=VIEWER_KEY)
    return accepted.accepted


@dataclass
class _View:
    """What the controls decided for the viewer."""

    shown: _Shown | None = None
    roi_image: ViewerImage | None = None
    pick: str | None = None
    centre: tuple[float, float, float] | None = None
    centre_seq: int | None = None
    accepted: AcceptedRoi | None = None


def _section_controls(*, uploads: Any, paths: dict[str, Any], tokens: dict[str, str], series_uid: str | None,
                      roi_name: str | None, roi_in_ct: bool) -> _View:
    import streamlit as st

    from pipeline.app import session

    if "ct" not in paths:
        st.caption("Upload a CT to see it here. Without a ROI you can then click the tumour to outline it.")
        return _View()
    source = json.dumps([tokens.get("ct"), series_uid, tokens.get("roi"), roi_name, roi_in_ct])
    shown: _Shown | None = st.session_state.get("viewer_shown")
    if shown is None or shown.source != source:
        st.session_state.pop("viewer_shown", None)  # the previous CT's bytes go before the next is read
        with st.spinner("Preparing the viewer…"):
            shown = _load(source, ct_path=paths["ct"], roi_path=paths.get("roi"), roi_name=roi_name,
                          series_uid=series_uid, roi_in_ct=roi_in_ct)
        st.session_state["viewer_shown"] = shown
    if shown.error is not None:
        # said once, in a quiet note: Predict reports the same problem as the case's error
        st.info(f"The viewer cannot show this CT. {session.error_text(shown.error)}", icon=":material/visibility_off:")
        return _View()
    if shown.ct_image is None and wants_ct(st.session_state.get(VIEWER_KEY), ct_key=shown.ct_key):
        _build_ct(shown)
    has_roi = "roi" in paths or roi_in_ct
    semi: _Semi | None = st.session_state.get("semi_state")
    if semi is None or semi.ct_key != shown.ct_key:
        semi = st.session_state["semi_state"] = _Semi(shown.ct_key)

    pick = roi_image = centre = None
    accepted = None
    if has_roi:
        roi_image, centre = shown.roi_image, shown.roi_centre
        if shown.note:
            st.caption(shown.note)
    else:
        _take_click(semi)
        st.markdown("**No ROI uploaded: click the tumour in the viewer** to outline it semi-automatically, "
                    "adjust it, then accept it for Predict.")
        c_mode, c_sens, c_adj = st.columns([1.3, 1, 1])
        with c_mode:
            mode = st.radio("A click in the viewer", list(CLICK_MODES), format_func=CLICK_MODES.get,
                            key="semi_mode", horizontal=True, disabled=semi.seed is None,
                            help="The first click always places the tumour click; after it, add or remove parts.")
        with c_sens:
            sensitivity = st.slider("Sensitivity", 0.0, 1.0, 0.5, 0.05, key="semi_sensitivity",
                                    help="Higher takes in fainter tissue at the tumour's edge (lower HU threshold).")
        with c_adj:
            adjust = st.slider("Shrink / grow (mm)", -5.0, 5.0, 0.0, 0.5, key="semi_adjust",
                               help="Moves the ROI's surface in (−) or out (+) by this many mm.")
        pick = "seed" if semi.seed is None else mode
        if semi.seed is not None:
            with st.spinner("Segmenting…"):
                _segment(semi, shown.ct, sensitivity=float(sensitivity), adjust_mm=float(adjust))
        roi_image = semi.image
        if semi.seg is not None:
            centre = mask_centre_lps(semi.seg.mask)
        accepted = _semi_status(semi, uploads)
    c_centre, _ = st.columns([1, 3])
    with c_centre:
        if st.button("Centre on tumour", key="viewer_centre", disabled=centre is None, icon=":material/my_location:",
                     help="Moves the crosshair (all three planes) to the centre of the ROI."):
            st.session_state["viewer_centre_seq"] = st.session_state.get("viewer_centre_seq", 0) + 1
    seq = st.session_state.get("viewer_centre_seq")
    if centre is not None and st.session_state.get("viewer_centre_for") != (roi_image and roi_image.key):
        # a new ROI: centre on it once
        st.session_state["viewer_centre_for"] = roi_image and roi_image.key
        seq = st.session_state["viewer_centre_seq"] = (seq or 0) + 1
    return _View(shown, roi_image, pick, centre, seq, accepted)


def _semi_status(semi: _Semi, uploads: Any) -> AcceptedRoi | None:
    """Messages about the current segmentation and the Accept / Start over buttons."""
    import streamlit as st

    from pipeline.app import session

    if semi.error is not None:
        session.show_error(semi.error)
    seg = semi.seg
    if seg is None:
        if semi.seed is None:
            st.caption("Scroll to a slice through the tumour, then click inside it. Any plane works.")
        return None
    x, y, z = seg.seed_xyz_mm
    st.markdown(f"Semi-automatic ROI: **{seg.volume_ml:.2f} mL**, longest diameter **{seg.longest_diameter_mm:.1f} mm** "
                f"· click at ({x:.1f}, {y:.1f}, {z:.1f}) mm LPS · {len(semi.add)} added, {len(semi.remove)} removed")
    for warning in seg.warnings:
        st.warning(warning, icon=":material/warning:")
    if semi.accepted is not None and semi.accepted.token != semi.seg_key:
        semi.accepted = None  # changed since it was accepted
    c_ok, c_reset, _ = st.columns([1, 1, 2])
    with c_ok:
        if st.button("Accept this ROI", key="semi_accept", type="secondary", icon=":material/check:",
                     disabled=semi.accepted is not None):
            path = uploads.store_image("semi_roi", filename="roi.nii.gz", data=nifti_bytes(seg.mask, compress=True),
                                       token=semi.seg_key, label="ROI mask")
            semi.accepted = AcceptedRoi(Path(os.fspath(path)), semi.seg_key or "", seg.provenance(), seg.describe())
    with c_reset:
        if st.button("Start over", key="semi_reset", icon=":material/restart_alt:"):
            st.session_state["semi_state"] = _Semi(semi.ct_key, last_click=semi.last_click)
            st.rerun()
    if semi.accepted is not None:
        st.success("ROI accepted: Predict uses it.", icon=":material/check_circle:")
    else:
        st.caption("Accept the ROI when it covers the tumour; Predict needs an accepted ROI.")
    return semi.accepted
