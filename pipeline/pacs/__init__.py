"""The PACS over DICOMweb: find a study (QIDO-RS), retrieve its CT and RTSTRUCT/SEG (WADO-RS),
score it with the file pipeline, and store the SEG, SR and PDF report back (STOW-RS).

Modules: :mod:`~pipeline.pacs.config` (the administrator's connection settings),
:mod:`~pipeline.pacs.client` (the ``dicomweb-client`` connection with credentials, TLS, timeouts,
retries and clear errors), :mod:`~pipeline.pacs.retrieve` (search and retrieval into a private
temporary folder), :mod:`~pipeline.pacs.store` (idempotent storing),
:mod:`~pipeline.pacs.run` (one study's round trip) and :mod:`~pipeline.pacs.batch` (a resumable
CSV of studies).
"""
