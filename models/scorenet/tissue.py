"""Tissue detection on a slide thumbnail (scikit-image), and tissue fractions of level-0 rectangles.

The rule, in order, on an RGB thumbnail:

1. near-white pixels (every channel >= ``white_level``: glass, empty scan area) and near-black pixels
   (every channel <= ``black_level``: padding outside the scan, black ink) are background;
2. a stain feature per pixel: HSV saturation (``"saturation"``), or optical density
   ``max_c -log10((I_c + 1) / 256)`` (``"od"``; the maximum over channels keeps pale tissue that
   absorbs in one channel only, such as eosin-only stroma in the green channel);
3. tissue = feature > threshold and not background; the threshold is ``threshold``, or Otsu's on the
   thumbnail's non-black pixels clipped to [0.05, 0.15] (saturation) or [0.06, 0.15] (OD): Otsu alone
   would split the tissue in two on an image that is all tissue;
4. morphological closing with a disk of ``closing_radius``, then holes up to ``max_hole_px`` filled
   and objects up to ``min_object_px`` removed (all sizes in thumbnail pixels).

This module imports no torch, Qt or napari.
"""

from __future__ import annotations

import inspect
import math
import numbers
from collections.abc import Callable
from dataclasses import dataclass
from os import PathLike

import numpy as np
from scipy import ndimage
from skimage import filters, morphology

from .slide import Slide, _resize, open_slide, read_region_parallel

TISSUE_METHODS = ("saturation", "od")

# Otsu's threshold is clipped to these bounds per feature: glass stays below the lower one (at most
# 0.04 saturation and 0.05 OD on the real test slides) and pale stroma lies above the upper one.
_AUTO_THRESHOLD_RANGE = {"saturation": (0.05, 0.15), "od": (0.06, 0.15)}

# pixels of a level read at once when a thumbnail is made from a large level (memory stays bounded)
_BAND_PIXELS = 1 << 24


@dataclass(frozen=True)
class TissueParams:
    """How tissue is told from background on a thumbnail.

    Pixel sizes (``closing_radius``, ``max_hole_px``, ``min_object_px``) are in thumbnail pixels: the
    thumbnail's longest side is ``thumbnail_max_side`` (smaller images are used as they are), so on a
    20 mm wide slide at the default 2048 one thumbnail pixel is about 10 um.
    """

    method: str = "saturation"
    threshold: float | None = None  # None: Otsu on the thumbnail, clipped (see module doc)
    white_level: int = 220
    black_level: int = 35
    closing_radius: int = 2
    max_hole_px: int = 256
    min_object_px: int = 64
    thumbnail_max_side: int = 2048

    def __post_init__(self) -> None:
        if self.method not in TISSUE_METHODS:
            raise ValueError(f"tissue method must be one of {', '.join(TISSUE_METHODS)}, got {self.method!r}")
        if self.threshold is not None:
            if not (_is_real(self.threshold) and math.isfinite(self.threshold)):
                raise ValueError(f"tissue threshold must be a finite number or None, got {self.threshold!r}")
            if self.threshold < 0 or (self.method == "saturation" and self.threshold >= 1):
                limits = "in [0, 1)" if self.method == "saturation" else ">= 0"
                raise ValueError(f"{self.method} threshold must be {limits}, got {self.threshold}")
        for name in ("white_level", "black_level"):
            value = getattr(self, name)
            if not (_is_int(value) and 0 <= value <= 255):
                raise ValueError(f"{name} must be an integer in [0, 255], got {value!r}")
        if self.black_level >= self.white_level:
            raise ValueError(
                f"black_level ({self.black_level}) must be below white_level ({self.white_level})"
            )
        for name in ("closing_radius", "max_hole_px", "min_object_px"):
            value = getattr(self, name)
            if not (_is_int(value) and value >= 0):
                raise ValueError(f"{name} must be an integer >= 0 (thumbnail pixels), got {value!r}")
        if not (_is_int(self.thumbnail_max_side) and self.thumbnail_max_side >= 16):
            raise ValueError(f"thumbnail_max_side must be an integer >= 16, got {self.thumbnail_max_side!r}")


