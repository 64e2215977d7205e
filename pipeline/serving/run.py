"""Score from files, as ``pleura score`` and ``pleura batch`` do: one case, or a folder of cases.

:func:`score_files` checks the clinical values and the images (with the bundle's settings)
*before* loading the model, so a bad input is refused in about a second instead of after the
imports and weights; it scores with :class:`~pipeline.serving.score.Scorer` and writes one audit
line. :func:`score_folder` discovers the cases of a folder or manifest CSV
(:func:`pipeline.inputs.cohort.discover_cases`), scores them with
:func:`pipeline.serving.batch.run_batch` (resumable results CSV) and writes one audit line per
newly scored case.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from pipeline.serving.batch import BatchSummary

__all__ = ["FolderResult", "score_files", "score_folder"]

BatchProgress = Callable[[int, int, Optional[dict]], None]
"""``progress(done, total, row)``: ``row`` is the finished case's result row (None for resumed cases)."""


def score_files(*, ct: str | os.PathLike[str], roi: str | os.PathLike[str] | None, cea: Any, ca125: Any, age: Any,
                bundle: str | os.PathLike[str] | None = None, label: Optional[int] = None,
                num_threads: Optional[int] = None, roi_name: Optional[str] = None, series_uid: Optional[str] = None,
                dicom_out: str | os.PathLike[str] | None = None, on_note: Optional[Callable[[str], None]] = None,
                allow_unsigned: Optional[bool] = None, audit_source: Optional[str] = "cli",
                allow_resample: bool = False, seed_mm: Optional[tuple[float, float, float]] = None,
                seed_voxel: Optional[tuple[int, int, int]] = None, segment_params: Any = None) -> Any:
    """Score one case from its files and return the :class:`~pipeline.serving.score.CaseResult`.

    Args:
        ct: CT file (.nii/.nii.gz/.nrrd/.mha), DICOM folder or a .zip of one, in HU.
        roi: tumour ROI: a mask image on the same grid, a DICOM RTSTRUCT/SEG file (or a folder/zip
            holding one); None when the CT's DICOM folder holds the RTSTRUCT/SEG.
        cea, ca125, age: CEA (ng/mL), CA125 (U/mL), age (years), as numbers or text.
        bundle: bundle folder (default: :func:`pipeline.serving.bundle.default_bundle_path`).
        label: ROI label to use when the mask has several.
        num_threads: torch threads (None: ``PLEURA_THREADS`` or torch's default).
        roi_name: RTSTRUCT ROI name / SEG segment label (see
            :func:`pipeline.inputs.dicom_inputs.resolve_inputs`).
        series_uid: the CT series to use when a DICOM folder holds several.
        dicom_out: also write a DICOM SEG, a Comprehensive 3D SR and the Encapsulated PDF report
            into this folder (needs a DICOM CT; never inside an input folder).
        on_note: receives user-facing notes (series used, objects skipped, files written), after
            the input checks so a refused input gives only its error.
        allow_unsigned: load an unsigned / untrusted-key bundle (None: ``PLEURA_ALLOW_UNSIGNED``);
            the result then names the model as unsigned.
        audit_source: the audit line's source (None: no audit line).
        allow_resample: a mask on another voxel grid may be resampled onto the CT's (near-complete
            overlap only); refused otherwise.
        seed_mm, seed_voxel: instead of ``roi``, a click inside the tumour (LPS mm, or an ITK
            voxel index i, j, k): the ROI is segmented semi-automatically
            (:mod:`pipeline.serving.semiauto`, ``segment_params``: a ``SegmentParams``) and the
            result's ``roi_source`` says so.

    Raises:
        ClinicalValueError, InputError subclasses, BundleError: one sentence naming the input.
    """
    from pipeline.inputs.case import load_case
    from pipeline.inputs.clinical import parse_clinical
    from pipeline.inputs.dicom_inputs import resolve_inputs
    from pipeline.serving.bundle import bundle_config

    say = on_note or (lambda _text: None)
    clinical = parse_clinical(cea=cea, ca125=ca125, age=age)
    if audit_source is not None:
        from pipeline.serving.audit import ensure_audit_writable

        ensure_audit_writable()  # an unwritable audit log is refused before the work, not after it
    # Images are checked (with the model's settings) before the model is loaded, so a bad file
    # is refused in about a second instead of after the imports and weights.
    config = bundle_config(bundle, allow_unsigned=allow_unsigned)
    if dicom_out:
        from pipeline.serving.dicom_out import check_output_folder

        check_output_folder(dicom_out, inputs=[ct] + ([roi] if roi else []))
    t = time.perf_counter()
    with contextlib.ExitStack() as stack:
        seg = None
        if seed_mm is not None or seed_voxel is not None:
            from pipeline.core.errors import ConfigError
            from pipeline.serving.semiauto import semiauto_roi

            if roi is not None:
                raise ConfigError("give either the ROI mask or a click in the tumour (--seed-mm / --seed-voxel), not both")
            roi, seg = stack.enter_context(semiauto_roi(ct, seed_mm=seed_mm, seed_voxel=seed_voxel,
                                                        params=segment_params, series_uid=series_uid))
            say(seg.describe() + (f"; {'; '.join(seg.warnings)}" if seg.warnings else ""))
        inputs = stack.enter_context(resolve_inputs(ct, roi, roi_name=roi_name, series_uid=series_uid))
        case = load_case(inputs.ct_path, inputs.roi_path, config=config, label=label, allow_resample=allow_resample)
        for note in inputs.notes:
            say(note)
        timings = {"read_validate_crop": time.perf_counter() - t}
        from pipeline.serving.score import Scorer

        scorer = Scorer(bundle, num_threads=num_threads, allow_unsigned=allow_unsigned)
        result = scorer.score_prepared(case, clinical, timings=timings)
        if seg is not None:
            result = dataclasses.replace(result, roi_source=seg.provenance(),
                                         warnings=tuple(result.warnings) + tuple(seg.warnings))
        if dicom_out:
            from pipeline.serving.dicom_out import write_dicom_results

            for path in write_dicom_results(result, case=case, series=inputs.series, clinical=clinical,
                                            out_dir=dicom_out, roi_name=inputs.roi_name):
                say(f"wrote {path}")
    if audit_source is not None:
        from pipeline.serving.audit import log_prediction

        log_prediction(result, source=audit_source)
    return result


