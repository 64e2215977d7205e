"""From files and forms to a checked, cropped case ready for feature extraction.

Contract:
    validate  checks on volumes before any heavy work: HU plausibility (streamed summary), mask
              binarisation and label choice, CT/mask geometry agreement (strict unless resampling is
              allowed), swapped CT/mask
    roi_checks is the ROI a plausible lung tumour (volume, memory a worker needs, HU composition,
              in or against the lung, components), before the heavy work
    clinical  CEA (ng/mL), CA125 (U/mL), age (years): parsing, units, accepted ranges →
              :class:`ClinicalValues`
    case      :func:`load_case`: read (streaming NIfTI where it can) → validate → crop the CT and
              mask to the tumour box plus a margin in mm → :class:`PreparedCase` (arrays (z, y, x))
    cohort    a batch folder or manifest + clinical CSV → :class:`CaseInput` list, every problem
              reported per case

Depends on ``pipeline.core``, ``pipeline.io`` and ``pipeline.preprocess``.
"""
