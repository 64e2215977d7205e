"""Shared test fixtures: small real phantoms, a tiny trained bundle, the real CT fixture.

Heavier tests are marked ``slow`` and run only with ``--run-slow`` or ``PLEURA_RUN_SLOW=1``.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

# Tests (and the CLI/app subprocesses they start) never write the audit log into the checkout.
os.environ.setdefault("PLEURA_AUDIT_LOG", os.path.join(tempfile.mkdtemp(prefix="pleura-audit-"), "audit.jsonl"))
# Bundles the tests train are signed with a throwaway key made for this session; the session (and
# its subprocesses) trusts that key besides the pinned release key. Unsigned models stay refused.
from signing_helpers import TRUSTED_DIR, sign_for_tests  # noqa: E402

os.environ["PLEURA_TRUSTED_KEYS"] = os.pathsep.join(p for p in (str(TRUSTED_DIR), os.environ.get("PLEURA_TRUSTED_KEYS")) if p)
os.environ.pop("PLEURA_ALLOW_UNSIGNED", None)

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
REAL_CT_DIR = SHARED / "fixtures" / "real_ct" / "pyradiomics_lung1"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--run-slow", action="store_true", default=False, help="run tests marked slow")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--run-slow") or os.environ.get("PLEURA_RUN_SLOW") == "1":
        return
    skip = pytest.mark.skip(reason="slow: opt in with --run-slow or PLEURA_RUN_SLOW=1")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def real_ct() -> tuple[Path, Path]:
    """The real chest CT (NRRD) and nodule label from ../shared (BSD-3, PyRadiomics' lung1)."""
    image, label = REAL_CT_DIR / "lung1_image.nrrd", REAL_CT_DIR / "lung1_label.nrrd"
    if not image.is_file():
        pytest.skip("../shared/fixtures/real_ct is not present")
    return image, label


@pytest.fixture(scope="session")
def phantom_cohort(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 16-case small phantom cohort (128×128×64); returns its clinical.csv."""
    from pipeline.synth import write_cohort

    return write_cohort(tmp_path_factory.mktemp("cohort"), n=16, seed=7, size="small")


@pytest.fixture(scope="session")
def phantom_features(phantom_cohort: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """All features of the phantom cohort (parquet), extracted by the real pipeline."""
    from pipeline.training.dataset import extract_cohort_features

    out = tmp_path_factory.mktemp("features") / "features.parquet"
    extract_cohort_features(phantom_cohort, out, workers=1, num_threads=2)
    return out


@pytest.fixture(scope="session")
def tiny_bundle(phantom_features: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real bundle (plain forest via ``pleura fit``) trained on the phantom features, signed
    with the session's trusted test key."""
    from pipeline.cli.main import main

    out = tmp_path_factory.mktemp("weights") / "tiny"
    assert main(["fit", str(phantom_features), "--out", str(out), "--trees", "50", "--synthetic"]) == 0
    return sign_for_tests(out)
