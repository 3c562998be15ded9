"""Whole-slide images and plain images behind one small API, read as RGB numpy arrays.

OpenSlide reads the slide formats and tiled 8-bit RGB TIFFs; plain images (png, jpg, other tif) are
``plain_image.PlainImageSlide``, decoded once with any bit depth mapped to 8 bits by one documented rule.
Both have the same API. OpenSlide returns RGBA in which alpha 0 marks pixels outside the scanned area;
they are composited on white, the colour of an empty glass slide. This module imports no torch, Qt or
napari.
"""

from __future__ import annotations

import functools
import logging
import math
import os
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from os import PathLike
from pathlib import Path

import numpy as np
import openslide

from .errors import ScoreNetInputError

# formats OpenSlide opens (DICOM: a folder's .dcm files, as OpenSlide supports them)
SLIDE_SUFFIXES = (
    ".svs",
    ".tif",
    ".tiff",
    ".ndpi",
    ".mrxs",
    ".scn",
    ".vms",
    ".vmu",
    ".bif",
    ".svslide",
    ".dcm",
)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff")
SUPPORTED_SUFFIXES = tuple(sorted(set(SLIDE_SUFFIXES + IMAGE_SUFFIXES)))
_TIFF_BASED = (".svs", ".tif", ".tiff", ".ndpi", ".scn", ".bif", ".svslide")
DEFAULT_CHUNK = 1024


def rgba_to_rgb(rgba: np.ndarray) -> np.ndarray:
    """(H, W, 4) uint8 RGBA (not premultiplied) to RGB, transparent pixels composited on white.

    Opaque input (the usual case inside the scanned area) gives a view, not a copy.
    """
    alpha = rgba[..., 3]
    if alpha.min(initial=255) == 255:
        return rgba[..., :3]
    a = alpha[..., None].astype(np.uint16)
    rgb = (rgba[..., :3].astype(np.uint16) * a + 255 * (255 - a) + 127) // 255
    return rgb.astype(np.uint8)


class _AssociatedImages(Mapping):
    """Label, macro and thumbnail images, decoded only when asked for."""

    def __init__(self, handle: openslide.AbstractSlide) -> None:
        self._handle = handle

    def __getitem__(self, name: str) -> np.ndarray:
        return rgba_to_rgb(np.asarray(self._handle.associated_images[name].convert("RGBA")))

    def __iter__(self) -> Iterator[str]:
        return iter(self._handle.associated_images)

    def __len__(self) -> int:
        return len(self._handle.associated_images)


class Slide:
    """An open slide: level geometry, physical metadata and RGB region reads.

    Coordinates are level-0 pixels ``(x, y)``; sizes are ``(width, height)`` as in OpenSlide.
    Reads are thread-safe (OpenSlide handles are), so dask and napari may read chunks in parallel.
    ``notes`` holds one-line warnings about how the pixels were converted (greyscale shown as RGB).
    """

    notes: tuple[str, ...] = ()

    def __init__(self, path: Path, handle: openslide.AbstractSlide) -> None:
        self.path = path
        self._handle = handle
        self._banded_reads = isinstance(handle, openslide.OpenSlide)  # see read_region_parallel
        props = handle.properties
        self.level_count: int = handle.level_count
        self.level_dimensions: tuple[tuple[int, int], ...] = tuple(handle.level_dimensions)
        self.level_downsamples: tuple[float, ...] = tuple(float(d) for d in handle.level_downsamples)
        self.vendor: str = props.get(openslide.PROPERTY_NAME_VENDOR) or (
            "image" if isinstance(handle, openslide.ImageSlide) else "unknown"
        )
        self.mpp: float | None = _positive_float(props.get(openslide.PROPERTY_NAME_MPP_X))
        self.objective_power: float | None = _positive_float(
            props.get(openslide.PROPERTY_NAME_OBJECTIVE_POWER)
        )
        self.associated_images: Mapping[str, np.ndarray] = _AssociatedImages(handle)
        self._tile_sizes = tuple(
            (
                int(props.get(f"openslide.level[{i}].tile-width", 0)),
                int(props.get(f"openslide.level[{i}].tile-height", 0)),
            )
            for i in range(self.level_count)
        )

    @property
    def dimensions(self) -> tuple[int, int]:
        """Level-0 ``(width, height)``."""
        return self.level_dimensions[0]

    @property
    def properties(self) -> Mapping[str, str]:
        """All vendor and OpenSlide properties."""
        return self._handle.properties

    def tile_size(self, level: int) -> tuple[int, int]:
        """Native ``(width, height)`` of the stored tiles of a level, ``(0, 0)`` when untiled."""
        return self._tile_sizes[level]

    def best_level_for_downsample(self, downsample: float) -> int:
        """The coarsest level that is still at least as fine as ``downsample``."""
        candidates = [i for i, d in enumerate(self.level_downsamples) if d <= downsample * (1 + 1e-6)]
        return max(candidates) if candidates else 0

    def read_region(self, location: tuple[int, int], level: int, size: tuple[int, int]) -> np.ndarray:
        """Pixels of ``size`` (w, h) at ``level`` whose top-left is ``location`` in level 0, as RGB."""
        try:
            rgba = self._handle.read_region(location, level, size)
        except openslide.OpenSlideError as err:
            raise ScoreNetInputError(
                f"cannot read pixels, the file may be truncated or corrupt ({err})", self.path
            ) from None
        return rgba_to_rgb(np.asarray(rgba))

    def metadata(self) -> dict:
        """What the viewer keeps with the layer: physical size, levels, vendor, path."""
        return {
            "path": str(self.path),
            "mpp": self.mpp,
            "objective_power": self.objective_power,
            "level_downsamples": list(self.level_downsamples),
            "level_dimensions": [list(d) for d in self.level_dimensions],
            "vendor": self.vendor,
            "associated_images": list(self.associated_images),
            "notes": list(self.notes),
        }

    def close(self) -> None:
        self._handle.close()

    def __enter__(self) -> Slide:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Slide({str(self.path)!r}, levels={self.level_dimensions}, mpp={self.mpp})"


