"""Training and validating a model bundle on a cohort (the researcher's path).

Contract:
    dataset    a cohort → feature table (parquet), resumable like a batch, recording the
               extraction settings and backbone fingerprint
    selection  :class:`FeatureSelector` (scikit-learn API): univariate AUC + redundancy filter,
               groups that must be kept
    train      nested cross-validation, PSO-tuned forests (:mod:`models.forest`), early or late
               fusion (:mod:`models.fusion`)
    evaluate   metrics with bootstrap CIs, calibration, decision curves, plots
    build      ``train_bundle`` (``pleura train``): feature table → validated, recalibrated bundle with
               its operating threshold, training report, plots and model card
    fit        ``fit_bundle`` (``pleura fit``): plain random forest → bundle; the backbone check
    external   ``evaluate_bundle`` (``pleura evaluate``): a bundle scored on a labelled cohort, oracle
               and quality bar for synthetic cohorts, optionally attached to the bundle
    model_card ``MODEL_CARD.md`` text and the external-validation line

A trained model is written as a bundle through :mod:`pipeline.serving.bundle`, and external
validation scores through :mod:`pipeline.serving`; nothing in serving imports training.
"""
