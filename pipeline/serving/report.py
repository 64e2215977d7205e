"""One-page PDF report (fpdf2) and the same content as JSON, for one scored case.

Contents: lab values with units, the sha256 prefixes of the CT and ROI inputs (never file names),
the VPI probability with its display band, the model's operating threshold and the tree spread
(labelled as the spread of the forest's trees, not a calibrated interval), the SHAP explanation
(chart), an axial and a coronal slice through the tumour with the ROI outline, the
applicability-domain verdict next to the probability, the findings (diameter, volume, solid
fraction, distance to pleura, contact length), validation warnings, model name, id and signer
(or "unsigned model"), date (UTC), and the model's notice (e.g. "Research use only; demo model
trained on synthetic data.") at the top and bottom of the page.

Text uses DejaVu Sans (a Unicode TTF shipped with matplotlib, else found on the system), so "–",
"σ", "≥", "µ" print as such; if no such font exists the text is transliterated to Latin-1 for
fpdf2's core fonts instead.

Example:
    >>> pdf = report_pdf(result, clinical=clinical)  # doctest: +SKIP
    >>> open("report.pdf", "wb").write(pdf)  # doctest: +SKIP
    >>> transliterate("LoG σ3 mm – p ≥ 0.5")  # the fallback when no Unicode font exists
    'LoG sigma3 mm - p >= 0.5'
"""

from __future__ import annotations

import datetime as _dt
import io
import json
from pathlib import Path
from typing import Any

from pipeline import __version__
from pipeline.inputs.clinical import ClinicalValues
from pipeline.serving.explain import GROUP_LABELS
from pipeline.serving.score import band_rule, percent

REPORT_FORMAT = "pleurarisk-report"
REPORT_VERSION = 1
HASH_PREFIX = 16
TREE_SPREAD_NOTE = ("Tree spread = 5th–95th percentile of the individual trees' probabilities: how much the "
                    "forest's trees disagree, not a calibrated confidence interval.")

_TRANSLIT = {
    "–": "-", "—": "-", "−": "-", "‑": "-", "σ": "sigma", "≥": ">=", "≤": "<=", "→": "->", "←": "<-",
    "…": "...", "‘": "'", "’": "'", "“": '"', "”": '"', "≈": "~", "±": "+/-", "•": "-", "×": "x",
    "µ": "u", "²": "2", "³": "3", "·": "-", "°": " deg", "Δ": "delta", "α": "alpha", "β": "beta",
}


def transliterate(text: str) -> str:
    """Latin-1-safe version of ``text`` for fpdf2's core fonts (``≥`` → ``>=``, ``σ`` → ``sigma`` …)."""
    out = "".join(_TRANSLIT.get(ch, ch) for ch in text)
    return out.encode("latin-1", errors="replace").decode("latin-1")


def find_unicode_font() -> tuple[Path, Path] | None:
    """(regular, bold) DejaVu Sans TTF paths: matplotlib's copy, else common system locations."""
    candidates = []
    try:
        import matplotlib

        candidates.append(Path(matplotlib.get_data_path()) / "fonts" / "ttf")
    except ImportError:  # pragma: no cover - matplotlib is a dependency
        pass
    candidates += [Path("/usr/share/fonts/truetype/dejavu"), Path("/usr/share/fonts/dejavu"),
                   Path("/usr/share/fonts/TTF")]
    for folder in candidates:
        regular, bold = folder / "DejaVuSans.ttf", folder / "DejaVuSans-Bold.ttf"
        if regular.is_file() and bold.is_file():
            return regular, bold
    return None


def _utc(created: _dt.datetime | None) -> _dt.datetime:
    now = created or _dt.datetime.now(_dt.timezone.utc)
    if now.tzinfo is None:
        raise ValueError("created must be timezone-aware (UTC)")
    return now.astimezone(_dt.timezone.utc).replace(microsecond=0)


def clinical_inputs(clinical: ClinicalValues) -> dict[str, float]:
    """Lab values and age keyed with their units (``CEA_ng_mL`` …)."""
    return dict(clinical.as_features())


