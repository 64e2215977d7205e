"""Synthetic chest-CT phantoms: a CT in HU, a tumour ROI, clinical values and a VPI label.

Every test, benchmark and the demo model use these phantoms; nothing here touches patient data.

Image model
-----------
Anatomy is drawn from ``PhantomSpec.seed`` in physical millimetres and evaluated analytically at
the voxel centres of the requested grid, so the same seed gives the same patient at any spacing.
Coordinates are LPS (x → patient left, y → posterior, z → superior); arrays are (z, y, x).

* air outside the body (−1000 HU); body ellipse with skin/muscle (40–55 HU) and a subcutaneous
  fat ring (−115…−85 HU);
* chest wall with ribs (marrow ≈ 400 HU, cortex ≈ 700 HU) sloping down anteriorly, costal
  cartilage, sternum and a spine (vertebral bodies, discs, neural arch, spinous process);
* two lungs (≈ −850 HU, slightly denser posteriorly) bounded by the thoracic cavity, the
  mediastinum (fat with heart, aortas and trachea), the spine and domed hemidiaphragms, with
  branching vessel trees (≈ 40 HU) thinning from the hila towards the periphery;
* a lobulated tumour of chosen volume-equivalent diameter, solid (20–50 HU) or part-solid (a solid
  core inside a ground-glass halo of −600…−300 HU), placed in one lung at a chosen gap from the
  costal pleura (≤ 0: touching, < 0: crossing into the chest wall by that many mm), optionally
  with pleural tags (thin strands tumour → pleura) and pleural indentation (a small cone of chest
  wall pulled towards the tumour, taking at most 40 % of the gap);
* a Gaussian blur per scanner (in-plane PSF plus pixel aperture, slice profile of FWHM = slice
  thickness along z) and white Gaussian noise of ``noise_sd_hu``.

Outputs: the CT (int16 HU), the ROI (uint8 {0, 1}; the whole tumour incl. its ground-glass part,
never bone) and a tissue label map (``TISSUE_LABELS``), all with the same geometry, plus a frozen
:class:`PhantomTruth` of the case's true parameters.

Sizes and scanners
------------------
``SIZE_PRESETS``: "small" (64×128×128, tests), "medium" (100×256×256, demo training),
"clinical" (300×512×512, benchmarks). A :class:`ScannerProfile` draws one quantile ``u`` for the
in-plane spacing: 512-and-larger matrices get ``pixel_spacing_mm`` (0.6–0.9 mm); smaller ones get a
field of view from ``field_of_view_mm`` (320–380 mm) divided by the matrix, so the whole chest
stays in view. The slice thickness ``t`` is drawn from ``slice_thickness_mm`` (0.625–5 mm); the slice
spacing is ``t`` clipped to [150, 400] mm / n_slices so every scan covers 15–40 cm of chest
(overlapping or gapped reconstruction when clipped; the z blur always uses ``t``). Tumour
diameters are drawn from [d_min, 35] mm with d_min = 24 / 12 / 10 mm for small / medium / clinical,
so a tumour is always ≥ 8 voxels across in-plane.

VPI label model
---------------
For each case :func:`sample_case` draws (in this order; patient draws never depend on the scanner,
so two scanner profiles with the same seed give the same patients and labels):

* tumour diameter D ~ U(d_min, 35) mm; pleural contact with probability 0.38, then gap
  d ~ −U(0, 3) mm, else d = min(0.5 + Exp(mean 6), 25) mm;
* consolidation-to-tumour ratio CTR ("solid fraction", core diameter / tumour diameter) = 1 with
  probability 0.6, else U(0.3, 0.9);
* pleural tag with probability 0.45 (0.20 if d > 15 mm) when d > 1 mm; pleural indentation with
  probability 0.5 when there is a tag and d > 2 mm;
* CEA ~ LogNormal(ln 3.8, 0.85) ng/mL, CA125 ~ LogNormal(ln 14, 0.55) U/mL,
  age ~ N(65, 9) years clipped to [30, 90];

then ``p_true = sigmoid(η)`` and ``label ~ Bernoulli(p_true)`` with (:class:`LabelModel`)::

    η = −3.7
        + 5.0 · contact                                   (contact = d ≤ 0)
        + 3.0 · (1 − contact) · exp(−d / 6 mm)            (near but not touching)
        + 3.5 · (CTR − 1)
        + 0.035 · (D − 22 mm)
        + 1.1 · pleural_tag + 0.7 · pleural_indentation
        + 0.8 · (ln CEA − ln 4) + 0.55 · (ln CA125 − ln 15) + 0.025 · (age − 65)

Over 400 000 draws: prevalence ≈ 0.334 (clinical), 0.339 (medium) and 0.367 (small, whose tumours
are larger); oracle AUC of p_true ≈ 0.876 for every size; the imaging part of η alone reaches
AUC ≈ 0.85, the clinical part alone ≈ 0.63 — the image carries most of the signal, the clinical
values some.

Phantom generations
-------------------
``write_cohort(generation=2)`` (the library default) draws exactly what earlier releases drew for
the same seed, bit for bit (the demo model v2 and its tests rely on that). ``generation=3``
(``pleura synth``'s default) draws the cases users bring; everything above holds for it, with
these changes (:mod:`~pipeline.synth.sampling3`, :mod:`~pipeline.synth.generation3`):

* tumour diameter D (volume-equivalent) ~ LogNormal(median 27 mm, σ 0.55) truncated to
  [8, 100] mm ([20, 100] on "small"): over 400 "clinical" draws (seed 1) 2 % T1a (≤ 10 mm),
  31 % T1b, 26 % T1c, 29 % T2 (30–50 mm), 8 % T3 (50–70 mm), 3.5 % T4-sized (> 70 mm), median
  26 mm, as in surgical series. Tumours above about 87 mm exceed the scoring pipeline's ROI
  memory guard (1 GiB per worker; measured on 512² grids: 90 mm needs about 1148 MiB, 100 mm
  about 1238 MiB), so ``pleura features`` / ``evaluate`` report those cases as failed (about
  1.5 % of a cohort);
* shape: the lobulated surface is stretched on an ellipsoid, taller craniocaudally as the tumour
  grows (z semi-axis 1–1.25, + 0.8 · (D − 40) / 60 above 40 mm; the volume stays that of D), so a
  100 mm tumour (about 160 mm long) still fits a lung; it is placed by testing its actual surface
  points against every lung boundary (:mod:`~pipeline.synth.placement3`);
* density: pure ground glass (CTR = 0) with probability 0.15 (0.04 above 30 mm), part-solid
  (CTR ~ U(0.25, 0.9)) 0.30, solid otherwise;
* costal pleura: contact with probability 0.25 + 0.30 · min(D / 80 mm, 1); a contacting tumour
  *invades* the chest wall (gap −U(1, min(10, D/3)) mm, crossing the extrapleural fat line, which
  every generation-3 patient has, 0.8–2 mm thick) with probability 0.35 (×0.3 for ground glass),
  else it *abuts* (gap exactly 0: the fat line stays intact); otherwise gap = min(0.5 + Exp(6), 25);
* an oblique interlobar fissure (35–60° from axial, 1 mm, −250 HU blended by partial volume) runs
  through the tumour's lung: the tumour reaches it (gap −U(0, 3) mm) with probability 0.15, else it
  passes 3–40 mm away; pleural tags and indentation as in generation 2;
* scanners (drawn after the patient; one of ``SCANNER_PROFILES_3`` per case unless one is named):
  ``sharp_thin`` (0.625–1.25 mm, sharp kernel), ``standard_mid`` (1.25–3 mm), ``soft_thick``
  (3–5 mm, soft kernel, coarse noise grain), ``low_dose`` (1–2.5 mm, noise SD 35–60 HU); each adds a
  kernel edge enhancement, a noise grain and an HU calibration (offset ±8–12 HU, slope 0.97–1.03);
* "clinical" grids are 512² with contiguous slices (spacing = thickness) over 260–320 mm of chest,
  at most 320 slices (wider spacing only when the tumour's height needs it).

Generation 3's VPI model (:class:`~pipeline.synth.generation3.LabelModel3`)::

    η = −2.9
        + 4.5 · invading (gap < 0)        + 2.4 · abutting (gap = 0)
        + 2.0 · fissure reached (costal pleura not)
        + 2.6 · [gap > 0] · exp(−gap / 6 mm)
        + 2.8 · (CTR − 1)                 + 1.1 · ln(D / 25 mm)
        + 1.0 · pleural_tag + 0.7 · pleural_indentation
        + the clinical terms of generation 2

Over 400 "clinical" draws (seed 1): prevalence 0.33, oracle AUC of p_true 0.867; the imaging
part alone 0.847, the clinical part 0.614 (the tests check 600 more draws against 0.25–0.42 and
0.82–0.92). A tumour that only abuts the pleura is VPI
positive about half as often as one that invades, so the image has to tell the two apart (fat
line intact or not) rather than only measure contact.

Modules
-------
One import direction, no cycles; from the rest of ``pipeline`` only :mod:`pipeline.core` is used
(plus numpy, scipy and SimpleITK; scikit-learn only inside :func:`oracle_auc`)::

    specs ← geometry, anatomy ← vessels, tumour ← render ← cohort
                                          tumour ← sampling ← cohort
    specs ← generation3;  tumour ← placement3 ← sampling3 ← cohort;  placement3, render3 ← render

* :mod:`~pipeline.synth.specs`: tissue codes, size presets, scanner profiles, the specs, the
  rendered :class:`Phantom` and its :class:`PhantomTruth`, the :class:`LabelModel`;
* :mod:`~pipeline.synth.anatomy`: the thorax of one patient, evaluated at physical points;
* :mod:`~pipeline.synth.geometry`: ellipse distance, sphere directions, the voxel grid;
* :mod:`~pipeline.synth.vessels`: the branching vessel trees;
* :mod:`~pipeline.synth.tumour`: the tumour's shape, extras and placement at the requested gap;
* :mod:`~pipeline.synth.render`: :func:`make_phantom` (painting and the scanner);
* :mod:`~pipeline.synth.sampling`: :func:`sample_case` and :func:`oracle_auc`;
* :mod:`~pipeline.synth.cohort`: :func:`write_cohort` (NIfTI files and ``clinical.csv``);
* generation 3: :mod:`~pipeline.synth.generation3` (label model, scanner profiles),
  :mod:`~pipeline.synth.sampling3` (:func:`sample_case3`), :mod:`~pipeline.synth.placement3`
  (placing any tumour by its surface; the fissure plane), :mod:`~pipeline.synth.render3` (fat
  line, fissure, kernel, HU calibration).

The names in ``__all__`` below are the package's public interface; import them from
``pipeline.synth``.

Example:
    >>> import numpy as np
    >>> spec = PhantomSpec.for_size("small", tumour=TumourSpec(diameter_mm=25.0,
    ...                             distance_to_pleura_mm=0.0), seed=7)
    >>> ph = make_phantom(spec)
    >>> ph.ct.array.dtype.name, ph.ct.shape_zyx, int(ph.roi.array.max()), ph.truth.pleural_contact
    ('int16', (64, 128, 128), 1, True)
    >>> case = sample_case(np.random.default_rng(0), size="small", case_index=3)
    >>> case.spec.case_id, 0.0 < case.p_true < 1.0, case.label in (0, 1)
    ('case_0003', True, True)
"""

