"""Fixtures of the app tests: two small clinical-only bundles and a session environment using them."""

from __future__ import annotations

from pathlib import Path

import pytest
from app_helpers import clinical_bundle



@pytest.fixture(scope="module")
def weights_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("app_weights")
    clinical_bundle(root / "alpha", "alpha")
    clinical_bundle(root / "beta", "beta")
    return root


@pytest.fixture()
def env(weights_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Bundle 'alpha', an audit log in tmp, and no other bundle leaking in from weights/."""
    monkeypatch.setenv("PLEURA_WEIGHTS_DIR", str(weights_dir))
    monkeypatch.setenv("PLEURA_BUNDLE", str(weights_dir / "alpha"))
    monkeypatch.setenv("PLEURA_AUDIT_LOG", str(tmp_path / "audit.jsonl"))
    return tmp_path / "audit.jsonl"
