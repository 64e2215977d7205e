"""Helpers shared by the app tests (``streamlit.testing.v1.AppTest``, no browser)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from sklearn.ensemble import RandomForestClassifier
from streamlit.testing.v1 import AppTest

from signing_helpers import sign_for_tests

from pipeline.serving.bundle import write_bundle
from pipeline.core.config import PipelineConfig
from pipeline.core.groups import CLINICAL_FEATURES

APP = Path(__file__).resolve().parents[2] / "app.py"
TIMEOUT = 300


def clinical_bundle(out: Path, name: str) -> Path:
    """A small clinical-values-only bundle (scores in a fraction of a second; the images are still
    read and checked, as for any bundle)."""
    from pipeline.serving.figures import gauge_png

    rng = np.random.default_rng(1)
    X = np.column_stack([rng.uniform(0, 20, 80), rng.uniform(5, 80, 80), rng.uniform(40, 85, 80)])
    y = (X[:, 0] + rng.normal(0, 4, 80) > 8).astype(int)
    forest = RandomForestClassifier(n_estimators=20, min_samples_leaf=2, random_state=0).fit(X, y)
    write_bundle(out, estimator=forest, feature_names=list(CLINICAL_FEATURES), config=PipelineConfig(),
                 synthetic=True, name=name, model_card=f"# {name}\nA clinical-values-only test model.",
                 training={"method": "test forest", "threshold": 0.5, "metrics": {"auc": 0.8}},
                 extra_files={"report/curve.png": gauge_png(0.4)})
    return sign_for_tests(out)


def new_app() -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT)
    at.run()
    return at


def open_page(page: str) -> AppTest:
    at = new_app()
    at.switch_page(page).run()
    return at


def errors(at: AppTest) -> list[str]:
    return [e.value for e in at.error]


def upload(at: AppTest, key: str, name: str, data: bytes) -> None:
    at.file_uploader(key=key).set_value((name, data, "application/octet-stream"))


def fill_labs(at: AppTest, cea=3.2, ca125=18.0, age=64.0) -> None:  # noqa: ANN001
    at.text_input(key="cea").set_value(None if cea is None else str(cea))
    at.text_input(key="ca125").set_value(None if ca125 is None else str(ca125))
    at.text_input(key="age").set_value(None if age is None else str(age))


def shown_probability(at: AppTest) -> float:
    """The probability metric ("42 %") as a fraction."""
    return float(at.metric[0].value.replace("%", "").strip()) / 100.0