from pipeline.synth.cohort import write_cohort
from pipeline.synth.generation3 import GENERATIONS, LABEL_MODEL_3, SCANNER_PROFILES_3, LabelModel3
from pipeline.synth.sampling3 import sample_case3
from pipeline.synth.render import make_phantom
from pipeline.synth.sampling import oracle_auc, sample_case
from pipeline.synth.specs import (
    LABEL_MODEL,
    SCANNER_PROFILES,
    SIZE_PRESETS,
    TISSUE_LABELS,
    ClinicalDraw,
    LabelModel,
    Phantom,
    PhantomSpec,
    PhantomTruth,
    SampledCase,
    ScannerProfile,
    TumourSpec,
)

__all__ = [
    "TISSUE_LABELS",
    "SIZE_PRESETS",
    "SCANNER_PROFILES",
    "ScannerProfile",
    "TumourSpec",
    "PhantomSpec",
    "PhantomTruth",
    "Phantom",
    "ClinicalDraw",
    "LabelModel",
    "LABEL_MODEL",
    "SampledCase",
    "make_phantom",
    "sample_case",
    "write_cohort",
    "oracle_auc",
    "GENERATIONS",
    "LabelModel3",
    "LABEL_MODEL_3",
    "SCANNER_PROFILES_3",
    "sample_case3",
]