def _positive_float(value: str | None) -> float | None:
    try:
        number = float(value) if value is not None else None
    except ValueError:
        return None
    return number if number and number > 0 else None


def _check_tiff_complete(path: Path) -> None:
    """Refuse a TIFF whose tiles point past the end of the file (an interrupted copy or download).

    OpenSlide opens such files and fails only when the missing tiles are read; checking the offsets
    in the TIFF directories costs a few milliseconds and no pixel reads.
    """
    import tifffile

    size = path.stat().st_size
    quiet = logging.getLogger("tifffile")
    level, quiet.level = quiet.level, logging.CRITICAL  # its warnings would repeat what we raise
    try:
        with tifffile.TiffFile(path) as tif:
            if len(tif.pages) == 0:
                raise ScoreNetInputError("the file is truncated or corrupt: no readable image in it", path)
            for page in tif.pages:
                ends = [o + n for o, n in zip(page.dataoffsets, page.databytecounts, strict=False) if n]
                if ends and max(ends) > size:
                    raise ScoreNetInputError(
                        f"the file is truncated: image data runs to byte {max(ends)} but the file has "
                        f"{size} bytes",
                        path,
                    )
    except tifffile.TiffFileError as err:
        raise ScoreNetInputError(f"not a readable TIFF-based slide ({err})", path) from None
    finally:
        quiet.level = level


