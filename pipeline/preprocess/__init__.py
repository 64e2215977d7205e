"""Preprocessing, one transform per module, in pipeline order:

``roi_crop`` (bounding box + margin in mm, before anything expensive) → ``hu_window`` →
``cnn_cube`` (fixed-size isotropic cube for the CNN, resampled straight from the crop) and
``resample_isotropic`` (general isotropic resampling, used for viewers/tests).

Each transform returns its output and a frozen record of the parameters it applied, so a run
can be reproduced and audited.
"""

from pipeline.preprocess.crop import CropRecord, roi_bbox, roi_crop
from pipeline.preprocess.cube import CubeRecord, cnn_cube
from pipeline.preprocess.resample import resample_isotropic
from pipeline.preprocess.window import hu_window

__all__ = ["CropRecord", "CubeRecord", "cnn_cube", "hu_window", "resample_isotropic", "roi_bbox", "roi_crop"]
