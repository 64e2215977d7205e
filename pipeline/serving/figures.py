"""Figures shown with a result: probability gauge, SHAP waterfall, SHAP per feature group, and
CT slices with the tumour outline — as plotly figures (app) and PNG bytes (PDF report).

Both renderings take the same inputs and show the same numbers, so the app and the report
never disagree. Nothing here computes a prediction; everything comes from a
:class:`~pipeline.serving.score.CaseResult` / :class:`~pipeline.serving.explain.Explanation`.

Slice viewer conventions:

* volumes are reoriented to LPS once (:func:`viewer_volumes`), so array axes (z, y, x) run
  inferior→superior, anterior→posterior, patient right→left;
* axial slices are shown as seen from the feet (patient right on the image left, anterior at
  the top), coronal from the front (superior at the top), sagittal from the patient's right
  (anterior on the left) — the usual radiological display;
* each slice is resampled to square pixels (bilinear CT, nearest-neighbour mask) so distances
  look right whatever the voxel spacing (mm); the ROI is drawn as a one-pixel outline.

Example:
    >>> import numpy as np
    >>> from pipeline.core.volume import Volume
    >>> ct = Volume(np.full((20, 32, 32), -800, np.int16), spacing_xyz=(0.8, 0.8, 2.5))
    >>> roi = ct.with_array(np.zeros((20, 32, 32), np.uint8)); roi.array[8:12, 10:20, 10:20] = 1
    >>> viewer = viewer_volumes(ct, roi)
    >>> viewer.centre_zyx
    (10, 14, 14)
    >>> img = render_slice(viewer, plane="coronal", index=15, window="lung")
    >>> img.rgb.shape[2], round(img.pixel_mm, 2)
    (3, 0.8)
"""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass

import numpy as np

from pipeline.serving.explain import GROUP_LABELS, Explanation
from pipeline.serving.feature_labels import feature_value_label
from pipeline.serving.score import band_limits
from pipeline.core.volume import Volume

PLANES = ("axial", "coronal", "sagittal")


@dataclass(frozen=True)
class Window:
    """A CT display window: centre ``level`` and ``width`` in HU."""

    level: float
    width: float

    def __post_init__(self) -> None:
        if not self.width > 0:
            raise ValueError(f"window width must be > 0 HU, got {self.width}")


WINDOW_PRESETS: dict[str, Window] = {
    "lung": Window(level=-600.0, width=1500.0),
    "mediastinal": Window(level=40.0, width=400.0),
}
"""Display windows (HU): lung L −600 / W 1500, mediastinal L 40 / W 400."""

BAND_COLOURS = {"low": "#2e7d32", "intermediate": "#f9a825", "high": "#c62828"}
BAND_FILL = {"low": "#c8e6c9", "intermediate": "#ffecb3", "high": "#ffcdd2"}
POSITIVE, NEGATIVE = "#c62828", "#1565c0"  # SHAP: raises / lowers the VPI probability
OUTLINE_RGB = (255, 214, 0)

# Orientation letters per plane: (left, right, top, bottom) of the displayed image.
_ORIENTATION = {
    "axial": ("R", "L", "A", "P"),
    "coronal": ("R", "L", "S", "I"),
    "sagittal": ("A", "P", "S", "I"),
}


def band_ranges(threshold: float = 0.5) -> list[tuple[str, float, float]]:
    """(band, low, high) probability ranges of the display bands around the model's operating
    ``threshold`` (``score.band_limits``)."""
    lo, hi = band_limits(threshold)
    return [("low", 0.0, lo), ("intermediate", lo, hi), ("high", hi, 1.0)]


