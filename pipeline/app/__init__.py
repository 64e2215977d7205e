"""What the Streamlit pages need, kept out of ``pages/`` so it can be tested without a browser.

The pages only lay out widgets and call these modules; nothing is computed in a page.

Modules:
    bundles     which model bundles exist and a verified description of one (no model loaded)
    prediction  form values → :class:`~pipeline.inputs.clinical.ClinicalValues`, uploads → paths,
                :func:`~pipeline.app.prediction.run_prediction` through the serving ``Scorer``
    batch       uploads → cases (same layouts as ``pleura batch``) → resumable batch
    session     Streamlit glue, imported lazily: model cache, the session's upload folder and
                bundle, the notice banner, errors shown to the user
    launch      the Streamlit command line and ``launch_app`` (``pleura app`` execs the server)

Depends on ``pipeline.serving`` and everything below it; in ``pipeline`` only the CLI's ``pleura app``
imports it (``launch``, which imports nothing from ``pipeline``).
"""