@dataclass(frozen=True)
class FolderResult:
    """What :func:`score_folder` did: the batch summary, the bundle's notice, name, id and signer, and
    how many scored cases have no audit line (the log failed during the batch, e.g. a full disk; the
    batch goes on)."""

    summary: BatchSummary
    notice: str
    model_name: str = ""
    model_id: str = ""
    signer: str = ""
    audit_missing: int = 0


def score_folder(*, source: str | os.PathLike[str], out: str | os.PathLike[str],
                 clinical_csv: str | os.PathLike[str] | None = None, bundle: str | os.PathLike[str] | None = None,
                 workers: int = 1, num_threads: Optional[int] = None, label: Optional[int] = None,
                 scheduler: Optional[str] = None, progress: Optional[BatchProgress] = None,
                 roi_name: Optional[str] = None, dicom_out: str | os.PathLike[str] | None = None,
                 allow_unsigned: Optional[bool] = None, audit_source: Optional[str] = "cli-batch") -> FolderResult:
    """Score every case of a folder or manifest CSV into the results CSV ``out`` (resumes).

    Args:
        source: folder of ``<case>_ct`` / ``<case>_roi`` images, one folder per case, or a manifest CSV.
        out: results CSV (its journal ``<out>.journal.jsonl`` beside it).
        clinical_csv: CSV with case_id, CEA, CA125, age.
        bundle: bundle folder (default: :func:`pipeline.serving.bundle.default_bundle_path`).
        workers: local worker processes (at least 1).
        num_threads: torch threads per worker; None: cores / workers locally, and on a Dask
            cluster each worker sizes itself.
        label: ROI label to use when masks have several.
        scheduler: Dask scheduler address (``tcp://HOST:8786``) instead of local workers.
        progress: ``progress(done, total, row)`` as cases finish.
        roi_name: RTSTRUCT ROI / SEG segment to score in every case (a manifest's ``roi_name``
            column overrides it).
        dicom_out: write each case's DICOM SEG, SR and Encapsulated PDF into ``dicom_out/<case_id>/``.
        allow_unsigned: load an unsigned / untrusted-key bundle (None: ``PLEURA_ALLOW_UNSIGNED``).
        audit_source: the audit lines' source (None: no audit lines).

    Raises:
        AuditLogError: the audit log cannot be written (checked before any work).
        BundleError: the bundle does not verify. CohortError: the folder or CSVs are unusable.
    """
    from pipeline.core.env import threads_per_worker
    from pipeline.inputs.cohort import discover_cases
    from pipeline.serving.audit import append_audit, ensure_audit_writable, entry_from_batch_row
    from pipeline.serving.batch import run_batch
    from pipeline.serving.bundle import check_bundle, default_bundle_path

    from pipeline.serving.outputs import check_output

    if audit_source is not None:
        ensure_audit_writable()  # refused before the batch starts
    check_output(out, inputs=[source, clinical_csv], folders=[bundle])
    bundle_path = Path(bundle) if bundle else default_bundle_path()
    manifest, bundle_id, signature = check_bundle(bundle_path, allow_unsigned=allow_unsigned)
    notice = str(manifest.get("notice", ""))
    if dicom_out:
        from pipeline.serving.dicom_out import check_output_folder

        check_output_folder(dicom_out, inputs=[source if Path(source).is_dir() else str(Path(source).parent)])
    cases = discover_cases(source, clinical_csv=clinical_csv, roi_name=roi_name)

    audit_missing = 0

    def on_progress(done: int, total: int, row: dict | None) -> None:
        nonlocal audit_missing
        if audit_source is not None and row is not None and row.get("status") == "ok":
            try:
                append_audit(entry_from_batch_row(row, model_name=bundle_path.name, source=audit_source))
            except OSError:
                audit_missing += 1  # the batch goes on; reported in FolderResult.audit_missing
        if progress is not None:
            progress(done, total, row)

    workers = max(1, int(workers))
    # local pool: cores / workers; on a Dask cluster each worker sizes itself (cores / workers on its machine)
    threads = num_threads or (None if scheduler else threads_per_worker(workers))
    summary = run_batch(cases, out_path=out, bundle_path=str(bundle_path), model_id=bundle_id, notice=notice,
                        workers=workers, label=label, num_threads=threads, progress=on_progress, scheduler=scheduler,
                        dicom_out=dicom_out, signer=signature.label, allow_unsigned=allow_unsigned)
    return FolderResult(summary=summary, notice=notice, model_name=bundle_path.name, model_id=bundle_id,
                        signer=signature.label, audit_missing=audit_missing)
