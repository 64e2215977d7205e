"""User-facing error hierarchy.

Every problem a user can fix (a bad file, a mask that does not fit the CT, an implausible lab
value) is raised as a subclass of :class:`InputError` carrying one sentence the user can act on.
Problems with a model bundle (missing file, hash mismatch) are :class:`BundleError`.
The CLI prints ``error: <message>`` and exits non-zero; the app shows the message in ``st.error``;
a batch writes it into the case's row. Nothing here ever carries patient identifiers or file
names beyond what the caller put in the message.

Example:
    >>> try:
    ...     raise MaskError("the ROI mask is empty (0 voxels labelled)")
    ... except InputError as err:
    ...     print(err.code, "-", err)
    mask - the ROI mask is empty (0 voxels labelled)
"""

from __future__ import annotations


class PleuraRiskError(Exception):
    """Base class of every error PleuraRisk reports to a user."""

    code = "error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:  # one line, no traceback noise
        return self.message


class InputError(PleuraRiskError):
    """An input (image, mask, clinical value, archive) a user must fix."""

    code = "input"


class ImageReadError(InputError):
    """File missing, unreadable, truncated, not an image, or of an unsupported format."""

    code = "read"


class ImageTooLargeError(InputError):
    """Header declares more voxels than the configured limit (checked before decompressing)."""

    code = "too_large"


class ImageShapeError(InputError):
    """Not a 3-D image (2-D, 4-D, multi-component) or a zero-size axis."""

    code = "shape"


class IntensityError(InputError):
    """CT values not plausible Hounsfield units (NaN/Inf, raw scanner units, constant image)."""

    code = "intensity"


class GeometryError(InputError):
    """CT and ROI mask do not describe the same physical space (and cannot be aligned)."""

    code = "geometry"


class MaskError(InputError):
    """ROI mask empty, too small, non-integer, or with several labels and none chosen."""

    code = "mask"


class DicomError(InputError):
    """DICOM folder without a usable CT series (no series, missing slices, uneven spacing)."""

    code = "dicom"


class ArchiveError(InputError):
    """Unsafe or unusable archive (path traversal, too large, nothing usable inside)."""

    code = "archive"


class ClinicalValueError(InputError):
    """CEA / CA125 / age missing, non-numeric, negative or implausible."""

    code = "clinical"


class CohortError(InputError):
    """Batch/cohort description problems: CSV columns, duplicate or unknown case ids."""

    code = "cohort"


class SeedError(InputError):
    """A click for semi-automatic segmentation that cannot start a tumour ROI (outside the CT or
    the body, in air or lung, on bone or a vessel, away from any lung)."""

    code = "seed"


class ConfigError(PleuraRiskError, ValueError):
    """A setting that cannot be used (a ``PLEURA_*`` variable, a command-line option, a training
    or extraction setting): the message names the setting and what it accepts."""


class OutputError(InputError):
    """An output the user chose cannot be written safely (an input, a folder, locked, read-only)."""

    code = "output"


class BundleError(PleuraRiskError):
    """A model bundle that is missing files, fails its sha256 check, or is incompatible."""

    code = "bundle"


class RoiPlausibilityError(MaskError):
    """An ROI that cannot be a lung tumour (a whole lung, air, bone, outside the lung) or too large
    to featurise within a worker's memory; the message gives the measured numbers."""

    code = "roi_implausible"


class SwappedInputsError(InputError):
    """The CT looks like a label mask, or the ROI mask looks like a CT: the files were swapped."""

    code = "swapped"


class StepError(RuntimeError):
    """An unexpected failure (a bug or an environment fault, not a user error), re-raised with
    the pipeline step it happened in so a report says where, e.g. ``while computing the
    radiomics features: ValueError: …``. An ``OSError`` keeps only its reason, never the file
    name (which may carry a patient's name). The original exception is the ``__cause__``."""

    def __init__(self, step: str, exc: BaseException) -> None:
        self.step = step
        self.error_type = type(exc).__name__
        detail = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        super().__init__(f"while {step}: {self.error_type}: {detail}" if detail else f"while {step}: {self.error_type}")


def reraise_with_step(step: str, exc: BaseException) -> None:
    """Re-raise ``exc`` unchanged if it is a user-facing :class:`PleuraRiskError` (or already
    carries a step, or is an interrupt / out-of-memory), else as :class:`StepError` naming ``step``."""
    if isinstance(exc, (PleuraRiskError, StepError, MemoryError)) or not isinstance(exc, Exception):
        raise exc
    raise StepError(step, exc) from exc