def open_slide(path: str | PathLike[str], *, percentiles: tuple[float, float] | None = None) -> Slide:
    """Open a whole-slide image (any OpenSlide format) or a plain image; errors name the file.

    Plain images with more than 8 bits per sample map to 8 bits over the full range of their sample
    type, or with ``percentiles=(low, high)`` over those percentiles of their values (see
    ``plain_image.to_uint8``); slides read by OpenSlide are 8-bit and ignore it.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise ScoreNetInputError("no such file", path)
    if path.is_dir():
        raise ScoreNetInputError("is a folder, not a slide or image file", path)
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise ScoreNetInputError(
            f"unsupported file type {suffix or '(no extension)'!r}; "
            f"supported: {', '.join(SUPPORTED_SUFFIXES)}",
            path,
        )
    if suffix in _TIFF_BASED:
        _check_tiff_complete(path)
    if suffix in IMAGE_SUFFIXES and not _is_openslide_tiff(path):
        from .plain_image import open_plain_image

        return open_plain_image(path, percentiles)
    try:
        handle: openslide.AbstractSlide = openslide.OpenSlide(path)
    except openslide.OpenSlideUnsupportedFormatError:
        raise ScoreNetInputError(
            "OpenSlide cannot read this file: it is truncated, corrupt or not a supported slide format",
            path,
        ) from None
    except openslide.OpenSlideError as err:
        raise ScoreNetInputError(f"the slide is corrupt or truncated ({err})", path) from None
    return Slide(path, handle)


def _is_openslide_tiff(path: Path) -> bool:
    """Whether OpenSlide reads this .tif/.tiff: a vendor format, or a tiled TIFF of 8-bit RGB(A).

    OpenSlide also opens tiled TIFFs of grey, 16-bit or 1-bit samples as generic TIFF, but keeps only
    the high byte of 16-bit samples and fails on float and 1-bit ones: those are plain images.
    """
    import tifffile

    if path.suffix.lower() not in (".tif", ".tiff"):
        return False
    try:
        vendor = openslide.OpenSlide.detect_format(path)
    except openslide.OpenSlideError:
        return False
    if vendor != "generic-tiff":
        return vendor is not None
    with tifffile.TiffFile(path) as tif:
        page = tif.pages.first
        rgb = (tifffile.PHOTOMETRIC.RGB, tifffile.PHOTOMETRIC.YCBCR)
        return page.dtype == np.uint8 and page.photometric in rgb and page.samplesperpixel in (3, 4)


@dataclass(frozen=True)
class RoiRead:
    """A region of interest read at some resolution.

    ``scale`` is output pixels per level-0 pixel; ``valid`` is the part of the requested region that
    lies inside the slide, as ``(x0, y0, x1, y1)`` in level 0; the rest is white padding.
    """

    image: np.ndarray
    x: int
    y: int
    w: int
    h: int
    scale: float
    mpp: float | None
    padded: bool
    valid: tuple[int, int, int, int]


def roi_scale(slide: Slide, *, mpp: float | None = None, magnification: float | None = None) -> float:
    """Output pixels per level-0 pixel for a target resolution (1.0 when none is given)."""
    if mpp is not None and magnification is not None:
        raise ScoreNetInputError("give a target resolution in microns per pixel or a magnification, not both")
    if mpp is not None:
        if mpp <= 0:
            raise ScoreNetInputError(f"microns per pixel must be positive, got {mpp}")
        if slide.mpp is None:
            raise ScoreNetInputError("the slide records no microns per pixel; read it at level 0", slide.path)
        return slide.mpp / mpp
    if magnification is not None:
        if magnification <= 0:
            raise ScoreNetInputError(f"magnification must be positive, got {magnification}")
        if slide.objective_power is None:
            raise ScoreNetInputError("the slide records no objective power; read it at level 0", slide.path)
        return magnification / slide.objective_power
    return 1.0


def read_roi(
    slide: Slide | str | PathLike[str],
    x: int,
    y: int,
    w: int,
    h: int,
    *,
    mpp: float | None = None,
    magnification: float | None = None,
) -> RoiRead:
    """Read the level-0 rectangle ``(x, y, w, h)`` at a target resolution as (H, W, 3) uint8 RGB.

    Pixels come from the coarsest level at least as fine as the target and are resampled (area
    averaging when shrinking) when no level matches; parts outside the slide are white and reported.
    """
    if not isinstance(slide, Slide):
        with open_slide(slide) as opened:
            return read_roi(opened, x, y, w, h, mpp=mpp, magnification=magnification)
    x, y, w, h = int(x), int(y), int(w), int(h)
    if w <= 0 or h <= 0:
        raise ScoreNetInputError(f"region size must be positive, got {w} x {h}", slide.path)
    width, height = slide.dimensions
    valid = (max(x, 0), max(y, 0), min(x + w, width), min(y + h, height))
    if valid[0] >= valid[2] or valid[1] >= valid[3]:
        raise ScoreNetInputError(
            f"region x={x} y={y} w={w} h={h} lies outside the slide ({width} x {height} pixels)", slide.path
        )
    scale = roi_scale(slide, mpp=mpp, magnification=magnification)
    out_w, out_h = max(1, round(w * scale)), max(1, round(h * scale))
    level = slide.best_level_for_downsample(1.0 / scale)
    downsample = slide.level_downsamples[level]
    # OpenSlide fills the part outside the slide with transparent pixels, which become white
    image = read_region_parallel(slide, (x, y), level, (math.ceil(w / downsample), math.ceil(h / downsample)))
    if image.shape[:2] != (out_h, out_w):
        image = _resize(image, out_w, out_h)
    padded = valid != (x, y, x + w, y + h)
    out_mpp = slide.mpp / scale if slide.mpp is not None else None
    return RoiRead(image, x, y, w, h, scale, out_mpp, padded, valid)


def read_region_parallel(
    slide: Slide, location: tuple[int, int], level: int, size: tuple[int, int], *, min_pixels: int = 1 << 20
) -> np.ndarray:
    """``slide.read_region`` split into bands of whole tile rows, decoded on several threads.

    OpenSlide releases the GIL while decoding, so a large region reads about twice as fast on two
    cores. Only levels with an integer downsample are split: there every band starts on a pixel of
    the level and the result equals a single read exactly.
    """
    width, height = size
    downsample = slide.level_downsamples[level]
    tile_h = slide.tile_size(level)[1] or 256
    workers = min(4, os.cpu_count() or 1)
    # in-memory plain images gain nothing from bands (a read is a copy)
    small = width * height < min_pixels or height <= 2 * tile_h
    if not slide._banded_reads or small or workers < 2 or downsample != round(downsample):
        return slide.read_region(location, level, size)
    x, y = location
    top = y / downsample  # the region's first row, in pixels of the level
    first = math.ceil(top / tile_h) * tile_h - top  # rows up to the next tile boundary
    rows_per_band = tile_h * max(1, math.ceil((height - first) / tile_h / workers))
    starts = (
        [0, *range(int(first), height, rows_per_band)] if first else list(range(0, height, rows_per_band))
    )
    starts = sorted(set(starts))
    bounds = list(zip(starts, [*starts[1:], height], strict=True))
    out = np.empty((height, width, 3), dtype=np.uint8)

    def read_band(band: tuple[int, int]) -> None:
        r0, r1 = band
        out[r0:r1] = slide.read_region((x, y + round(r0 * downsample)), level, (width, r1 - r0))

    list(_reader_pool(workers).map(read_band, bounds))
    return out


@functools.cache
def _reader_pool(workers: int) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=workers, thread_name_prefix="scorenet-read")


def _resize(image: np.ndarray, width: int, height: int) -> np.ndarray:
    import cv2

    shrinking = width < image.shape[1] or height < image.shape[0]
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)
