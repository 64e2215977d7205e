"""``hu_window``: clip Hounsfield units to a level/width window and scale to [0, 1].

Example:
    >>> import numpy as np
    >>> hu_window(np.array([-1000, -160, 40, 240, 3000]), level=40, width=400).tolist()
    [0.0, 0.0, 0.5, 1.0, 1.0]
"""

from __future__ import annotations

import numpy as np


def hu_window(array: np.ndarray, *, level: float, width: float) -> np.ndarray:
    """Window ``array`` (HU) to [level − width/2, level + width/2] and map it linearly to [0, 1].

    Returns float32 of the same shape. ``width`` must be > 0 HU.
    """
    if width <= 0:
        raise ValueError(f"width must be > 0 HU, got {width}")
    low = level - width / 2.0
    out = (np.asarray(array, dtype=np.float32) - np.float32(low)) / np.float32(width)
    return np.clip(out, 0.0, 1.0, out=out)