# ------------------------------------------------------------------------------------------------
# slice viewer
@dataclass(frozen=True, eq=False)
class ViewerVolumes:
    """CT (HU) and ROI (0/1) reoriented to LPS for display; arrays (z, y, x).

    Attributes:
        ct: int16/float CT array (z, y, x) in HU.
        roi: uint8 mask (z, y, x) on the same grid.
        spacing_zyx: voxel size (mm) along z, y, x.
        centre_zyx: the tumour's central voxel (centre of mass of the ROI, rounded).
    """

    ct: np.ndarray
    roi: np.ndarray
    spacing_zyx: tuple[float, float, float]
    centre_zyx: tuple[int, int, int]

    def n_slices(self, plane: str) -> int:
        return int(self.ct.shape[_plane_axis(plane)])

    def centre_index(self, plane: str) -> int:
        """Slice index through the tumour centre for ``plane``."""
        return int(self.centre_zyx[_plane_axis(plane)])


def _plane_axis(plane: str) -> int:
    try:
        return PLANES.index(plane)
    except ValueError:
        raise ValueError(f"plane must be one of {PLANES}, got {plane!r}") from None


def _lps_axes(direction: tuple[float, ...]) -> tuple[tuple[int, int, int], tuple[bool, bool, bool]] | None:
    """For an axis-aligned direction matrix: (input array axis for each output (z, y, x) axis,
    whether to flip it) so that the output runs along +S, +P, +L (LPS); ``None`` if oblique."""
    d = np.asarray(direction, dtype=float).reshape(3, 3)  # column k: physical direction of index axis k (x, y, z)
    if not np.allclose(np.abs(d), np.round(np.abs(d)), atol=1e-6) or sorted(np.argmax(np.abs(d), axis=0)) != [0, 1, 2]:
        return None
    order: list[int] = [0, 0, 0]
    flip: list[bool] = [False, False, False]
    for k in range(3):  # index axis k (x=0, y=1, z=2) is array axis 2 - k
        physical = int(np.argmax(np.abs(d[:, k])))  # 0 = L, 1 = P, 2 = S
        order[2 - physical] = 2 - k
        flip[2 - physical] = d[physical, k] < 0
    return tuple(order), tuple(flip)  # type: ignore[return-value]


def viewer_volumes(ct: Volume, roi: Volume) -> ViewerVolumes:
    """Reorient a CT and its ROI (same grid) to LPS and find the tumour centre.

    Axis-aligned volumes (nearly all CTs) are reoriented with numpy views (transpose/flip, no
    copy of the CT); oblique ones are resampled by SimpleITK's ``DICOMOrient``.

    Raises:
        ValueError: the two volumes have different shapes or the ROI is empty.
    """
    if ct.shape_zyx != roi.shape_zyx:
        raise ValueError(f"CT {ct.shape_zyx} and ROI {roi.shape_zyx} must share one grid (z, y, x)")
    binary = roi.array if roi.array.dtype == np.uint8 and int(roi.array.max(initial=0)) <= 1 else \
        (roi.array > 0).astype(np.uint8)
    axes = _lps_axes(ct.direction)
    if axes is not None:
        order, flip = axes

        def orient(a: np.ndarray) -> np.ndarray:
            a = a.transpose(order)
            return a[tuple(slice(None, None, -1) if f else slice(None) for f in flip)]

        ct_arr, roi_arr = orient(ct.array), orient(binary)
        spacing_zyx = tuple(float(ct.spacing_zyx[a]) for a in order)
    else:
        import SimpleITK as sitk

        ct_img = sitk.DICOMOrient(ct.to_sitk(), "LPS")
        ct_arr = sitk.GetArrayFromImage(ct_img)
        roi_arr = sitk.GetArrayFromImage(sitk.DICOMOrient(roi.with_array(binary).to_sitk(), "LPS")).astype(np.uint8)
        sx, sy, sz = ct_img.GetSpacing()
        spacing_zyx = (float(sz), float(sy), float(sx))
    # centre of mass of the ROI, found on the slab of slices that hold it
    nz = roi_arr.shape[0]
    z_any = np.flatnonzero(roi_arr.reshape(nz, -1).max(axis=1) if roi_arr.flags.c_contiguous
                           else roi_arr.max(axis=(1, 2)))
    if z_any.size == 0:
        raise ValueError("the ROI is empty; nothing to centre the viewer on")
    slab = roi_arr[z_any[0]:z_any[-1] + 1]
    centre = np.argwhere(slab).mean(axis=0) + (z_any[0], 0, 0)
    centre_zyx = tuple(int(round(float(c))) for c in centre)
    return ViewerVolumes(ct_arr, roi_arr, spacing_zyx, centre_zyx)  # type: ignore[arg-type]


