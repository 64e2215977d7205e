"""A small labelled feature table on disk (no images, no deep features), as ``pleura features`` writes it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline.core.config import PipelineConfig
from pipeline.training.dataset import write_table


@pytest.fixture(autouse=True)
def _load_unsigned_training_outputs(monkeypatch: pytest.MonkeyPatch) -> None:
    """Bundles trained here are unsigned (``pleura train`` never signs); these tests are about
    training, so they load them with the explicit allowance (signing: tests/pipeline/serving/test_signing.py)."""
    monkeypatch.setenv("PLEURA_ALLOW_UNSIGNED", "1")


@pytest.fixture(scope="module")
def small_feature_table(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """48 labelled cases (one failed extraction row besides): informative pleura + clinical columns."""
    rng = np.random.default_rng(5)
    n = 48
    y = np.arange(n) % 2
    table = pd.DataFrame({
        "case_id": [f"case_{i:04d}" for i in range(n)], "status": "ok", "error": "", "label": y.astype(float),
        "p_true": np.nan,
        "pleura_contact_mm": 1.5 * y + rng.normal(0, 1, n),
        "tumour_solid_fraction": 0.8 * y + rng.normal(0, 1, n),
        "CEA_ng_mL": np.exp(0.6 * y + rng.normal(0, 0.6, n)),
        "CA125_U_mL": np.exp(rng.normal(3, 0.5, n)),
        "age_years": rng.normal(66, 8, n),
        "original_firstorder_Mean": rng.normal(size=n),
    })
    failed = {c: np.nan for c in table.columns} | {"case_id": "case_broken", "status": "error",
                                                     "error": "the CT is truncated", "label": 1.0}
    table = pd.concat([table, pd.DataFrame([failed])], ignore_index=True)
    out = tmp_path_factory.mktemp("table") / "features.parquet"
    write_table(table, out, {"config": PipelineConfig().to_dict(), "backbone_spec": "seed:0",
                             "backbone_source": "", "backbone_fingerprint": ""})
    return out
