"""Whole-slide images and plain images behind one small API, read as RGB numpy arrays.

OpenSlide opens the slide formats and tiled 8-bit RGB TIFFs and gives their metadata; the pixels of the
TIFF-based ones are read by tifffile, every level exactly as stored (``tiff_backend``), the rest by
OpenSlide. Plain images (png, jpg, other tif) are ``plain_image.PlainImageSlide``, decoded once with any
bit depth mapped to 8 bits by one documented rule. All have the same API. OpenSlide returns RGBA in
which alpha 0 marks pixels outside the scanned area; they are composited on white, the colour of an
empty glass slide. This module imports no torch, Qt or napari.
"""

from __future__ import annotations

import functools
import logging
import math
import os
import threading
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from os import PathLike
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import openslide

from .errors import ScoreNetInputError
from .resolution import Resolution, resolve_resolution

if TYPE_CHECKING:
    from .tiff_backend import TiffPixels

log = logging.getLogger(__name__)

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
    _pixels: TiffPixels | None = None

    def __init__(self, path: Path, handle: openslide.AbstractSlide, pixels: TiffPixels | None = None) -> None:
        self.path = path
        self._handle = handle
        self._pixels = pixels  # the stored pixels of every level (tiff_backend), else OpenSlide reads
        # see read_region_parallel: OpenSlide and the tifffile backend decode tiles outside the GIL
        self._banded_reads = isinstance(handle, openslide.OpenSlide) or pixels is not None
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
        if pixels is not None:
            self._tile_sizes = pixels.tile_sizes

    @property
    def dimensions(self) -> tuple[int, int]:
        """Level-0 ``(width, height)``."""
        return self.level_dimensions[0]

    @property
    def backend(self) -> str:
        """Who decodes the pixels: ``"tifffile"``, ``"openslide"`` or ``"image"`` (a plain image)."""
        if self._pixels is not None:
            return self._pixels.name
        return "openslide" if isinstance(self._handle, openslide.OpenSlide) else "image"

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
        """Pixels of ``size`` (w, h) at ``level`` whose top-left is ``location`` in level 0, as RGB.

        With the tifffile backend, the stored pixels of the level from ``round(location / downsample)``.
        """
        if self._pixels is not None:
            return self._pixels.read_region(location, level, size)
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
        if self._pixels is not None:
            self._pixels.close()
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
            pages = list(tif.pages)
            if tif.is_ome:  # the levels of an OME pyramid are SubIFDs, not top-level pages
                levels = tif.series[0].levels[1:]
                pages += [p for level in levels for p in level.pages if p is not None and p.parent is tif]
            for page in pages:
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


BACKENDS = ("auto", "tifffile", "openslide")


def open_slide(
    path: str | PathLike[str],
    *,
    percentiles: tuple[float, float] | None = None,
    backend: str = "auto",
) -> Slide:
    """Open a whole-slide image (any OpenSlide format) or a plain image; errors name the file.

    Plain images with more than 8 bits per sample map to 8 bits over the full range of their sample
    type, or with ``percentiles=(low, high)`` over those percentiles of their values (see
    ``plain_image.to_uint8``); slides are 8-bit and ignore it.

    ``backend`` chooses who decodes a slide's pixels: ``"auto"`` reads TIFF-family slides (svs, tif,
    ndpi, ...) with tifffile, every level exactly as stored (``tiff_backend``), and the rest with
    OpenSlide, which also takes over, with one warning, when tifffile lacks a codec; ``"tifffile"``
    insists on tifffile; ``"openslide"`` reads everything with OpenSlide (coarse levels resampled).
    The metadata is OpenSlide's in every case. Plain images ignore it.

    OME-TIFF (``.tif``/``.tiff`` with OME-XML) is read by ``ome_tiff``: levels from its SubIFDs (or reduced
    pages) and metadata from the OME-XML, all with tifffile; ``"openslide"`` sees its first page only. An
    OME image of several planes (channels, z, time) is refused; one plane that is not 8-bit RGB is a
    plain image.
    """
    if backend not in BACKENDS:
        raise ScoreNetInputError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
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
    if suffix in (".tif", ".tiff"):
        from .ome_tiff import open_ome_tiff

        # OpenSlide sees an OME-TIFF's first page only: its SubIFD pyramid and OME pixel size are read here
        ome = open_ome_tiff(path, backend=backend)
        if ome is not None:
            return ome
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
        if "compression" in str(err).lower():
            raise ScoreNetInputError(
                f"unsupported compression: {_compression_of(path)} ({err})", path
            ) from None
        raise ScoreNetInputError(f"the slide is corrupt or truncated ({err})", path) from None
    if backend == "openslide" or suffix not in _TIFF_BASED:
        if backend == "tifffile":
            handle.close()
            raise ScoreNetInputError("tifffile reads TIFF-based slides only, not this format", path)
        return Slide(path, handle)
    return _open_tiff_or_fallback(path, handle, strict=backend == "tifffile")


_codec_warned: set[str] = set()
_codec_warned_lock = threading.Lock()


def _open_tiff_or_fallback(path: Path, handle: openslide.OpenSlide, *, strict: bool) -> Slide:
    """The tifffile backend, else OpenSlide: warned once per missing codec, an error when neither decodes."""
    from .tiff_backend import TiffBackendUnavailable, open_tiff_pixels

    try:
        return Slide(path, handle, open_tiff_pixels(path, handle))
    except TiffBackendUnavailable as why:
        if strict:
            handle.close()
            raise ScoreNetInputError(f"tifffile cannot read this slide exactly: {why}", path) from None
        slide = Slide(path, handle)
        if why.codec is None:
            log.debug("%s: read with OpenSlide: %s", path, why)
            return slide
        _check_openslide_decodes(slide, why)
        with _codec_warned_lock:
            first = why.codec not in _codec_warned
            _codec_warned.add(why.codec)
        if first:
            log.warning(
                "tifffile cannot decode %s (%s); slides using it are read with OpenSlide, whose levels "
                "with a non-integer downsample are resampled (first such file: %s)",
                why.codec,
                why,
                path,
            )
        return slide
    except BaseException:
        handle.close()
        raise


