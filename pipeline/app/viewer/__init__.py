"""The app's interactive CT viewer: a small Streamlit custom component around NiiVue.

NiiVue (``frontend/niivue.umd.js``, BSD-2-Clause, version in ``frontend/VERSION.txt``) runs in the
browser: slice scrolling (wheel, arrow keys), window/level (drag, lung and mediastinum presets),
zoom and pan, three linked planes with a crosshair, HU and LPS mm at the cursor, and the ROI as
outline or fill with an opacity control and a toggle. None of that talks to the server.

The images reach the browser once per case: Python registers the NIfTI bytes with Streamlit's
media file manager (in memory, referenced by this session only) under a URL whose name includes a
random per-session token, so it cannot be guessed from the image; the component loads a new URL
only when the case's key changes. Every asset is served by the app (no CDN, no web fonts).

A large CT reaches the viewer in stages (:meth:`ViewerImage.previews_of`): the coarse copies are
sent at once, and the full CT's bytes are built only when the viewer, having shown the first
view, asks for them (its value ``{"kind": "load", "need_ct": ct_key, "seq"}``; every value it
returns carries ``need_ct`` while it still waits) — building 150 MB of NIfTI bytes would otherwise
delay the first view by ~0.3 s.

The component returns the last click in pick mode as ``{"kind", "lps_mm": [x, y, z], "seq",
"need_ct"}`` (LPS mm, as ITK/SimpleITK report them; ``seq`` is new for every click), or the
request above (``kind`` "load").
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Any

from pipeline.app.viewer.payload import ViewerImage

FRONTEND = Path(__file__).resolve().parent / "frontend"
PICK_MODES = ("seed", "add", "remove")
_COMPONENT: Any = None


def _component() -> Any:
    global _COMPONENT
    if _COMPONENT is None:
        import streamlit.components.v1 as components

        _COMPONENT = components.declare_component("pleura_ct_viewer", path=str(FRONTEND))
    return _COMPONENT


def _session_token() -> str:
    import streamlit as st

    token = st.session_state.get("_viewer_url_token")
    if token is None:
        token = st.session_state["_viewer_url_token"] = secrets.token_hex(16)
    return token


def _media_url(image: ViewerImage, *, slot: str) -> str:
    """Register ``image`` for this script run (re-registering the same bytes is a dictionary
    look-up) and return its URL ("" without a Streamlit server, e.g. in ``AppTest``)."""
    from streamlit import runtime

    if not runtime.exists():
        return ""
    return runtime.get_instance().media_file_mgr.add(
        image.data, "application/octet-stream", f"pleura_viewer.{slot}", file_name=f"{_session_token()}-{image.key}")


def wants_ct(value: Any, *, ct_key: str) -> bool:
    """Whether the viewer's value ``value`` asks for the full CT of the case ``ct_key``."""
    return isinstance(value, dict) and value.get("need_ct") == ct_key


def ct_viewer(*, ct: ViewerImage | None, ct_key: str | None = None,
              previews: list[tuple[tuple[int, int, int], ViewerImage]] | None = None,
              ct_shape_zyx: tuple[int, int, int] | None = None, roi: ViewerImage | None = None,
              pick: str | None = None,
              centre_lps: tuple[float, float, float] | None = None, centre_seq: int | None = None,
              height: int = 560, key: str = "ct_viewer") -> dict[str, Any] | None:
    """Show the viewer and return its last pick-mode click (or ``None``).

    Args:
        ct: the CT (:meth:`ViewerImage.of_ct`), loaded by the browser once per case;
            ``None`` before an upload (the viewer starts up meanwhile: WebGL without a GPU
            takes seconds to get ready, time the user spends choosing the file), or while only
            the ``previews`` of the case ``ct_key`` are sent (see :func:`wants_ct`).
        ct_key: the case's key when ``ct`` is ``None`` but ``previews`` are given (else ``ct.key``).
        previews: coarse copies as (step_zyx, image), coarsest first, shown in turn while ``ct``
            loads (:meth:`ViewerImage.previews_of`); the viewer says so, and that the HU at the
            cursor is then the nearest sampled voxel's, until the full CT is in.
        ct_shape_zyx: the CT's shape (the slice count shown while a preview is in).
        roi: the ROI (:meth:`ViewerImage.of_mask`) or ``None``.
        pick: what a left click means: "seed", "add", "remove", or ``None`` (just navigate).
        centre_lps, centre_seq: move the crosshair to this LPS point (mm) whenever ``centre_seq``
            changes (e.g. a "centre on tumour" button increments it).
        height: canvas height in CSS pixels.
    """
    if pick is not None and pick not in PICK_MODES:
        raise ValueError(f"pick must be one of {PICK_MODES} or None, got {pick!r}")
    if height < 200:
        raise ValueError(f"height must be ≥ 200 px, got {height}")
    if ct is not None:
        ct_key = ct.key
    elif not previews:
        ct_key = None
    elif not ct_key:
        raise ValueError("ct_key is needed when only previews are sent")
    args = {
        "ct_url": None if ct is None else _media_url(ct, slot=f"{key}.ct"), "ct_key": ct_key,
        "previews": [{"step": [int(k) for k in step[::-1]],  # (x, y, z) for the browser
                      "url": _media_url(image, slot=f"{key}.preview{'x'.join(map(str, step))}")}
                     for step, image in (previews or [])],
        "ct_shape_xyz": None if ct_shape_zyx is None else [int(n) for n in ct_shape_zyx[::-1]],
        "roi_url": None if roi is None else _media_url(roi, slot=f"{key}.roi"),
        "roi_key": None if roi is None else roi.key,
        "pick": pick, "centre_lps": None if centre_lps is None else [float(c) for c in centre_lps],
        "centre_seq": centre_seq, "height": int(height),
    }
    from pipeline.app.viewer.trace import mark

    mark("viewer: component args sent", ct=ct is not None, previews=len(args["previews"]))
    # One JSON string, not lists and dicts: Streamlit checks every list/dict argument of a
    # component for being a dataframe, which imports pandas and pyarrow (≈ 0.4 s idle, ≈ 1 s
    # loaded) in the first script run of a fresh server, before the Predict page is usable.
    return _component()(spec=json.dumps(args), key=key, default=None)
