"""Cut-and-paste mixing augmentations for images of any size: ScoreMix, CutMix and SaliencyMix.

All three share the box-size distribution (``1 - lambda ~ U(0, 1)`` of the target's area, in whole
patches of the target's grid) and the label rule (``lam * y_t + (1 - lam) * y_s``, ``lam`` the kept
fraction of the target's pixels); they differ only in where the box is cut and pasted.
"""

from __future__ import annotations

from .boxes import box_mass, box_pixel_size, sample_area_ratio
from .cutmix import cutmix
from .paste import MixResult
from .saliency import saliency_map, saliency_peak, saliencymix
from .scoremix import scoremix
from .transform import MIX_METHODS, MixBatchTransform

__all__ = [
    "MIX_METHODS",
    "MixBatchTransform",
    "MixResult",
    "box_mass",
    "box_pixel_size",
    "cutmix",
    "sample_area_ratio",
    "saliency_map",
    "saliency_peak",
    "saliencymix",
    "scoremix",
]