def _compression_of(path: Path) -> str:
    """The first image's compression, named for a message (``JPEG (7)``)."""
    import tifffile

    from .tiff_backend import compression_name

    try:
        with tifffile.TiffFile(path) as tif:
            return compression_name(tif.pages.first.compression)
    except (tifffile.TiffFileError, OSError, ValueError, IndexError):
        return "unknown"


def _check_openslide_decodes(slide: Slide, why: Exception) -> None:
    """Raise, naming the file and codec, when OpenSlide cannot decode the coarsest level either."""
    level = slide.level_count - 1
    try:
        slide._handle.read_region((0, 0), level, (1, 1))
    except openslide.OpenSlideError as err:
        slide.close()
        raise ScoreNetInputError(
            f"cannot decode the image data: {getattr(why, 'codec', '')} is supported neither by "
            f"tifffile/imagecodecs ({why}) nor by OpenSlide ({err})",
            slide.path,
        ) from None


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


def read_roi(
    slide: Slide | str | PathLike[str],
    x: int,
    y: int,
    w: int,
    h: int,
    *,
    mpp: float | None = None,
    magnification: float | None = None,
    resolution: Resolution | None = None,
) -> RoiRead:
    """Read the level-0 rectangle ``(x, y, w, h)`` at a target resolution as (H, W, 3) uint8 RGB.

    The target is ``mpp`` or ``magnification`` (level 0 when neither), or a ``resolution`` already
    resolved by ``scorenet.resolution.resolve_resolution``, the rule every reader shares.

    Pixels come from the coarsest level at least as fine as the target and are resampled (area
    averaging when shrinking) when no level matches; parts outside the slide are white and reported.
    """
    if not isinstance(slide, Slide):
        with open_slide(slide) as opened:
            return read_roi(opened, x, y, w, h, mpp=mpp, magnification=magnification, resolution=resolution)
    x, y, w, h = int(x), int(y), int(w), int(h)
    if w <= 0 or h <= 0:
        raise ScoreNetInputError(f"region size must be positive, got {w} x {h}", slide.path)
    width, height = slide.dimensions
    valid = (max(x, 0), max(y, 0), min(x + w, width), min(y + h, height))
    if valid[0] >= valid[2] or valid[1] >= valid[3]:
        raise ScoreNetInputError(
            f"region x={x} y={y} w={w} h={h} lies outside the slide ({width} x {height} pixels)", slide.path
        )
    if resolution is None:
        resolution = resolve_resolution(slide, mpp=mpp, magnification=magnification)
    elif mpp is not None or magnification is not None:
        raise ScoreNetInputError("give mpp or magnification, or a resolution, not both")
    scale = resolution.scale
    out_w, out_h = max(1, round(w * scale)), max(1, round(h * scale))
    level = slide.best_level_for_downsample(1.0 / scale)
    downsample = slide.level_downsamples[level]
    # OpenSlide fills the part outside the slide with transparent pixels, which become white
    image = read_region_parallel(slide, (x, y), level, (math.ceil(w / downsample), math.ceil(h / downsample)))
    if image.shape[:2] != (out_h, out_w):
        image = _resize(image, out_w, out_h)
    padded = valid != (x, y, x + w, y + h)
    return RoiRead(image, x, y, w, h, scale, resolution.mpp, padded, valid)


def read_region_parallel(
    slide: Slide, location: tuple[int, int], level: int, size: tuple[int, int], *, min_pixels: int = 1 << 20
) -> np.ndarray:
    """``slide.read_region`` split into bands of whole tile rows, decoded on several threads.

    OpenSlide and imagecodecs release the GIL while decoding, so a large region reads about twice as
    fast on two cores. The result equals a single read exactly: the tifffile backend's bands start on
    rows of the level at any downsample; OpenSlide's are split only at integer downsamples.
    """
    width, height = size
    downsample = slide.level_downsamples[level]
    tile_h = slide.tile_size(level)[1] or 256
    workers = min(4, os.cpu_count() or 1)
    # in-memory plain images gain nothing from bands (a read is a copy)
    small = width * height < min_pixels or height <= 2 * tile_h
    pixels = slide._pixels  # the tifffile backend: exact at any downsample
    exact = pixels is not None or downsample == round(downsample)
    if not slide._banded_reads or small or workers < 2 or not exact:
        return slide.read_region(location, level, size)
    x, y = location
    # the region's first row, in pixels of the level
    top = pixels.level_origin(location, level)[1] if pixels is not None else y / downsample
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
        # tifffile: round((top + r0) * ds) maps back to row top + r0 exactly; OpenSlide: ds is an integer
        band_y = round((top + r0) * downsample) if pixels is not None else y + round(r0 * downsample)
        out[r0:r1] = slide.read_region((x, band_y), level, (width, r1 - r0))

    list(_reader_pool(workers).map(read_band, bounds))
    return out


@functools.cache
def _reader_pool(workers: int) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=workers, thread_name_prefix="scorenet-read")


def _resize(image: np.ndarray, width: int, height: int) -> np.ndarray:
    import cv2

    shrinking = width < image.shape[1] or height < image.shape[0]
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)
