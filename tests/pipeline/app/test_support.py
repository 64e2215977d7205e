"""App helpers without a browser: bundles, form parsing, one prediction, one batch."""

from __future__ import annotations

import csv
import io
import json
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from sklearn.ensemble import RandomForestClassifier

from signing_helpers import sign_for_tests

from pipeline import SYNTHETIC_NOTICE

from pipeline.app import batch as app_batch, bundles, prediction

from pipeline.io.archive import UploadFolder
from pipeline.serving.audit import read_audit
from pipeline.serving.bundle import write_bundle
from pipeline.core.config import PipelineConfig
from pipeline.core.errors import ClinicalValueError, CohortError, MaskError
from pipeline.core.groups import CLINICAL_FEATURES
from pipeline.io.readers import write_image
from pipeline.synth import PhantomSpec, make_phantom
from pipeline.serving.score import Scorer


def make_clinical_bundle(out: Path, *, name: str = "clinical-test") -> Path:
    """A real bundle whose forest uses only CEA/CA125/age (scores in well under a second)."""
    rng = np.random.default_rng(0)
    X = np.column_stack([rng.uniform(0, 20, 80), rng.uniform(5, 80, 80), rng.uniform(40, 85, 80)])
    y = (X[:, 0] + rng.normal(0, 4, 80) > 8).astype(int)
    forest = RandomForestClassifier(n_estimators=25, min_samples_leaf=2, random_state=0).fit(X, y)
    from pipeline.serving.figures import gauge_png

    write_bundle(out, estimator=forest, feature_names=list(CLINICAL_FEATURES), config=PipelineConfig(),
                 synthetic=True, name=name, model_card="# Test model\nClinical values only.",
                 training={"method": "test forest", "threshold": 0.45, "n_cases": 80, "n_positive": 41,
                           "metrics": {"auc": 0.81, "brier": 0.17}},
                 extra_files={"report/calibration.png": gauge_png(0.5)})
    return sign_for_tests(out)


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("weights")
    make_clinical_bundle(root / "alpha", name="alpha")
    make_clinical_bundle(root / "beta", name="beta")
    return root


@pytest.fixture(scope="module")
def phantom_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Path]]:
    tmp = tmp_path_factory.mktemp("phantoms")
    out = {}
    for seed in (11, 12):
        ph = make_phantom(PhantomSpec(seed=seed))
        out[f"case{seed}"] = (write_image(ph.ct, tmp / f"case{seed}_ct.nii.gz"), write_image(ph.roi, tmp / f"case{seed}_roi.nii.gz"))
    return out


