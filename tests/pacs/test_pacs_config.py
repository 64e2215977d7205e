"""The PACS settings (``PLEURA_DICOMWEB_*``, ``PLEURA_PACS_*``): read in pipeline/core/env.py, checked
with one sentence naming the variable, the password never in a repr or a message."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.core.errors import ConfigError
from pipeline.pacs.config import pacs_config, require_pacs_config

URL = {"PLEURA_DICOMWEB_URL": "https://pacs.example/dicom-web/"}


def test_defaults_and_the_password_kept_out_of_reprs(tmp_path: Path):
    c = pacs_config({**URL, "PLEURA_DICOMWEB_USER": "u", "PLEURA_DICOMWEB_PASSWORD": "pa55word"})
    assert c.url == "https://pacs.example/dicom-web" and c.timeout_s == 30 and c.retries == 2
    assert c.search_fields == ("patient_id", "accession", "study_date") and c.max_study_mb == 2048
    assert "pa55word" not in repr(c)
    from pipeline.core.env import settings

    assert "pa55word" not in repr(settings({**URL, "PLEURA_DICOMWEB_PASSWORD": "pa55word"}))
    secret = tmp_path / "pw"
    secret.write_text("from-file\n")
    assert pacs_config({**URL, "PLEURA_DICOMWEB_USER": "u", "PLEURA_DICOMWEB_PASSWORD_FILE": str(secret)}).password \
        == "from-file"


@pytest.mark.parametrize("env, message", [
    ({"PLEURA_DICOMWEB_URL": "pacs.example"}, "PLEURA_DICOMWEB_URL must be an http:// or https:// address"),
    ({**URL, "PLEURA_PACS_SEARCH_FIELDS": "patient_name"}, "PLEURA_PACS_SEARCH_FIELDS must list some of"),
    ({**URL, "PLEURA_DICOMWEB_TIMEOUT_S": "0"}, "PLEURA_DICOMWEB_TIMEOUT_S must be a whole number from 1 to 3600"),
    ({**URL, "PLEURA_DICOMWEB_PASSWORD": "x"}, "PLEURA_DICOMWEB_USER is not"),
    ({**URL, "PLEURA_DICOMWEB_USER": "u", "PLEURA_DICOMWEB_PASSWORD_FILE": "/nonexistent/pw"},
     "PLEURA_DICOMWEB_PASSWORD_FILE cannot be read"),
    ({**URL, "PLEURA_DICOMWEB_CA_BUNDLE": "/nonexistent/ca.pem"}, "PLEURA_DICOMWEB_CA_BUNDLE must be a PEM file"),
    ({}, "no PACS is configured: set PLEURA_DICOMWEB_URL"),
])
def test_unusable_settings_name_the_variable(env: dict, message: str):
    with pytest.raises(ConfigError) as info:
        require_pacs_config(env)
    assert message in str(info.value)
