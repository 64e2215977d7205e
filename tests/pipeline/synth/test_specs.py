"""Phantom settings: invalid values are refused with one sentence naming the setting."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.synth import TumourSpec, sample_case


def test_invalid_specs_are_refused_with_a_clear_message():
    with pytest.raises(ValueError, match="diameter_mm"):
        TumourSpec(diameter_mm=2.0)
    with pytest.raises(ValueError, match="pleural_tag"):
        TumourSpec(distance_to_pleura_mm=0.0, pleural_tag=True)
    with pytest.raises(ValueError, match="size"):
        sample_case(np.random.default_rng(0), size="huge", case_index=0)
    with pytest.raises(ValueError, match="scanner"):
        sample_case(np.random.default_rng(0), case_index=0, scanner="nope")
