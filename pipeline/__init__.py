"""PleuraRisk: visceral pleural invasion (VPI) risk from chest CT, tumour ROI and CEA/CA125/age.

Research use only. The package follows the data flow:

``io`` (read, geometry) → ``validate`` → ``case`` (checks + crop) → ``preprocess`` (crop in mm,
resample, window, cube) → ``radiomics`` + ``models.medicalnet`` + ``pleura`` + ``clinical``
→ ``features`` → ``bundle`` (verified model) → ``score`` → ``explain`` → ``cli`` / app / ``report``.

Batches: ``cohort`` (find cases) → ``batch`` (resumable, local pool or Dask).
Training: ``phantom`` (synthetic cohorts) → ``dataset`` (feature tables) → ``selection`` +
``models.forest`` + ``models.fusion`` → ``train`` (nested CV) → ``evaluate`` → ``train_cli``.

Array axis order everywhere is (z, y, x); spacings/origins taken from ITK are (x, y, z) and are
named ``*_xyz`` so the two are never confused.
"""

__version__ = "0.1.0"

RESEARCH_NOTICE = (
    "Research use only; not a medical device. Not for clinical decisions."
)
SYNTHETIC_NOTICE = "Research use only; demo model trained on synthetic data."
