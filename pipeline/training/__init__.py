"""Training and validating a model bundle on a cohort (the researcher's path).

Contract:
    dataset    a cohort → feature table (parquet), resumable like a batch, recording the
               extraction settings and backbone fingerprint
    selection  :class:`FeatureSelector` (scikit-learn API): univariate AUC + redundancy filter,
               groups that must be kept
    train      nested cross-validation, PSO-tuned forests (:mod:`models.forest`), early or late
               fusion (:mod:`models.fusion`), recalibration and the operating threshold
    evaluate   metrics with bootstrap CIs, calibration, decision curves, plots

A trained model is written as a bundle through :mod:`pipeline.serving.bundle`, and external
validation scores through :mod:`pipeline.serving`; nothing in serving imports training.
"""
