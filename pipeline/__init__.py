"""PleuraRisk: visceral pleural invasion (VPI) risk from chest CT, tumour ROI and CEA/CA125/age.

Research use only. The sub-packages follow the data flow, and imports go one way only (lower
layers never import higher ones; ``tests/test_layering.py`` checks it)::

    core ← io ← preprocess ← inputs ← features ← serving ← training ← {app, cli}
    synth (phantoms) uses core and io;  models/ (networks, estimators) uses only core

One case: ``io`` (read, geometry) → ``inputs`` (validate, clinical values, crop → PreparedCase)
→ ``preprocess`` transforms → ``features`` (deep + radiomics + pleura + clinical groups)
→ ``serving`` (verified bundle → Scorer → probability, SHAP, report, audit) → ``app`` / ``cli``.
Batches: ``inputs.cohort`` (find cases) → ``serving.batch`` (resumable, local pool or Dask).
Training: ``synth`` (phantom cohorts) → ``training`` (feature tables, selection, PSO-tuned forests,
nested CV, evaluation) → a bundle written by ``serving.bundle``.

Array axis order everywhere is (z, y, x); spacings/origins taken from ITK are (x, y, z) and are
named ``*_xyz`` so the two are never confused. See ``docs/architecture.md``.
"""

__version__ = "0.1.0"

RESEARCH_NOTICE = (
    "Research use only; not a medical device. Not for clinical decisions."
)
SYNTHETIC_NOTICE = "Research use only; demo model trained on synthetic data."