def report_dict(result, *, clinical: ClinicalValues, roi_label: int | None = None,  # noqa: ANN001 - CaseResult
                created: _dt.datetime | None = None, top_k: int = 15) -> dict[str, Any]:
    """The report's content as a JSON-safe dict: ``CaseResult.to_dict`` plus the clinical inputs,
    the ROI label and report metadata (no file names, no identifiers)."""
    data = result.to_dict(top_k=top_k)
    data["inputs"] = {**data.get("inputs", {}), **clinical_inputs(clinical), "roi_label": roi_label}
    data["report"] = {"format": REPORT_FORMAT, "version": REPORT_VERSION,
                      "created_utc": _utc(created).isoformat().replace("+00:00", "Z"),
                      "pleurarisk_version": __version__}
    return data


def report_json(result, *, clinical: ClinicalValues, roi_label: int | None = None,  # noqa: ANN001
                created: _dt.datetime | None = None) -> bytes:
    """:func:`report_dict` as indented UTF-8 JSON bytes."""
    return (json.dumps(report_dict(result, clinical=clinical, roi_label=roi_label, created=created),
                       indent=2, allow_nan=False, ensure_ascii=False) + "\n").encode("utf-8")


# ------------------------------------------------------------------------------------------------
def _fpdf_class() -> type:
    """fpdf2's ``FPDF``, imported without pinning the importer's stack.

    fpdf2 keeps the ImportError of its optional ``cryptography`` import in
    ``fpdf.encryption.import_error``; that exception's traceback references every frame of the
    thread that first imported fpdf. In the app this is the first session that builds a PDF, so
    its session state (the upload folder with its CT, the result) would stay in memory and on
    disk until the server stops. The traceback is dropped; the message fpdf2 reports is kept.
    """
    import sys

    from fpdf import FPDF

    error = getattr(sys.modules.get("fpdf.encryption"), "import_error", None)
    if isinstance(error, BaseException):
        error.__traceback__ = None
    return FPDF


class _Page:
    """Small layout helper over fpdf2 (A4 portrait, mm)."""

    def __init__(self, title: str) -> None:
        FPDF = _fpdf_class()  # noqa: N806 - the class, under its own name

        self.pdf = FPDF(orientation="P", unit="mm", format="A4")
        self.pdf.set_margins(12, 10, 12)
        self.pdf.set_auto_page_break(False)
        self.pdf.set_title(title)
        self.pdf.set_creator(f"PleuraRisk {__version__}")
        self.pdf.set_author("PleuraRisk")
        fonts = find_unicode_font()
        if fonts is not None:
            self.pdf.add_font("DejaVu", "", str(fonts[0]))
            self.pdf.add_font("DejaVu", "B", str(fonts[1]))
            self.family, self.unicode = "DejaVu", True
        else:
            self.family, self.unicode = "Helvetica", False
        self.pdf.add_page()

    @property
    def width(self) -> float:
        return self.pdf.w - self.pdf.l_margin - self.pdf.r_margin

    def t(self, text: str) -> str:
        return text if self.unicode else transliterate(text)

    def font(self, size: float, bold: bool = False, colour: tuple[int, int, int] = (0, 0, 0)) -> None:
        self.pdf.set_font(self.family, "B" if bold else "", size)
        self.pdf.set_text_color(*colour)

    def line(self, text: str, *, size: float = 9, bold: bool = False, h: float | None = None,
             colour: tuple[int, int, int] = (0, 0, 0), w: float | None = None, x: float | None = None) -> None:
        from fpdf.enums import XPos, YPos

        self.font(size, bold, colour)
        if x is not None:
            self.pdf.set_x(x)
        self.pdf.multi_cell(w or self.width, h or size * 0.45, self.t(text), new_x=XPos.LMARGIN, new_y=YPos.NEXT)

    def heading(self, text: str) -> None:
        self.pdf.ln(1.2)
        self.line(text, size=10.5, bold=True, colour=(38, 50, 56))
        y = self.pdf.get_y()
        self.pdf.set_draw_color(176, 190, 197)
        self.pdf.line(self.pdf.l_margin, y, self.pdf.l_margin + self.width, y)
        self.pdf.ln(1.0)

    def image(self, png: bytes, *, x: float, y: float, w: float | None = None, h: float | None = None) -> tuple[float, float]:
        """Place a PNG fitting in (w, h) mm keeping its aspect ratio; return the used (w, h)."""
        from PIL import Image

        with Image.open(io.BytesIO(png)) as im:
            px_w, px_h = im.size
        ratio = px_h / px_w
        if w is not None and h is not None:
            w_used = min(w, h / ratio)
        elif w is not None:
            w_used = w
        elif h is not None:
            w_used = h / ratio
        else:
            raise ValueError("give w and/or h")
        h_used = w_used * ratio
        self.pdf.image(io.BytesIO(png), x=x, y=y, w=w_used, h=h_used)
        return w_used, h_used

    def notice_box(self, notice: str) -> None:
        from fpdf.enums import XPos, YPos

        self.pdf.set_fill_color(255, 235, 238)
        self.pdf.set_draw_color(198, 40, 40)
        self.font(10, True, (183, 28, 28))
        self.pdf.multi_cell(self.width, 6, self.t(notice), border=1, fill=True, align="C",
                            new_x=XPos.LMARGIN, new_y=YPos.NEXT)


