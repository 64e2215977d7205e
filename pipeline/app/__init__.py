"""What the Streamlit pages need, kept out of ``pages/`` so it can be tested without a browser.

The pages only lay out widgets and call these modules; nothing is computed in a page.

Modules:
    bundles     which model bundles exist and a verified description of one (no model loaded)
    prediction  form values → :class:`~pipeline.inputs.clinical.ClinicalValues`, uploads → paths,
                :func:`~pipeline.app.prediction.run_prediction` through the serving ``Scorer``
    batch       uploads → cases (same layouts as ``pleura batch``) → resumable batch
    session     Streamlit glue, imported lazily: model cache, the session's upload folder and
                bundle, the notice banner, errors shown to the user

Depends on ``pipeline.serving`` and everything below it; nothing in ``pipeline`` imports it.
"""
