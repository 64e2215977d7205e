"""What every stage shares; imports nothing else from ``pipeline``.

Contract:
    volume   :class:`~pipeline.core.volume.Volume`: a 3-D array indexed (z, y, x) with spacing,
             origin (mm) and direction in ITK (x, y, z) order, LPS
    errors   the error hierarchy: :class:`PleuraRiskError` → ``InputError`` (one sentence a user
             can act on, naming the input's role, never a file name), ``ConfigError`` (a setting
             that cannot be used), ``BundleError`` (a model bundle that fails its checks)
    config   frozen, typed settings of every stage (``PipelineConfig``), saved in every bundle
    groups   feature names → feature groups (deep ``dl_NNN``, radiomics, pleura ``pleura_*``/
             ``tumour_*``, clinical): the one naming rule
    env      every ``PLEURA_*`` environment setting, read and checked in one place
    hashing  sha256 of bytes, files and folders (resume keys, audit, bundle manifests)
    journal  the crash-safe journal behind every resumable run
    params/  the PyRadiomics parameter file shipped with the package
"""