@dataclass(frozen=True, eq=False)
class SliceImage:
    """One displayed slice: ``rgb`` (rows, cols, 3) uint8 with square pixels of ``pixel_mm``."""

    rgb: np.ndarray
    pixel_mm: float
    plane: str
    index: int
    n_slices: int
    window: str

    @property
    def orientation(self) -> tuple[str, str, str, str]:
        """Anatomical direction at the (left, right, top, bottom) edge of the image."""
        return _ORIENTATION[self.plane]

    @property
    def title(self) -> str:
        return f"{self.plane.capitalize()} slice {self.index + 1}/{self.n_slices}, {self.window} window"


def _window_to_grey(values: np.ndarray, window: Window) -> np.ndarray:
    low = window.level - window.width / 2.0
    return np.clip((values.astype(np.float32) - low) / window.width, 0.0, 1.0) * 255.0


def _outline(mask: np.ndarray, thickness: int) -> np.ndarray:
    from scipy.ndimage import binary_erosion

    inner = binary_erosion(mask, iterations=thickness, border_value=0)
    return mask & ~inner


def render_slice(viewer: ViewerVolumes, *, plane: str, index: int, window: str | Window = "lung",
                 max_pixels: int = 512) -> SliceImage:
    """A windowed CT slice with the ROI outline, resampled to square pixels.

    Args:
        plane: ``axial``, ``coronal`` or ``sagittal``.
        index: slice index along that plane's axis (clipped to the volume).
        window: a :data:`WINDOW_PRESETS` name or a :class:`Window` (HU).
        max_pixels: longest side of the returned image (pixels); the pixel size is the finest
            in-plane spacing unless that would exceed this.
    """
    axis = _plane_axis(plane)
    if isinstance(window, str):
        if window not in WINDOW_PRESETS:
            raise ValueError(f"window must be one of {sorted(WINDOW_PRESETS)} or a Window, got {window!r}")
        win, win_name = WINDOW_PRESETS[window], window
    else:
        win, win_name = window, f"L {window.level:g} / W {window.width:g}"
    if max_pixels < 16:
        raise ValueError(f"max_pixels must be ≥ 16, got {max_pixels}")
    n = viewer.ct.shape[axis]
    index = int(min(max(int(index), 0), n - 1))
    sz, sy, sx = viewer.spacing_zyx
    if plane == "axial":
        ct2, roi2, row_mm, col_mm = viewer.ct[index], viewer.roi[index], sy, sx
    elif plane == "coronal":
        ct2, roi2, row_mm, col_mm = viewer.ct[::-1, index, :], viewer.roi[::-1, index, :], sz, sx
    else:
        ct2, roi2, row_mm, col_mm = viewer.ct[::-1, :, index], viewer.roi[::-1, :, index], sz, sy
    rgb, pixel_mm = _slice_rgb(ct2, roi2, row_mm=row_mm, col_mm=col_mm, window=win, max_pixels=max_pixels)
    return SliceImage(rgb, float(pixel_mm), plane, index, int(n), win_name)


