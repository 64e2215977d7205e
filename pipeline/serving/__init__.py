"""Scoring with a verified model bundle, and everything shown or written about a result.

Contract:
    bundle   a model bundle folder → :class:`ModelBundle`: every file's sha256 checked against the
             manifest before anything is deserialised; classifier via skops with explicit trusted
             types (no pickle), backbone as safetensors, the exact extraction settings
    score    :class:`Scorer`: (CT, ROI, clinical values) → :class:`CaseResult` (probability, band,
             threshold, tree spread, SHAP explanation, warnings); the only place a probability is
             computed
    explain  SHAP values per feature and per group, readable names
    batch    resumable batch scoring (journal + atomic CSV; local process pool or Dask)
    audit    one JSON line per prediction, inputs identified by content hashes only
    report   PDF/JSON report of one result
    figures  the plots and slice views the app and the report draw

Depends on features and everything below; ``pipeline.training`` may use it, never the reverse.
"""