def _fmt_hash(h: str) -> str:
    return f"{h[:HASH_PREFIX]}…" if h else "(not recorded)"


def report_pdf(result, *, clinical: ClinicalValues, roi_label: int | None = None, viewer=None,  # noqa: ANN001
               created: _dt.datetime | None = None, top_k: int = 10, max_warnings: int = 6,
               references: dict[str, str] | None = None) -> bytes:
    """One-page A4 PDF of a scored case (see module docstring); returns the PDF bytes.

    Args:
        result: a :class:`~pipeline.serving.score.CaseResult`.
        clinical: the CEA (ng/mL), CA125 (U/mL) and age (years) the case was scored with.
        roi_label: the ROI label chosen, if any.
        viewer: :class:`~pipeline.serving.figures.ViewerVolumes` for the slice images; built from
            ``result.case`` when that holds the full volumes; without either the images are left out.
        created: report time (UTC, timezone-aware); default now.
        top_k: features shown in the SHAP chart.
        max_warnings: warnings listed on the page (the JSON has all of them).
        references: optional ``{"Patient reference": …, "Study reference": …}`` typed by the
            user (printed under the title; never taken from the input files); at most 64
            characters each.
    """
    from pipeline.serving import figures

    refs = {str(k)[:40]: " ".join(str(v).split())[:64] for k, v in (references or {}).items() if str(v).strip()}

    when = _utc(created)
    page = _Page("PleuraRisk VPI risk report")
    pdf = page.pdf
    pdf.set_creation_date(when)
    left = pdf.l_margin

    # -- header + notice ------------------------------------------------------------------------
    page.line("PleuraRisk: visceral pleural invasion (VPI) risk", size=15, bold=True, h=7)
    page.line(f"Report created {when:%Y-%m-%d %H:%M} UTC  ·  Model {result.model_name} "
              f"(id {result.model_id[:12]})  ·  PleuraRisk {__version__}", size=8, colour=(84, 110, 122))
    page.line(f"Model {result.model_signer}", size=8, bold=not result.model_signature.trusted,
              colour=(84, 110, 122) if result.model_signature.trusted else (183, 28, 28))
    if refs:
        page.line("  ·  ".join(f"{k}: {v}" for k, v in refs.items()), size=9.5, bold=True)
    pdf.ln(1.5)
    page.notice_box(result.notice)

    # -- result ---------------------------------------------------------------------------------
    page.heading("Result")
    y0 = pdf.get_y()
    col_w = page.width * 0.52
    band_rgb = {"low": (46, 125, 50), "intermediate": (191, 133, 0), "high": (198, 40, 40)}.get(result.risk_band, (0, 0, 0))
    page.line(f"VPI probability {percent(result.probability)}", size=16, bold=True, h=7.5, w=col_w)
    page.line(f"Model output {result.probability:.3f} on a 0-1 scale, shown in percent.", size=7,
              colour=(84, 110, 122), w=col_w)
    page.line(f"{result.risk_band.capitalize()} risk band", size=11, bold=True, h=5.5, colour=band_rgb, w=col_w)
    side = "at or above" if result.probability >= result.threshold else "below"
    page.line(f"{side.capitalize()} the model's operating threshold of {percent(result.threshold)}.", size=8.5, w=col_w)
    domain = result.domain
    if domain.status == "out":
        page.line(f"Outside the model's experience: {'; '.join(domain.reasons)}", size=8.5, bold=True,
                  colour=(198, 40, 40), w=col_w)
    elif domain.status == "unknown":
        page.line(domain.notice[:1].upper() + domain.notice[1:], size=8, colour=(84, 110, 122), w=col_w)
    else:
        page.line("Inside the model's training domain (size, scanner and features).", size=8, w=col_w)
    if result.tree_p05 is not None and result.tree_p95 is not None:
        sd = f", SD {100 * result.tree_sd:.0f} pts" if result.tree_sd is not None else ""
        page.line(f"Tree spread: {percent(result.tree_p05)} – {percent(result.tree_p95)}{sd}", size=8.5, w=col_w)
        page.line(TREE_SPREAD_NOTE, size=7, colour=(84, 110, 122), w=col_w)
    page.line(f"Bands: {band_rule(result.threshold)}.", size=7, colour=(84, 110, 122), w=col_w)
    y_text_end = pdf.get_y()
    gauge = figures.gauge_png(result.probability, threshold=result.threshold, tree_p05=result.tree_p05,
                              tree_p95=result.tree_p95)
    _w, gh = page.image(gauge, x=left + col_w + 4, y=y0 + 2, w=page.width - col_w - 4)
    pdf.set_xy(left + col_w + 4, y0 + gh + 3)
    page.line(f"Marker: probability; bar: tree spread; dashed line: threshold {percent(result.threshold)}",
              size=6.5, colour=(84, 110, 122), w=page.width - col_w - 4, x=left + col_w + 4)
    pdf.set_y(max(y_text_end, y0 + gh + 8))

    # -- inputs + warnings ----------------------------------------------------------------------
    page.heading("Inputs")
    label_txt = "not specified (single-label mask)" if roi_label is None else str(roi_label)
    rows = [
        ("CEA", f"{clinical.cea_ng_ml:g} ng/mL"), ("CA125", f"{clinical.ca125_u_ml:g} U/mL"),
        ("Age", f"{clinical.age_years:g} years"), ("ROI label", label_txt),
        ("CT sha256", _fmt_hash(result.ct_sha256)), ("ROI sha256", _fmt_hash(result.roi_sha256)),
    ]
    half = page.width / 2
    y = pdf.get_y()
    for i, (k, v) in enumerate(rows):
        col, row = i % 2, i // 2
        pdf.set_xy(left + col * half, y + row * 4.6)
        page.font(8.5, True)
        pdf.cell(24, 4.6, page.t(k))
        page.font(8.5)
        pdf.cell(half - 24, 4.6, page.t(v))
    pdf.set_xy(left, y + ((len(rows) + 1) // 2) * 4.6)
    source = getattr(result, "roi_source", None)
    if source and source.get("kind") == "semi-automatic":
        x, y_mm, z = source.get("seed_xyz_mm", ("?", "?", "?"))
        capped = " The ROI reached the growth cap and was cut there." if source.get("capped") else ""
        page.line(f"ROI: semi-automatic, segmented from a click at ({x}, {y_mm}, {z}) mm LPS "
                  f"({source.get('method', '')}, sensitivity {source.get('params', {}).get('sensitivity', '')}).{capped}",
                  size=8, w=page.width)
    if result.findings is not None:
        page.heading("Findings (measured on the ROI)")
        found = result.findings.rows()
        y = pdf.get_y()
        for i, (k, v) in enumerate(found):
            col, row = i % 2, i // 2
            pdf.set_xy(left + col * half, y + row * 4.6)
            page.font(8.5, True)
            label_w = max(48.0, pdf.get_string_width(page.t(k)) + 2.0)  # a long label never runs into its value
            pdf.cell(label_w, 4.6, page.t(k))
            page.font(8.5)
            pdf.cell(max(half - label_w, 10.0), 4.6, page.t(v))
        pdf.set_xy(left, y + ((len(found) + 1) // 2) * 4.6)
    page.heading(f"Validation warnings ({len(result.warnings)})")
    if result.warnings:
        for w in result.warnings[:max_warnings]:
            page.line(f"• {w}", size=8, colour=(121, 85, 0))
        if len(result.warnings) > max_warnings:
            page.line(f"… and {len(result.warnings) - max_warnings} more (see the JSON report).", size=8)
    else:
        page.line("None: the images passed every check.", size=8)

    # -- explanation ----------------------------------------------------------------------------
    footer_h = 16
    page_bottom = pdf.h - pdf.b_margin - footer_h
    if result.explanation is not None:
        page.heading("Explanation (SHAP, probability units: base value + contributions = probability)")
        y = pdf.get_y()
        images_reserved = 62 if (viewer is not None or (result.case is not None and result.case.ct_full is not None)) else 0
        avail_h = max(40.0, page_bottom - y - images_reserved - 8)
        wf = figures.waterfall_png(result.explanation, top_k=top_k)
        ww, wh = page.image(wf, x=left, y=y, w=page.width * 0.64, h=avail_h)
        gt = figures.group_totals_png(result.explanation)
        _gw, gh2 = page.image(gt, x=left + ww + 3, y=y, w=page.width - ww - 3, h=avail_h)
        pdf.set_y(y + max(wh, gh2) + 1)
        totals = ", ".join(f"{GROUP_LABELS.get(g, g)} {v:+.3f}" for g, v in result.explanation.group_totals().items())
        page.line(f"Base value {result.explanation.base_value:.3f}; by group: {totals}.", size=7, colour=(84, 110, 122))
    else:
        page.heading("Explanation")
        page.line("This model provides no SHAP explanation.", size=8)

    # -- images ---------------------------------------------------------------------------------
    if viewer is None and result.case is not None and result.case.ct_full is not None and result.case.roi_full is not None:
        viewer = figures.viewer_volumes(result.case.ct_full, result.case.roi_full)
    if viewer is not None:
        page.heading("CT at the tumour (ROI in yellow) · tumour–pleura close-ups: lung, mediastinal window")
        y = pdf.get_y()
        avail_h = page_bottom - y - 1
        if avail_h > 20:
            x = left
            images = [figures.render_slice(viewer, plane=plane, index=viewer.centre_index(plane), window="lung")
                      for plane in ("axial", "coronal")]
            images += [figures.render_zoom(viewer, window=w) for w in ("lung", "mediastinal")]
            for img in images:
                w_used, _h = page.image(figures.slice_png(img), x=x, y=y, w=page.width / 4 - 3, h=avail_h)
                x += w_used + 4
        pdf.set_y(page_bottom)

    # -- footer ---------------------------------------------------------------------------------
    pdf.set_y(pdf.h - pdf.b_margin - footer_h + 2)
    pdf.set_draw_color(176, 190, 197)
    pdf.line(left, pdf.get_y(), left + page.width, pdf.get_y())
    pdf.ln(1)
    page.line(result.notice, size=8.5, bold=True, colour=(183, 28, 28))
    page.line("The probability comes from a statistical model and must be interpreted by a qualified clinician "
              "together with all other findings. Inputs are identified only by sha256 content hashes.",
              size=7, colour=(84, 110, 122))
    return bytes(pdf.output())