def _slice_rgb(ct2: np.ndarray, roi2: np.ndarray, *, row_mm: float, col_mm: float, window: Window,
               max_pixels: int) -> tuple[np.ndarray, float]:
    """Window a 2-D CT slice, resample it to square pixels and draw the ROI outline: (rgb, pixel mm)."""
    from PIL import Image

    rows, cols = ct2.shape
    height_mm, width_mm = rows * row_mm, cols * col_mm
    pixel_mm = max(min(row_mm, col_mm), max(height_mm, width_mm) / max_pixels)
    out_rows = max(1, int(round(height_mm / pixel_mm)))
    out_cols = max(1, int(round(width_mm / pixel_mm)))
    grey = _window_to_grey(np.ascontiguousarray(ct2), window)
    grey = np.asarray(Image.fromarray(grey, mode="F").resize((out_cols, out_rows), Image.Resampling.BILINEAR))
    mask = np.asarray(Image.fromarray(np.ascontiguousarray(roi2 > 0).astype(np.uint8) * 255)
                      .resize((out_cols, out_rows), Image.Resampling.NEAREST)) > 0
    rgb = np.repeat(np.clip(grey, 0, 255).astype(np.uint8)[:, :, None], 3, axis=2)
    if mask.any():
        edge = _outline(mask, 2 if max(out_rows, out_cols) > 384 else 1)
        rgb[edge] = OUTLINE_RGB
    return rgb, float(pixel_mm)


def render_zoom(viewer: ViewerVolumes, *, window: str = "lung", margin_mm: float = 15.0,
                max_pixels: int = 256) -> SliceImage:
    """The axial slice through the tumour centre, cropped to the ROI's extent on it plus
    ``margin_mm`` on every side (square field of view, mm): the tumour–pleura interface close up.

    Example:
        >>> import numpy as np
        >>> from pipeline.core.volume import Volume
        >>> ct = Volume(np.full((5, 64, 64), -800, np.int16), spacing_xyz=(1.0, 1.0, 2.0))
        >>> roi = np.zeros((5, 64, 64), np.uint8); roi[2, 30:36, 30:36] = 1
        >>> img = render_zoom(viewer_volumes(ct, ct.with_array(roi)), margin_mm=5.0)
        >>> img.plane, img.rgb.shape[0] == img.rgb.shape[1]
        ('axial', True)
    """
    if margin_mm < 0:
        raise ValueError(f"margin_mm must be ≥ 0, got {margin_mm}")
    if window not in WINDOW_PRESETS:
        raise ValueError(f"window must be one of {sorted(WINDOW_PRESETS)}, got {window!r}")
    index = viewer.centre_index("axial")
    ct2, roi2 = viewer.ct[index], viewer.roi[index]
    _sz, sy, sx = viewer.spacing_zyx
    rows_cols = np.argwhere(roi2 > 0)
    if rows_cols.size == 0:  # the centre of mass may fall outside a crescent-shaped ROI's voxels
        rows_cols = np.array([viewer.centre_zyx[1:]])
    (r0, c0), (r1, c1) = rows_cols.min(axis=0), rows_cols.max(axis=0)
    centre_r, centre_c = (r0 + r1) / 2.0, (c0 + c1) / 2.0
    half_mm = max((r1 - r0 + 1) * sy, (c1 - c0 + 1) * sx) / 2.0 + margin_mm
    hr, hc = int(np.ceil(half_mm / sy)), int(np.ceil(half_mm / sx))
    ra, rb = max(0, int(centre_r) - hr), min(ct2.shape[0], int(centre_r) + hr + 1)
    ca, cb = max(0, int(centre_c) - hc), min(ct2.shape[1], int(centre_c) + hc + 1)
    rgb, pixel_mm = _slice_rgb(ct2[ra:rb, ca:cb], roi2[ra:rb, ca:cb], row_mm=sy, col_mm=sx,
                               window=WINDOW_PRESETS[window], max_pixels=max_pixels)
    return SliceImage(rgb, pixel_mm, "axial", index, int(viewer.ct.shape[0]), f"{window}, close-up")