def _is_int(value: object) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_real(value: object) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def tissue_mask(rgb: np.ndarray, params: TissueParams = TissueParams()) -> np.ndarray:
    """Boolean (H, W) tissue mask of an (H, W, 3) uint8 RGB thumbnail; background is False."""
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"expected an (H, W, 3) uint8 RGB image, got shape {rgb.shape} dtype {rgb.dtype}")
    black = rgb.max(axis=2) <= params.black_level
    background = black | (rgb.min(axis=2) >= params.white_level)
    if background.all():
        return np.zeros(rgb.shape[:2], dtype=bool)
    feature = _stain_feature(rgb, params.method)
    threshold = params.threshold
    if threshold is None:
        # padding can cover much of a thumbnail and would pull Otsu's threshold towards it
        lo, hi = _AUTO_THRESHOLD_RANGE[params.method]
        threshold = float(np.clip(filters.threshold_otsu(feature[~black]), lo, hi))
    mask = (feature > threshold) & ~background
    if params.closing_radius:
        # padded so that tissue touching the image border is not eroded away by the closing
        r = params.closing_radius
        padded = np.pad(mask, r, mode="edge")
        mask = ndimage.binary_closing(padded, structure=morphology.disk(r))[r:-r, r:-r]
    if params.max_hole_px:
        mask = _up_to(morphology.remove_small_holes, mask, params.max_hole_px)
    if params.min_object_px:
        mask = _up_to(morphology.remove_small_objects, mask, params.min_object_px)
    return mask


def _up_to(remove: Callable[..., np.ndarray], mask: np.ndarray, max_px: int) -> np.ndarray:
    """``remove_small_holes`` / ``remove_small_objects`` of components of at most ``max_px`` pixels."""
    # scikit-image 0.26 replaced min_size / area_threshold ("smaller than") by max_size ("at most")
    # and deprecated the old names; older releases only know the old ones
    if "max_size" in inspect.signature(remove).parameters:
        return remove(mask, max_size=max_px)
    return remove(mask, max_px + 1)


def _stain_feature(rgb: np.ndarray, method: str) -> np.ndarray:
    if method == "saturation":
        # HSV saturation (max - min) / max, as skimage.color.rgb2hsv gives it, without the hue and
        # value that rgb2hsv also computes (four times slower on a 2048-pixel thumbnail)
        high = rgb.max(axis=2).astype(np.float32)
        low = rgb.min(axis=2).astype(np.float32)
        return np.divide(high - low, high, out=np.zeros_like(high), where=high > 0)
    # optical density per channel from a lookup table: 256 logarithms instead of one per pixel
    od_table = -np.log10((np.arange(256) + 1) / 256.0)
    return od_table[rgb.min(axis=2)]  # the darkest channel has the largest density


