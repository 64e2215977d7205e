"""A prepared case → one ordered, named feature vector.

Contract:
    groups     the :class:`FeatureGroup` protocol and the registry ``GROUPS`` (deep, radiomics,
               pleura, clinical, joined in that order)
    extract    :class:`FeatureExtractors` (built once per process, computes only what a model
               uses) → :class:`FeatureVector` (float64 values with their names)
    radiomics  PyRadiomics (original, LoG σ mm, wavelet) on the cropped case, per image type only
               the classes a model needs
    pleura     tumour–pleura geometry: distances (mm), contact (mm², fraction), crossing, solid
               fraction, peritumoral ring — the features a radiologist reads for VPI

The deep group runs :mod:`models.medicalnet` (MedicalNet ResNet-10, 512-d) on the 64³ cube
from :mod:`pipeline.preprocess`. Depends on core, io, preprocess, inputs and ``models``.
"""