def test_bundle_choices_env_first_then_weights_folder(weights: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    extra = make_clinical_bundle(tmp_path / "mine", name="mine")
    monkeypatch.setenv("PLEURA_WEIGHTS_DIR", str(weights))
    monkeypatch.setenv("PLEURA_BUNDLE", str(extra))
    assert [p.name for p in bundles.bundle_choices()] == ["mine", "alpha", "beta"]
    assert bundles.initial_bundle_path() == extra
    monkeypatch.setenv("PLEURA_BUNDLE", str(tmp_path / "missing"))
    assert bundles.initial_bundle_path() == weights / "alpha"  # the default is missing: first available
    monkeypatch.setenv("PLEURA_WEIGHTS_DIR", str(tmp_path / "empty"))
    assert bundles.initial_bundle_path() is None


def test_describe_bundle_reads_card_metrics_reports_and_refuses_tampering(weights: Path, tmp_path: Path) -> None:
    info = bundles.describe_bundle(weights / "alpha")
    assert info.ok and info.name == "alpha" and info.notice == SYNTHETIC_NOTICE and len(info.bundle_id) == 64
    rows = dict(info.summary_rows())
    assert rows["Operating threshold"] == "0.45" and rows["Training cases"] == "80 (41 with VPI)"
    assert rows["Features"] == "3 (clinical 3)"
    assert ("metrics.auc", "0.81") in bundles.training_rows(info.manifest)
    assert info.report_files == ("report/calibration.png",) and "Clinical values only" in (info.model_card or "")
    versions = {r["package"]: r for r in bundles.version_rows(info.manifest)}
    assert versions["numpy"]["same"] == "yes"

    broken = make_clinical_bundle(tmp_path / "broken")
    data = bytearray((broken / "model.skops").read_bytes())
    data[-10] ^= 0xFF
    (broken / "model.skops").write_bytes(bytes(data))
    bad = bundles.describe_bundle(broken)
    assert not bad.ok and "sha256" in (bad.error or "")
    missing = bundles.describe_bundle(tmp_path / "nothing")
    assert not missing.ok and "PLEURA_BUNDLE" in (missing.error or "")


def test_form_values_are_checked_with_clear_messages() -> None:
    assert prediction.clinical_from_form(cea=3.2, ca125=12.0, age=67.0).as_features()["CEA_ng_mL"] == 3.2
    with pytest.raises(ClinicalValueError, match="CEA is missing"):
        prediction.clinical_from_form(cea=None, ca125=12.0, age=67.0)
    with pytest.raises(ClinicalValueError, match="age = 7 years is outside"):
        prediction.clinical_from_form(cea=1.0, ca125=12.0, age=7.0)
    assert prediction.roi_label_from_form(None) is None and prediction.roi_label_from_form(3) == 3
    for bad in (0, -1, 1.5):
        with pytest.raises(MaskError, match="whole number"):
            prediction.roi_label_from_form(bad)


def test_step_progress_only_moves_forward() -> None:
    t = prediction.StepProgress()
    seen = [t.fraction(s) for s, _ in prediction.StepProgress.STEPS] + [t.fraction("something new"), t.fraction("scoring")]
    assert seen == sorted(seen) and seen[-1] == seen[-2] < 1.0


def test_run_prediction_keeps_what_the_view_needs_and_audits(weights: Path, phantom_files, tmp_path: Path) -> None:
    scorer = Scorer(weights / "alpha")
    ct, roi = phantom_files["case11"]
    clinical = prediction.clinical_from_form(cea=15.0, ca125=20.0, age=70.0)
    steps: list[str] = []
    log = tmp_path / "audit.jsonl"
    outcome = prediction.run_prediction(scorer, ct_path=ct, roi_path=roi, clinical=clinical, progress=steps.append,
                                 signature="sig", audit_path=log)
    r = outcome.result
    assert 0.0 <= r.probability <= 1.0 and r.case is None  # the big volumes are not kept twice
    assert outcome.viewer is not None and outcome.viewer.roi.any()
    assert steps[0] == "reading and checking the images" and steps[-1] == "preparing the result view"
    assert json.loads(outcome.json_bytes)["inputs"]["CEA_ng_mL"] == 15.0
    (entry,) = read_audit(log)
    assert entry["source"] == "app" and entry["ct_sha256"] == r.ct_sha256 and "case11" not in json.dumps(entry)
    # several script runs asking at once (Streamlit's fast reruns) share one build of the report
    with ThreadPoolExecutor(max_workers=3) as pool:
        pdfs = list(pool.map(lambda _i: outcome.pdf(), range(3)))
    assert pdfs[0].startswith(b"%PDF") and all(p is outcome.pdf_bytes for p in pdfs)
    assert outcome.file_stem().startswith("pleurarisk_") and "case11" not in outcome.file_stem()
    # an unwritable audit log is reported, the result is kept
    outcome2 = prediction.run_prediction(scorer, ct_path=ct, roi_path=roi, clinical=clinical, audit_path=tmp_path)
    assert outcome2.result.probability == pytest.approx(r.probability)
    assert "audit log could not be written" in (outcome2.audit_error or "")


def test_input_signature_changes_with_any_input() -> None:
    clin = prediction.clinical_from_form(cea=1, ca125=2, age=50)
    base = dict(ct_token="a", roi_token="b", clinical=clin, roi_label=None, model_id="m")
    sig = prediction.input_signature(**base)
    for change in ({"ct_token": "z"}, {"clinical": prediction.clinical_from_form(cea=1, ca125=2, age=51)},
                   {"roi_label": 2}, {"model_id": "n"}, {"clinical": None}):
        assert prediction.input_signature(**{**base, **change}) != sig


def _batch_zip(phantom_files, *, wrap: str = "", with_csv: bool = True) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for cid, (ct, roi) in phantom_files.items():
            zf.write(ct, f"{wrap}{cid}_ct.nii.gz")
            zf.write(roi, f"{wrap}{cid}_roi.nii.gz")
        zf.write(phantom_files["case11"][0], f"{wrap}orphan_ct.nii.gz")  # no ROI → its own error row
        if with_csv:
            zf.writestr(f"{wrap}clinical.csv", "case_id,CEA,CA125,age\ncase11,3,20,60\ncase12,12,40,71\norphan,1,1,50\n")
    return buf.getvalue()


def info_signer(path: Path) -> str:
    return bundles.describe_bundle(path).signer_label


def test_batch_from_a_zip_scores_good_cases_and_reports_broken_ones(weights: Path, phantom_files, tmp_path: Path) -> None:
    uploads = UploadFolder(parent=tmp_path)
    cases = app_batch.prepare_batch(uploads, zip_bytes=_batch_zip(phantom_files, wrap="export/"), zip_token="z1")
    assert [c.case_id for c in cases] == ["case11", "case12", "orphan"]
    progress: list[tuple[int, int]] = []
    log = tmp_path / "audit.jsonl"
    res = app_batch.run_app_batch(cases, bundle=bundles.describe_bundle(weights / "beta"), out_path=uploads.root / "out.csv",
                            progress=lambda d, t, _r: progress.append((d, t)), audit_path=log)
    table = res.table
    assert list(table["status"]) == ["ok", "ok", "error"]
    assert "no ROI mask" in table.loc[2, "error"]
    assert res.summary.n_ok == 2 and progress[-1] == (3, 3)
    assert res.csv_bytes.startswith(b"case_id,status")
    rows = list(csv.DictReader(io.StringIO(res.csv_bytes.decode())))
    assert {r["model_signer"] for r in rows if r["status"] == "ok"} == {info_signer(weights / "beta")}
    assert info_signer(weights / "beta").startswith("signed by PleuraRisk test key (key ")
    assert [e["source"] for e in read_audit(log)] == ["app-batch", "app-batch"]


def test_batch_needs_clinical_values(phantom_files, tmp_path: Path) -> None:
    uploads = UploadFolder(parent=tmp_path)
    with pytest.raises(CohortError, match="clinical CSV"):
        app_batch.prepare_batch(uploads, zip_bytes=_batch_zip(phantom_files, with_csv=False))
    cases = app_batch.prepare_batch(uploads, zip_bytes=_batch_zip(phantom_files, with_csv=False), zip_token="z2",
                              csv_bytes=b"case_id,CEA,CA125,age\ncase11,3,20,60\n")
    assert {c.case_id: c.problem_type for c in cases} == {"case11": None, "case12": "clinical", "orphan": "cohort"}


def test_batch_root_unwraps_one_top_folder_but_keeps_a_single_case_folder(tmp_path: Path) -> None:
    (tmp_path / "a" / "export" / "inner").mkdir(parents=True)
    (tmp_path / "a" / "export" / "inner" / "x_ct.nii.gz").write_bytes(b"")
    assert app_batch.batch_root(tmp_path / "a") == tmp_path / "a" / "export" / "inner"
    (tmp_path / "b" / "case1").mkdir(parents=True)
    (tmp_path / "b" / "case1" / "ct.nii.gz").write_bytes(b"")
    assert app_batch.batch_root(tmp_path / "b") == tmp_path / "b"