@dataclass(frozen=True, eq=False)
class TissueMask:
    """A tissue mask over a whole slide and its mapping to level 0.

    Mask pixel ``(row, col)`` covers the level-0 rectangle ``x in [col * dx, (col + 1) * dx)``,
    ``y in [row * dy, (row + 1) * dy)`` with ``(dx, dy) = downsample``, which is exactly
    ``(level-0 width / mask width, level-0 height / mask height)``; dx and dy differ slightly
    because the mask's sides are whole pixels.
    """

    mask: np.ndarray
    downsample: tuple[float, float]
    level0_size: tuple[int, int]  # (width, height)

    @property
    def tissue_area(self) -> float:
        """Tissue area in level-0 pixels."""
        return float(np.count_nonzero(self.mask)) * self.downsample[0] * self.downsample[1]

    def to_level0(self, col: float, row: float, width: float, height: float) -> tuple[int, int, int, int]:
        """Level-0 ``(x, y, w, h)`` covered by the mask box ``(col, row, width, height)``, rounded out."""
        dx, dy = self.downsample
        x0, y0 = math.floor(col * dx), math.floor(row * dy)
        x1, y1 = math.ceil((col + width) * dx), math.ceil((row + height) * dy)
        return x0, y0, x1 - x0, y1 - y0

    def fraction(self, x: float, y: float, w: float, h: float) -> float:
        """Share of tissue in the level-0 rectangle ``(x, y, w, h)``.

        Partly covered mask pixels count in proportion to the area covered; area outside the slide
        counts as background.
        """
        if not (w > 0 and h > 0):
            raise ValueError(f"rectangle size must be positive, got {w} x {h}")
        dx, dy = self.downsample
        row_weights, r0 = _overlaps(y / dy, (y + h) / dy, self.mask.shape[0])
        col_weights, c0 = _overlaps(x / dx, (x + w) / dx, self.mask.shape[1])
        if row_weights.size == 0 or col_weights.size == 0:
            return 0.0
        window = self.mask[r0 : r0 + row_weights.size, c0 : c0 + col_weights.size]
        covered = row_weights @ window.astype(np.float32) @ col_weights
        return float(min(1.0, covered / ((w / dx) * (h / dy))))


def _overlaps(start: float, stop: float, n: int) -> tuple[np.ndarray, int]:
    """Length of ``[start, stop)`` inside each unit cell ``[i, i + 1)`` of ``0..n``, and the first i."""
    first, last = max(0, math.floor(start)), min(n, math.ceil(stop))
    if last <= first:
        return np.zeros(0, dtype=np.float32), first
    cells = np.arange(first, last)
    lengths = np.minimum(cells + 1, stop) - np.maximum(cells, start)
    return lengths.astype(np.float32), first


def thumbnail_size(slide: Slide, max_side: int) -> tuple[int, int]:
    """``(width, height)`` of the slide's thumbnail: level 0 scaled so its longest side is at most
    ``max_side`` (never enlarged)."""
    width, height = slide.dimensions
    scale = min(1.0, max_side / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


def read_thumbnail(slide: Slide, max_side: int) -> np.ndarray:
    """The whole slide as an (h, w, 3) RGB thumbnail of :func:`thumbnail_size`.

    Pixels come from the coarsest level at least as fine as the thumbnail, area-averaged; a large
    level (a single-level slide) is read in bands so that memory stays bounded.
    """
    out_w, out_h = thumbnail_size(slide, max_side)
    width, height = slide.dimensions
    level = slide.best_level_for_downsample(min(width / out_w, height / out_h))
    level_w, level_h = slide.level_dimensions[level]
    downsample = slide.level_downsamples[level]
    rows_per_out = level_h / out_h
    out_rows_per_band = max(1, int(_BAND_PIXELS / (level_w * rows_per_out)))
    bands = []
    for r0 in range(0, out_h, out_rows_per_band):
        r1 = min(out_h, r0 + out_rows_per_band)
        y0, y1 = round(r0 * rows_per_out), round(r1 * rows_per_out)
        band = read_region_parallel(slide, (0, round(y0 * downsample)), level, (level_w, max(1, y1 - y0)))
        if band.shape[:2] != (r1 - r0, out_w):
            band = _resize(band, out_w, r1 - r0)
        bands.append(band)
    return np.concatenate(bands, axis=0)


def slide_tissue_mask(
    slide: Slide | str | PathLike[str],
    params: TissueParams = TissueParams(),
) -> TissueMask:
    """Tissue mask of a whole slide or image, computed on its thumbnail (level 0 is never read whole
    unless the slide has no coarser level, and then in bands)."""
    if not isinstance(slide, Slide):
        with open_slide(slide) as opened:
            return slide_tissue_mask(opened, params)
    thumb = read_thumbnail(slide, params.thumbnail_max_side)
    width, height = slide.dimensions
    mask = tissue_mask(thumb, params)
    return TissueMask(mask, (width / mask.shape[1], height / mask.shape[0]), (width, height))