def _png_bytes(rgb: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG", optimize=False)
    return buf.getvalue()


# ------------------------------------------------------------------------------------------------
# plotly (app)
def probability_gauge(probability: float, *, threshold: float | None = None, tree_p05: float | None = None,
                      tree_p95: float | None = None):  # noqa: ANN201 - plotly Figure
    """Gauge of the VPI probability in percent over the low/intermediate/high bands, which are
    anchored on the model's operating threshold (``score.band_limits``).

    The threshold is the black tick, named in the legend under the gauge together with the
    bands; the tree spread (5th–95th percentile of the forest's trees) appears in the title when
    given. No hover text (the number is on the gauge).
    """
    import plotly.graph_objects as go

    _check_probability(probability)
    ranges = band_ranges(0.5 if threshold is None else threshold)
    ticks = sorted({0.0, 1.0, *(lo for _n, lo, _h in ranges)})
    gauge = {
        "axis": {"range": [0, 100], "tickvals": [100 * t for t in ticks], "tickformat": ".0f", "ticksuffix": " %"},
        "bar": {"color": "#263238", "thickness": 0.3},
        "steps": [{"range": [100 * lo, 100 * hi], "color": BAND_FILL[name]} for name, lo, hi in ranges],
    }
    if threshold is not None:
        gauge["threshold"] = {"line": {"color": "black", "width": 4}, "thickness": 0.95, "value": 100 * float(threshold)}
    title = "VPI probability"
    if tree_p05 is not None and tree_p95 is not None:
        title += (f"<br><span style='font-size:0.75em'>tree spread {100 * tree_p05:.0f}–{100 * tree_p95:.0f} %"
                  "</span>")
    fig = go.Figure(go.Indicator(mode="gauge+number", value=100 * float(probability),
                                 number={"valueformat": ".0f", "suffix": " %"}, gauge=gauge, title={"text": title}))
    legend = " · ".join(f"{name} {100 * lo:.0f}–{100 * hi:.0f} %" for name, lo, hi in ranges)
    if threshold is not None:
        legend = f"black tick = operating threshold {100 * threshold:.0f} %<br>bands: {legend}"
    fig.add_annotation(text=legend, x=0.5, y=0, xref="paper", yref="paper", showarrow=False, yanchor="top",
                       font={"size": 11, "color": "#37474f"})
    fig.update_layout(height=300, margin={"l": 30, "r": 30, "t": 70, "b": 55})
    return fig


def _unique(labels: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for lab in labels:
        k = seen.get(lab, 0)
        seen[lab] = k + 1
        out.append(lab + " " * k)  # plotly categories must be unique
    return out


def waterfall_rows(explanation: Explanation, *, top_k: int = 10) -> tuple[list[str], list[float], float, float, int]:
    """(labels, shap values, rest, prediction, n_rest) of the top-k features by |SHAP|, smallest first.

    ``rest`` sums the SHAP values of the other ``n_rest`` features, so
    ``base_value + sum(values) + rest == prediction`` (probability units).
    """
    if top_k < 1:
        raise ValueError(f"top_k must be ≥ 1, got {top_k}")
    top = explanation.top(top_k)
    shown = float(sum(s for _n, s, _v in top))
    total = float(np.sum(explanation.values))
    labels = [feature_value_label(n, v) for n, _s, v in top][::-1]
    values = [s for _n, s, _v in top][::-1]
    return labels, values, total - shown, explanation.base_value + total, len(explanation.names) - len(top)


def shap_waterfall(explanation: Explanation, *, top_k: int = 10):  # noqa: ANN201
    """Horizontal SHAP waterfall: base value (bottom) → top-k features → predicted probability (top)."""
    import plotly.graph_objects as go

    labels, values, rest, prediction, n_rest = waterfall_rows(explanation, top_k=top_k)
    y = ["Base value (average prediction)"]
    x = [explanation.base_value]
    measure = ["absolute"]
    if n_rest:
        y.append(f"{n_rest} other features")
        x.append(rest)
        measure.append("relative")
    y += labels
    x += values
    measure += ["relative"] * len(values)
    y.append("Predicted probability")
    x.append(prediction)
    measure.append("total")
    text = ([f"{100 * explanation.base_value:.0f} %"] + [f"{100 * v:+.1f} pts" for v in x[1:-1]]
            + [f"{100 * prediction:.0f} %"])
    names = [n for n, _s, _v in explanation.top(top_k)][::-1]
    hover = (["average prediction of the model"] + ([f"sum of the {n_rest} features not listed"] if n_rest else [])
             + [f"model feature: {n}" for n in names] + ["this case's probability"])
    fig = go.Figure(go.Waterfall(
        orientation="h", measure=measure, y=_unique(y), x=x, text=text, textposition="outside",
        customdata=hover, hovertemplate="%{customdata}<br>%{text}<extra></extra>",
        increasing={"marker": {"color": POSITIVE}}, decreasing={"marker": {"color": NEGATIVE}},
        totals={"marker": {"color": "#546e7a"}}, connector={"line": {"color": "#b0bec5", "width": 1}},
        cliponaxis=False,
    ))
    running = np.cumsum([explanation.base_value] + x[1:-1])
    lo, hi = min(0.0, float(running.min()), prediction), max(float(running.max()), prediction)
    fig.update_xaxes(range=[lo - 0.02, hi + 0.15 * max(hi - lo, 0.1)], tickformat=".0%", automargin=True)
    fig.update_layout(
        title="Top contributions (SHAP)<br><sup>red raises the probability, blue lowers it</sup>",
        xaxis_title="VPI probability",
        height=max(320, 34 * len(y) + 110), margin={"l": 10, "r": 40, "t": 50, "b": 60}, showlegend=False,
    )
    fig.update_yaxes(automargin=True)
    return fig


def group_totals_rows(explanation: Explanation) -> tuple[list[str], list[float]]:
    """(group labels, summed SHAP) in the fixed group order."""
    totals = explanation.group_totals()
    order = [g for g in GROUP_LABELS if g in totals] + [g for g in totals if g not in GROUP_LABELS]
    return [GROUP_LABELS.get(g, g) for g in order], [float(totals[g]) for g in order]


def group_totals_bar(explanation: Explanation):  # noqa: ANN201
    """Summed SHAP per feature group (deep, radiomics, pleura, clinical), probability units."""
    import plotly.graph_objects as go

    labels, values = group_totals_rows(explanation)
    fig = go.Figure(go.Bar(x=values, y=labels, orientation="h",
                           marker_color=[POSITIVE if v >= 0 else NEGATIVE for v in values],
                           text=[f"{100 * v:+.1f} pts" for v in values], textposition="outside", cliponaxis=False,
                           hovertemplate="%{y}: %{text}<extra></extra>"))
    span = max([abs(v) for v in values] + [0.02])
    fig.update_xaxes(range=[-1.6 * span, 1.6 * span], zeroline=True, zerolinecolor="#263238")
    fig.update_xaxes(tickformat="+.0%", automargin=True)
    fig.update_layout(title="By feature group (SHAP)", xaxis_title="change in probability",
                      height=100 + 45 * max(1, len(labels)), margin={"l": 10, "r": 40, "t": 50, "b": 60})
    fig.update_yaxes(automargin=True, autorange="reversed")
    return fig


def slice_figure(image: SliceImage):  # noqa: ANN201
    """Plotly figure of a :class:`SliceImage` (axes in mm, orientation letters at the edges)."""
    import plotly.graph_objects as go

    rows, cols = image.rgb.shape[:2]
    uri = "data:image/png;base64," + base64.b64encode(_png_bytes(image.rgb)).decode("ascii")
    fig = go.Figure(go.Image(source=uri, dx=image.pixel_mm, dy=image.pixel_mm, hoverinfo="skip"))
    width_mm, height_mm = cols * image.pixel_mm, rows * image.pixel_mm
    left, right, top, bottom = image.orientation
    style = {"showarrow": False, "font": {"color": "#ffd600", "size": 16}, "xref": "x", "yref": "y"}
    fig.add_annotation(x=0.03 * width_mm, y=height_mm / 2, text=left, xanchor="left", **style)
    fig.add_annotation(x=0.97 * width_mm, y=height_mm / 2, text=right, xanchor="right", **style)
    fig.add_annotation(x=width_mm / 2, y=0.04 * height_mm, text=top, yanchor="top", **style)
    fig.add_annotation(x=width_mm / 2, y=0.96 * height_mm, text=bottom, yanchor="bottom", **style)
    fig.update_xaxes(showticklabels=False, showgrid=False, zeroline=False, title=None)
    fig.update_yaxes(showticklabels=False, showgrid=False, zeroline=False, title=None, scaleanchor="x")
    fig.update_layout(title=image.title, margin={"l": 0, "r": 0, "t": 40, "b": 0},
                      height=int(min(640, max(300, 520 * rows / max(cols, 1)))), dragmode="pan")
    return fig


def _check_probability(p: float) -> None:
    if not (isinstance(p, (int, float, np.floating)) and 0.0 <= float(p) <= 1.0):
        raise ValueError(f"probability must be in [0, 1], got {p!r}")


# ------------------------------------------------------------------------------------------------
# matplotlib PNGs (report)
def _fig_png(fig, dpi: int) -> bytes:  # noqa: ANN001
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight", pad_inches=0.05)
    return buf.getvalue()


def _new_figure(width_in: float, height_in: float):  # noqa: ANN202
    from matplotlib.figure import Figure  # no pyplot: thread-safe, no global state

    return Figure(figsize=(width_in, height_in))


def gauge_png(probability: float, *, threshold: float | None = None, tree_p05: float | None = None,
              tree_p95: float | None = None, dpi: int = 200) -> bytes:
    """A horizontal probability scale (0–100 %) with the band colours, the probability marker, the
    tree spread as a line and the model threshold as a tick (PNG)."""
    _check_probability(probability)
    fig = _new_figure(4.2, 0.9)
    ax = fig.add_axes((0.03, 0.42, 0.94, 0.32))
    for name, lo, hi in band_ranges(0.5 if threshold is None else threshold):
        ax.axvspan(lo, hi, color=BAND_FILL[name], lw=0)
        ax.text((lo + hi) / 2, 0.5, name, ha="center", va="center", fontsize=7, color=BAND_COLOURS[name])
    if tree_p05 is not None and tree_p95 is not None:
        ax.plot([tree_p05, tree_p95], [0.18, 0.18], color="#263238", lw=2.5, solid_capstyle="butt")
    if threshold is not None:
        ax.axvline(threshold, color="black", lw=1, ls="--")
    ax.plot([probability], [0.5], marker="v", markersize=11, color="#263238", clip_on=False, transform=ax.transData)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_yticks([])
    ticks = sorted({0.0, 1.0, *(lo for _n, lo, _h in band_ranges(0.5 if threshold is None else threshold))})
    ax.set_xticks(ticks, labels=[f"{100 * t:.0f} %" for t in ticks])  # percent, as the app and the report text
    ax.tick_params(labelsize=7)
    for side in ("top", "right", "left"):
        ax.spines[side].set_visible(False)
    return _fig_png(fig, dpi)


def waterfall_png(explanation: Explanation, *, top_k: int = 10, dpi: int = 200, width_in: float = 5.6) -> bytes:
    """Matplotlib version of :func:`shap_waterfall` (PNG)."""
    labels, values, rest, prediction, n_rest = waterfall_rows(explanation, top_k=top_k)
    names = ["Base value"] + ([f"{n_rest} other features"] if n_rest else []) + labels + ["Predicted probability"]
    deltas = ([rest] if n_rest else []) + values
    fig = _new_figure(width_in, 0.26 * len(names) + 0.7)
    ax = fig.add_subplot(1, 1, 1)
    base = explanation.base_value
    ax.barh(0, base, color="#90a4ae", height=0.6)
    ax.text(base, 0, f" {base:.3f}", va="center", fontsize=6.5)
    cum = base
    for i, d in enumerate(deltas, start=1):
        ax.barh(i, d, left=cum, color=POSITIVE if d >= 0 else NEGATIVE, height=0.6)
        ax.text(max(cum, cum + d), i, f" {d:+.3f}", va="center", fontsize=6.5)
        cum += d
    last = len(names) - 1
    ax.barh(last, prediction, color="#546e7a", height=0.6)
    ax.text(prediction, last, f" {prediction:.3f}", va="center", fontsize=6.5, fontweight="bold")
    ax.set_yticks(range(len(names)))
    ax.set_yticklabels(names, fontsize=6.5)
    ax.set_xlabel("VPI probability (red raises it, blue lowers it)", fontsize=7)
    ax.tick_params(axis="x", labelsize=6.5)
    lo = min(0.0, *(np.cumsum([base] + deltas)))
    hi = max(prediction, *(np.cumsum([base] + deltas)))
    ax.set_xlim(lo - 0.02, hi + 0.12 * max(hi - lo, 0.1))
    ax.set_title("Top contributions (SHAP, probability units)", fontsize=8)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    return _fig_png(fig, dpi)


def group_totals_png(explanation: Explanation, *, dpi: int = 200, width_in: float = 2.6) -> bytes:
    """Matplotlib version of :func:`group_totals_bar` (PNG)."""
    labels, values = group_totals_rows(explanation)
    fig = _new_figure(width_in, 0.3 * len(labels) + 0.8)
    ax = fig.add_subplot(1, 1, 1)
    y = np.arange(len(labels))[::-1]
    ax.barh(y, values, color=[POSITIVE if v >= 0 else NEGATIVE for v in values], height=0.6)
    ax.axvline(0, color="black", lw=0.6)
    for yi, v in zip(y, values):
        ax.text(v, yi, f" {v:+.3f} " if v >= 0 else f" {v:+.3f} ", va="center",
                ha="left" if v >= 0 else "right", fontsize=6.5)
    ax.set_yticks(y)
    ax.set_yticklabels(labels, fontsize=6.5)
    span = max(0.05, max(abs(v) for v in values) if values else 0.05)
    ax.set_xlim(-1.6 * span, 1.6 * span)
    ax.tick_params(axis="x", labelsize=6.5)
    ax.set_title("By feature group (SHAP)", fontsize=8)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    return _fig_png(fig, dpi)


def slice_png(image: SliceImage, *, dpi: int = 200, width_in: float = 3.2) -> bytes:
    """A :class:`SliceImage` with its title and orientation letters (PNG)."""
    rows, cols = image.rgb.shape[:2]
    fig = _new_figure(width_in, width_in * rows / max(cols, 1) + 0.3)
    ax = fig.add_subplot(1, 1, 1)
    ax.imshow(image.rgb, interpolation="nearest")
    left, right, top, bottom = image.orientation
    kw = {"color": "#ffd600", "fontsize": 8, "fontweight": "bold", "transform": ax.transAxes}
    ax.text(0.02, 0.5, left, ha="left", va="center", **kw)
    ax.text(0.98, 0.5, right, ha="right", va="center", **kw)
    ax.text(0.5, 0.98, top, ha="center", va="top", **kw)
    ax.text(0.5, 0.02, bottom, ha="center", va="bottom", **kw)
    ax.set_axis_off()
    ax.set_title(image.title, fontsize=7)
    return _fig_png(fig, dpi)
