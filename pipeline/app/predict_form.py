"""Predict page, input section: the images (CT, ROI, DICOM choices) and the clinical values,
kept in the session's case (:mod:`pipeline.app.case_state`) and checked field by field as typed
(:mod:`pipeline.app.labs`). :func:`render_form` draws it and returns a :class:`CaseForm`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.app import case_state, labs, prediction
from pipeline.app.viewer.trace import mark

IMAGE_HELP = ("NIfTI (.nii, .nii.gz), NRRD (.nrrd), MHA (.mha), or for the CT a .zip of the DICOM series. "
              "Values must be Hounsfield units; the file name is never stored.")
ROI_HELP = ("A mask with the tumour labelled (non-zero) on the same grid as the CT (NIfTI, NRRD or MHA), or a DICOM "
            "RTSTRUCT or SEG file. Not needed when the CT zip holds the RTSTRUCT/SEG.")
ROLE_LABELS = {"ct": "CT scan", "roi": "Tumour ROI mask, RTSTRUCT or SEG (drawn on this CT)"}
ROLE_NAMES = {"ct": "a CT scan", "roi": "a tumour ROI mask"}


@dataclass
class CaseForm:
    """What the form holds now: stored input paths by role, their upload tokens, the DICOM
    choices, the lab check, the ROI label as entered and the resample choice."""

    paths: dict[str, Path] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)
    choices: Any = None
    series_uid: str | None = None
    roi_name: str | None = None
    lab_check: labs.LabCheck = field(default_factory=labs.LabCheck)
    roi_label: object = None
    allow_resample: bool = False
    semi_roi: Any = None  # an accepted click-to-segment ROI (pipeline.app.viewer.panel.AcceptedRoi)

    def use_semiautomatic_roi(self, accepted: Any) -> None:  # noqa: ANN401 - AcceptedRoi | None
        """Take the viewer's accepted click-to-segment ROI as the case's ROI when no ROI was uploaded
        (an uploaded mask or a RTSTRUCT/SEG in the CT zip always wins)."""
        if accepted is None or "roi" in self.paths or self.roi_in_ct:
            return
        self.paths["roi"] = accepted.path
        self.tokens["roi"] = f"semi:{accepted.token}"
        self.semi_roi = accepted

    @property
    def roi_in_ct(self) -> bool:
        """The CT zip holds the RTSTRUCT/SEG (no separate ROI upload needed)."""
        return "roi" not in self.paths and bool(getattr(self.choices, "roi_names", ()))

    def problems(self) -> list[str]:
        """Everything that stops Predict, all at once (missing files, every lab problem, ROI label)."""
        out = []
        missing = [ROLE_NAMES[r] for r in ("ct", "roi") if r not in self.paths and not (r == "roi" and self.roi_in_ct)]
        if missing == [ROLE_NAMES["roi"]]:
            out.append("Upload a tumour ROI mask, or click the tumour in the viewer and accept the ROI.")
        elif missing:
            out.append(f"Upload {' and '.join(missing)} (and fix any file error shown above).")
        out.extend(self.lab_check.problems())
        try:
            prediction.roi_label_from_form(self.roi_label)
        except Exception as err:  # noqa: BLE001 - PleuraRiskError: its sentence is the message
            out.append(str(err))
        return out

    def signature(self, model_id: str) -> str:
        """Changes whenever anything that affects the prediction changes."""
        try:
            label = prediction.roi_label_from_form(self.roi_label)
        except Exception:  # noqa: BLE001
            label = None
        return prediction.input_signature(
            ct_token=f"{self.tokens.get('ct', '')}|{self.series_uid or ''}",
            roi_token=f"{self.tokens.get('roi', '')}|{self.roi_name or ''}", clinical=self.lab_check.values,
            roi_label=label, model_id=model_id, allow_resample=self.allow_resample)


def _image_input(role: str, form: CaseForm, uploads) -> None:  # noqa: ANN001 - UploadFolder
    import streamlit as st

    from pipeline.app import dicom_support as dsup
    from pipeline.app.session import show_error
    from pipeline.core.errors import PleuraRiskError

    key = case_state.upload_key(role)
    upload = st.file_uploader(ROLE_LABELS[role], key=key, help=IMAGE_HELP if role == "ct" else ROI_HELP,
                              on_change=case_state.forget_file_if_removed, args=(role, key))
    if upload is not None:
        try:
            form.paths[role] = uploads.lookup(role, upload.file_id) or (
                dsup.store_roi_upload(uploads, filename=upload.name, data=upload.getvalue(), token=upload.file_id)
                if role == "roi" else
                uploads.store_image(role, filename=upload.name, data=upload.getvalue(), token=upload.file_id))
        except PleuraRiskError as err:
            case_state.case()["files"].pop(role, None)
            show_error(err)
            return
        form.tokens[role] = upload.file_id
        mark(f"form: {role} upload stored")
        case_state.keep_file(role, token=upload.file_id, name=upload.name, size=upload.size)
        return
    kept = case_state.kept_file(role)
    if kept is not None:
        form.paths[role] = uploads.path(role)
        form.tokens[role] = kept["token"]
        st.caption(f"In use for this case: **{kept['name']}** ({kept['size'] / 1e6:.1f} MB), kept from earlier in "
                   "this session. Upload another file to replace it, or press **New case**.")


def _persisted(key: str, make):  # noqa: ANN001, ANN202 - make: () -> widget value
    case_state.restore(key)
    value = make()
    case_state.remember(key)
    return value


def render_form(uploads) -> CaseForm:  # noqa: ANN001 - UploadFolder
    """Draw the images and clinical-values columns; returns what they hold."""
    import streamlit as st

    from pipeline.app import dicom_support as dsup
    from pipeline.app import pacs_source
    from pipeline.core.errors import PleuraRiskError

    form = CaseForm()
    col_img, col_lab = st.columns(2, gap="large")
    with col_img:
        st.subheader("Images")
        _image_input("ct", form, uploads)
        _image_input("roi", form, uploads)
        form.allow_resample = bool(_persisted("allow_resample", lambda: st.checkbox(
            "Resample the mask onto the CT", key="allow_resample",
            help="Only for a mask drawn on this very scan but saved on another voxel grid. Without this box such a "
                 "mask is refused; with it, the mask is resampled only when it overlaps the CT near-completely, "
                 "and the result says so.")))
        # a study from the PACS (only when one is configured) stands in for an uploaded CT
        pacs_source.source_panel(uploads, form.paths, form.tokens)
        dicom_slot = st.container()
    with col_lab:
        st.subheader("Clinical values")
        texts = {}
        for name in labs.LAB_NAMES:
            key = labs.LAB_KEYS[name]
            texts[name] = _persisted(key, lambda n=name, k=key: st.text_input(
                labs.LAB_LABELS[n], key=k, placeholder=labs.LAB_PLACEHOLDERS[n], help=prediction.CLINICAL_HELP[n]
                + " A decimal comma is read as a decimal point (3,2 = 3.2)."))
            single = labs.check_labs({name: texts[name]})
            if name in single.errors:
                st.error(single.errors[name], icon=":material/error:")
            elif single.used_text(name):
                st.caption(f"Used by the model: {single.used_text(name)}")
        form.lab_check = labs.check_labs(texts)
        form.roi_label = _persisted("roi_label", lambda: st.number_input(
            "ROI label (optional)", value=None, step=1, key="roi_label", placeholder="single-label mask",
            help="Only needed when the mask holds several labels: the label value of the tumour."))

    form.choices = dsup.DicomChoices()
    if form.paths:
        try:
            form.choices = dsup.dicom_choices(ct_path=form.paths.get("ct"), roi_path=form.paths.get("roi"))
        except PleuraRiskError:
            pass  # a damaged DICOM upload: Predict reports it, once
    with dicom_slot:
        choices = form.choices
        if len(choices.series) > 1:
            names = dict(choices.series)
            form.series_uid = st.selectbox(
                "CT series", list(names), format_func=names.get, key="dicom_series", index=None,
                placeholder="chosen automatically (the one the structure set references)",
                help="The DICOM upload holds several image series; the ROI must be drawn on this one.")
        if choices.roi_names:
            default = next((i for i, n in enumerate(choices.roi_names) if n.upper().startswith("GTV")), 0)
            form.roi_name = st.selectbox(
                f"Tumour ROI in the {choices.roi_kind}", choices.roi_names, index=default, key="dicom_roi_name",
                help="Volume ROIs only (points and markers are not listed).")
    return form
