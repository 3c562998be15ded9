"""Plain images (PNG, JPEG, and TIFFs that are not 8-bit RGB slides) behind the ``Slide`` API.

OpenSlide's ``ImageSlide`` decodes lazily through one Pillow handle, which fails when dask reads chunks
on several threads; Pillow also keeps only the high byte of 16-bit colour. Here an image is decoded
once when it is opened (so a truncated file fails there, naming the file), converted to 8-bit by
:func:`to_uint8` and kept in memory, where every read is an array slice and so thread-safe. A TIFF too
large for that is read lazily, tile by tile (or strip by strip), each region converted as it is read.

Images with a side above ``PYRAMID_MIN_SIDE`` get coarser levels, halving the size down to about one
chunk, built on first use: every pixel of a level is the mean of a 2 x 2 block of the level above,
rounded half up, so a level is the same whether built whole (in memory) or region by region (lazy TIFF).

The rule from any sample type to 8 bits (docs/opening-slides.md) is :func:`to_uint8` over the range
of :func:`intensity_range`; greyscale is replicated to R, G and B with a one-line warning.
"""

from __future__ import annotations

import contextlib
import logging
import lzma
import math
import struct
import threading
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

import numpy as np
from PIL import Image

from .errors import ScoreNetInputError
from .slide import DEFAULT_CHUNK, Slide

log = logging.getLogger(__name__)

PYRAMID_MIN_SIDE = 4096  # napari shows smaller images smoothly from one level
MAX_DECODED_PIXELS = 1 << 29  # about 23k x 23k: 1.6 GB as RGB uint8
LAZY_TIFF_PIXELS = 1 << 26  # 8k x 8k: larger TIFFs are read region by region, never decoded whole
MAX_SEGMENT_BYTES = 1 << 28  # a lazily read TIFF must store its pixels in blocks smaller than this
_CONVERT_BAND = 1 << 22  # samples converted at a time: bounds the float64 scratch memory to 32 MB
_REGION_BAND = 1 << 24  # level-0 pixels read at a time for a region of a coarser level
_PERCENTILE_SAMPLES = 1 << 24  # percentiles of larger images come from an evenly spaced subsample
_PERCENTILE_BLOCKS = 32  # tiles sampled for the percentiles of a lazily read TIFF
_PILLOW_ERRORS = (OSError, SyntaxError, ValueError, EOFError, struct.error, Image.DecompressionBombError)
# what decoding a corrupt or unsupported segment raises (NotImplementedError is a RuntimeError)
_DECODE_ERRORS = (OSError, ValueError, RuntimeError, EOFError, zlib.error, lzma.LZMAError)


# ---- the conversion rule ---------------------------------------------------------------------------


def sample_range(dtype: np.dtype, bits: int | None = None) -> tuple[float, float]:
    """The full range of a sample type: 0..1 for 1-bit and floating-point samples, the type's limits
    for integers (0..2**bits - 1 for unsigned samples stored in fewer bits, such as 12-bit in uint16)."""
    dtype = np.dtype(dtype)
    if dtype == np.bool_ or dtype.kind == "f":
        return 0.0, 1.0
    info = np.iinfo(dtype)
    if dtype.kind == "u" and bits and bits < info.bits:
        return 0.0, float(2**bits - 1)
    return float(info.min), float(info.max)


def intensity_range(
    samples: np.ndarray, percentiles: tuple[float, float] | None = None, *, bits: int | None = None
) -> tuple[float, float]:
    """The ``(lo, hi)`` that :func:`to_uint8` maps onto 0..255.

    By default the full range of the sample type (:func:`sample_range`). With ``percentiles=(low,
    high)``, those percentiles of the finite samples, all colour channels together (so colours keep
    their balance), for samples of more than 8 bits; 8-bit and 1-bit images are never stretched.
    """
    full = sample_range(samples.dtype, bits)
    if percentiles is None or samples.dtype.itemsize == 1:
        return full
    if samples.ndim >= 2 and samples.size > _PERCENTILE_SAMPLES:
        step = math.ceil(math.sqrt(samples.size / _PERCENTILE_SAMPLES))
        samples = samples[::step, ::step]
    values = samples.ravel()
    if values.dtype.kind == "f":
        values = values[np.isfinite(values)]
    if values.size == 0:
        return full
    lo, hi = np.percentile(values, percentiles)
    return float(lo), float(hi)


def to_uint8(samples: np.ndarray, value_range: tuple[float, float] | None = None) -> np.ndarray:
    """Samples of any type as uint8: ``lo`` maps to 0 and ``hi`` to 255, linearly.

    ``out = clip(floor((v - lo) * 255 / (hi - lo) + 0.5), 0, 255)``, NaN gives 0; ``value_range``
    defaults to :func:`sample_range` of the type (uint16: ``round(v / 257)``). When ``hi <= lo`` (a
    constant image stretched by percentiles) values above ``lo`` give 255, the rest 0. uint8 samples
    over 0..255 come back unchanged (not copied).
    """
    lo, hi = value_range if value_range is not None else sample_range(samples.dtype)
    if samples.dtype == np.uint8 and (lo, hi) == (0, 255):
        return samples
    flat = np.ascontiguousarray(samples).reshape(-1)
    out = np.empty(flat.shape, dtype=np.uint8)
    for start in range(0, flat.size, _CONVERT_BAND):
        band = flat[start : start + _CONVERT_BAND].astype(np.float64)
        if hi <= lo:
            out[start : start + band.size] = np.where(band > lo, 255, 0)
            continue
        band -= lo
        band *= 255
        band /= hi - lo
        band += 0.5
        np.floor(band, out=band)
        np.clip(band, 0, 255, out=band)
        band[np.isnan(band)] = 0
        out[start : start + band.size] = band
    return out.reshape(samples.shape)


def halve(image: np.ndarray) -> np.ndarray:
    """(h, w, c) uint8 to (h // 2, w // 2, c): each pixel the mean of a 2 x 2 block, rounded half up.

    An odd last row or column is dropped, as the coarser level is ``floor(size / 2)``.
    """
    import cv2

    height, width, channels = image.shape[0] // 2, image.shape[1] // 2, image.shape[2]
    # OpenCV's area resize by exactly 2 is (a + b + c + d + 2) >> 2, the rule above, and fast
    out = cv2.resize(image[: 2 * height, : 2 * width], (width, height), interpolation=cv2.INTER_AREA)
    return out.reshape(height, width, channels)


def _on_white(colour: np.ndarray, alpha: np.ndarray, *, premultiplied: bool) -> np.ndarray:
    """uint8 colour (h, w, c) over white through uint8 alpha (h, w, 1), as ``rgba_to_rgb`` does."""
    if alpha.min(initial=255) == 255:
        return colour
    c, a = colour.astype(np.uint16), alpha.astype(np.uint16)
    out = np.minimum(c + (255 - a), 255) if premultiplied else (c * a + 255 * (255 - a) + 127) // 255
    return out.astype(np.uint8)


def _invert(samples: np.ndarray, bits: int | None) -> np.ndarray:
    """A min-is-white TIFF's samples as min-is-black: ``lo + hi - v`` over :func:`sample_range`."""
    if samples.dtype.kind == "f":
        return 1.0 - samples
    if samples.dtype.kind == "u" and bits and bits < samples.dtype.itemsize * 8:
        return (2**bits - 1) - samples
    return np.invert(samples)  # bool: not; integers: max + min - v


@dataclass(eq=False)
class _Layout:
    """How decoded samples ``(h, w, s)`` become display samples ``(h, w, 1 or 3)`` uint8."""

    channels: str  # "grey", "RGB" or "palette" (an index into colormap)
    alpha: str | None = None  # "straight" or "premultiplied": the sample after the colour ones
    invert: bool = False  # a TIFF stored min-is-white
    colormap: np.ndarray | None = None  # (n, 3) palette colours
    bits: int | None = None  # significant bits of unsigned integer samples
    value_range: tuple[float, float] | None = None  # of the colour samples, fixed once per image

    @property
    def colour_count(self) -> int:
        return 1 if self.channels == "grey" else 3

    def colour(self, samples: np.ndarray) -> np.ndarray:
        """The colour samples (h, w, 1 or 3) in their own type: palette looked up, min-is-white undone."""
        if self.colormap is not None:
            return np.take(self.colormap, samples[..., 0].astype(np.intp), axis=0, mode="clip")
        colour = samples[..., : self.colour_count]
        return _invert(colour, self.bits) if self.invert else colour

    @property
    def colour_bits(self) -> int | None:
        return None if self.colormap is not None else self.bits

    def display(self, samples: np.ndarray) -> np.ndarray:
        """Display samples (h, w, 1 or 3) uint8: the colour by the rule, composited on white."""
        colour = to_uint8(self.colour(samples), self.value_range)
        if self.alpha is None:
            return colour
        alpha = samples[..., self.colour_count : self.colour_count + 1]
        alpha8 = to_uint8(alpha, sample_range(alpha.dtype, self.bits))  # alpha is never stretched
        return _on_white(colour, alpha8, premultiplied=self.alpha == "premultiplied")

    def describe(self) -> str:
        return self.channels + ("+alpha" if self.alpha else "")


# ---- decoding --------------------------------------------------------------------------------------


def _check_size(path: Path, width: int, height: int) -> None:
    if width * height > MAX_DECODED_PIXELS:
        raise ScoreNetInputError(
            f"the image is too large to decode into memory ({width} x {height} pixels, more than "
            f"{MAX_DECODED_PIXELS:,}); save it as a tiled TIFF, which is read region by region",
            path,
        )


_PILLOW_LIMIT = threading.Lock()


@contextlib.contextmanager
def _pillow_pixel_limit() -> Iterator[None]:
    # Pillow warns above about 89 Mpx and refuses 179 Mpx in Image.open, a decompression-bomb guard;
    # this module applies its own, larger limit (_check_size) before decoding, so lift Pillow's meanwhile
    with _PILLOW_LIMIT:
        saved = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = None
        try:
            yield
        finally:
            Image.MAX_IMAGE_PIXELS = saved


def _png_header(path: Path) -> tuple[int, int, int, int] | None:
    """(width, height, bit depth, colour type) of a PNG file, None for other files."""
    with open(path, "rb") as f:
        head = f.read(29)
    if len(head) < 29 or head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
        return None
    width, height, depth, colour_type = struct.unpack(">IIBB", head[16:26])
    return width, height, depth, colour_type


def _decode_with_opencv(path: Path, *, grey: bool) -> tuple[np.ndarray, _Layout]:
    """16-bit colour, which Pillow cuts to its high byte; OpenCV keeps it (in BGR(A) order)."""
    import cv2

    image = cv2.imdecode(np.fromfile(path, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise ScoreNetInputError("cannot decode the image: the file is truncated or corrupt", path)
    if image.ndim == 2:
        image = image[..., None]
    alpha = "straight" if image.shape[2] == 4 else None
    if grey or image.shape[2] == 1:
        # a grey+alpha PNG comes back as BGRA with the grey in all three colour channels
        samples = image[..., [0, 3]] if alpha else image[..., :1]
        return samples, _Layout("grey", alpha=alpha)
    colour = image[..., 2::-1]
    samples = np.concatenate([colour, image[..., 3:4]], axis=-1) if alpha else np.ascontiguousarray(colour)
    return samples, _Layout("RGB", alpha=alpha)


def _decode_with_pillow(path: Path) -> tuple[np.ndarray, _Layout, str]:
    """Samples (h, w, s), their layout and the decoder of a PNG, JPEG or (fallback) TIFF file."""
    png = _png_header(path)
    if png is not None and png[2] == 16 and png[3] in (2, 4, 6):  # 16-bit RGB, grey+alpha, RGBA
        _check_size(path, png[0], png[1])
        return (*_decode_with_opencv(path, grey=png[3] == 4), "opencv")
    try:
        with _pillow_pixel_limit():
            image = Image.open(path)
    except _PILLOW_ERRORS as err:
        raise ScoreNetInputError(f"not a readable image ({err})", path) from None
    with image:
        _check_size(path, *image.size)
        try:
            image.load()
        except _PILLOW_ERRORS as err:
            raise ScoreNetInputError(
                f"cannot decode the image: the file is truncated or corrupt ({err})", path
            ) from None
        samples, layout = _pillow_samples(image, png)
    return samples, layout, "pillow"


def _pillow_samples(image: Image.Image, png: tuple[int, int, int, int] | None) -> tuple[np.ndarray, _Layout]:
    mode = image.mode
    if mode in ("L", "RGB") and "transparency" in image.info:  # a PNG colour key: transparent pixels
        image = image.convert("LA" if mode == "L" else "RGBA")
        mode = image.mode
    if mode in ("1", "L", "F") or mode.startswith("I;16"):
        grey = np.asarray(image)
        if grey.dtype.byteorder not in ("=", "|"):
            grey = grey.astype(grey.dtype.newbyteorder("="))
        return grey[..., None], _Layout("grey")
    if mode == "I":
        grey = np.asarray(image)
        if png is not None and png[2] == 16:
            grey = grey.astype(np.uint16)  # older Pillow opens 16-bit grey PNG as 32-bit "I"
        return grey[..., None], _Layout("grey")
    if mode in ("LA", "La"):
        return np.asarray(image.convert("LA")), _Layout("grey", alpha="straight")
    if mode in ("P", "PA"):
        transparent = mode == "PA" or "transparency" in image.info
        image, mode = (image.convert("RGBA"), "RGBA") if transparent else (image.convert("RGB"), "RGB")
    if mode in ("RGBA", "RGBa"):
        return np.asarray(image.convert("RGBA")), _Layout("RGB", alpha="straight")
    return np.asarray(image if mode == "RGB" else image.convert("RGB")), _Layout("RGB")


def _tiff_layout(page) -> _Layout | None:
    """The layout of a TIFF page that tifffile decodes and this module understands, else None."""
    import tifffile

    photometric, samples, extras = page.photometric, page.samplesperpixel, tuple(page.extrasamples)
    if page.sampleformat not in (1, 2, 3) or page.dtype is None:
        return None
    bits = page.bitspersample if page.sampleformat == 1 else None
    alpha = {1: "premultiplied", 2: "straight"}.get(extras[0]) if extras else None
    kinds = tifffile.PHOTOMETRIC
    if photometric in (kinds.MINISBLACK, kinds.MINISWHITE) and samples <= 2:
        return _Layout(
            "grey", alpha=alpha if samples == 2 else None, invert=photometric == kinds.MINISWHITE, bits=bits
        )
    jpeg_rgb = photometric == kinds.YCBCR and page.compression == tifffile.COMPRESSION.JPEG
    if (photometric == kinds.RGB or jpeg_rgb) and samples >= 3:
        return _Layout("RGB", alpha=alpha if samples >= 4 else None, bits=bits)
    if photometric == kinds.PALETTE and samples == 1 and page.colormap is not None:
        colormap = np.asarray(page.colormap).T
        # the colormap is 16-bit by the TIFF standard; some writers store 8-bit values in it
        colormap = colormap.astype(np.uint8) if colormap.max() < 256 else colormap.astype(np.uint16)
        return _Layout("palette", colormap=colormap)
    return None


def _page_samples(page, array: np.ndarray) -> np.ndarray:
    """A decoded page as (h, w, s), samples last whether stored interleaved or in separate planes."""
    separate, _, height, width, contig = page.shaped
    planes = array.reshape(separate, height, width, contig)
    if separate == 1:
        return planes[0]
    return np.ascontiguousarray(planes.transpose(1, 2, 0, 3)).reshape(height, width, separate * contig)


class _TiffRegions:
    """Level-0 regions of a large TIFF page, decoded tile by tile (or strip by strip) when read.

    Thread-safe: the file is read under a lock (one seek and one read per tile); decoding, the slow
    part, runs outside it. Uncompressed pages are memory-mapped instead.
    """

    def __init__(self, path: Path, tif, page, layout: _Layout) -> None:
        import tifffile

        self.path, self._tif, self._page, self.layout = path, tif, page, layout
        separate, _, height, width, contig = page.shaped
        self.shape = (height, width)
        self.tile_size = (page.tilewidth, page.tilelength) if page.is_tiled else (0, 0)
        self._lock = threading.Lock()
        self._memmap = None
        if page.is_memmappable and page.compression == tifffile.COMPRESSION.NONE and page.dtype != np.bool_:
            self._memmap = tifffile.memmap(path, page=page.index, mode="r").reshape(page.shaped)
            self._cell = (DEFAULT_CHUNK, DEFAULT_CHUNK)
            return
        rows = page.tilelength if page.is_tiled else min(page.rowsperstrip or height, height)
        cols = page.tilewidth if page.is_tiled else width
        block = rows * cols * contig * page.dtype.itemsize
        if block > MAX_SEGMENT_BYTES:
            raise ScoreNetInputError(
                f"the image ({width} x {height} pixels) is stored in blocks of {block / 2**20:.0f} MB "
                f"({rows} rows each), too large to read region by region; save it as a tiled TIFF",
                path,
            )
        self._cell = (rows, cols)
        self._grid = (math.ceil(height / rows), math.ceil(width / cols))
        first = next((i for i, n in enumerate(page.databytecounts) if n), None)
        if first is not None:
            self._segment(first)  # fails now, naming the file, if tifffile cannot decode this page

    def _segment(self, index: int) -> np.ndarray | None:
        page = self._page
        count = page.databytecounts[index]
        if not count:
            return None  # a tile the file leaves out: zeros, as tifffile reads it
        with self._lock:
            handle = self._tif.filehandle
            handle.seek(page.dataoffsets[index])
            data = handle.read(count)
        segment, _, _ = page.decode(data, index, jpegtables=page.jpegtables)
        return segment[0]  # (rows, cols, contig samples): depth is 1

    def samples(self, x0: int, y0: int, x1: int, y1: int) -> np.ndarray:
        """Decoded samples (h, w, s) of the level-0 box, in the page's own type."""
        if self._memmap is not None:
            block = self._memmap[:, 0, y0:y1, x0:x1, :]
            return np.ascontiguousarray(block.transpose(1, 2, 0, 3)).reshape(y1 - y0, x1 - x0, -1)
        separate, _, _, _, contig = self._page.shaped
        rows, cols = self._cell
        grid_rows, grid_cols = self._grid
        out = np.zeros((y1 - y0, x1 - x0, separate * contig), dtype=self._page.dtype)
        for plane in range(separate):
            for row in range(y0 // rows, (y1 - 1) // rows + 1):
                for col in range(x0 // cols, (x1 - 1) // cols + 1):
                    segment = self._segment((plane * grid_rows + row) * grid_cols + col)
                    if segment is None:
                        continue
                    top, left = row * rows, col * cols
                    ya, yb = max(y0, top), min(y1, top + segment.shape[0])
                    xa, xb = max(x0, left), min(x1, left + segment.shape[1])
                    channels = slice(plane * contig, (plane + 1) * contig)
                    part = segment[ya - top : yb - top, xa - left : xb - left]
                    out[ya - y0 : yb - y0, xa - x0 : xb - x0, channels] = part
        return out

    def read(self, x0: int, y0: int, x1: int, y1: int) -> np.ndarray:
        """Display samples (h, w, 1 or 3) uint8 of the level-0 box."""
        return self.layout.display(self.samples(x0, y0, x1, y1))

    def sample_blocks(self) -> list[np.ndarray]:
        """Colour samples of up to _PERCENTILE_BLOCKS blocks spread evenly over the image."""
        rows, cols = self._cell
        height, width = self.shape
        grid = [(r, c) for r in range(math.ceil(height / rows)) for c in range(math.ceil(width / cols))]
        picks = sorted({grid[round(i)] for i in np.linspace(0, len(grid) - 1, _PERCENTILE_BLOCKS)})
        return [
            self.layout.colour(
                self.samples(c * cols, r * rows, min(width, (c + 1) * cols), min(height, (r + 1) * rows))
            ).reshape(-1, 1, self.layout.colour_count)
            for r, c in picks
        ]

    def close(self) -> None:
        self._memmap = None
        self._tif.close()


# ---- the slide -------------------------------------------------------------------------------------


def _level_dimensions(width: int, height: int) -> list[tuple[int, int]]:
    """Level 0, then halved while the image is larger than one chunk (only above PYRAMID_MIN_SIDE)."""
    dims = [(width, height)]
    if max(width, height) > PYRAMID_MIN_SIDE:
        while max(dims[-1]) > DEFAULT_CHUNK and min(dims[-1]) >= 2:
            w, h = dims[-1]
            dims.append((w // 2, h // 2))
    return dims


class PlainImageSlide(Slide):
    """A plain image as a slide: ``mpp`` None, no associated images, levels built on first use.

    Reads are thread-safe: in-memory levels are sliced (each built once, under a lock), lazily read
    TIFFs decode their tiles outside the file lock.
    """

    def __init__(
        self,
        path: Path,
        *,
        level0: np.ndarray | None = None,
        regions: _TiffRegions | None = None,
        properties: dict[str, str],
        notes: tuple[str, ...] = (),
    ) -> None:
        # no OpenSlide handle, so Slide.__init__ is not called; the attributes are the same
        self.path = path
        self._handle = None
        self._regions = regions
        height, width = level0.shape[:2] if level0 is not None else regions.shape
        dims = _level_dimensions(width, height)
        self.level_count = len(dims)
        self.level_dimensions = tuple(dims)
        self.level_downsamples = tuple(float(2**level) for level in range(len(dims)))
        self.vendor = "image"
        self.mpp = None
        self.objective_power = None
        self.associated_images = MappingProxyType({})
        self.notes = notes
        self._properties = MappingProxyType(properties)
        tile = regions.tile_size if regions is not None else (0, 0)
        self._tile_sizes = (tile,) + ((0, 0),) * (len(dims) - 1)
        self._banded_reads = regions is not None  # decoding tiles on several threads pays off
        self._levels: list[np.ndarray | None] = [level0] + [None] * (len(dims) - 1)
        self._lock = threading.Lock()

    @property
    def properties(self) -> MappingProxyType:
        """How the image was decoded and converted (decoder, sample type, value range, channels)."""
        return self._properties

    def read_region(self, location: tuple[int, int], level: int, size: tuple[int, int]) -> np.ndarray:
        """Pixels of ``size`` (w, h) at ``level`` whose top-left is ``location`` in level 0, as RGB.

        As OpenSlide: parts outside the image are white. Grey images come back with R = G = B.
        """
        width, height = int(size[0]), int(size[1])
        downsample = 1 << level
        left, top = int(location[0]) // downsample, int(location[1]) // downsample
        level_w, level_h = self.level_dimensions[level]
        out = np.full((height, width, 3), 255, dtype=np.uint8)
        x0, y0 = max(left, 0), max(top, 0)
        x1, y1 = min(left + width, level_w), min(top + height, level_h)
        if x0 < x1 and y0 < y1:
            # a grey (h, w, 1) region broadcasts into all three channels
            out[y0 - top : y1 - top, x0 - left : x1 - left] = self._region(level, x0, y0, x1, y1)
        return out

    def _region(self, level: int, x0: int, y0: int, x1: int, y1: int) -> np.ndarray:
        if self._regions is None:
            return self._level(level)[y0:y1, x0:x1]
        try:
            if level == 0:
                return self._regions.read(x0, y0, x1, y1)
            return self._coarse_region(level, x0, y0, x1, y1)
        except _DECODE_ERRORS as err:
            raise ScoreNetInputError(
                f"cannot read pixels, the file may be truncated or corrupt ({err})", self.path
            ) from None

    def _level(self, level: int) -> np.ndarray:
        """An in-memory level, built from the one above on first use."""
        if self._levels[0] is None:
            raise ValueError(f"{self.path}: the image is closed")
        if self._levels[level] is None:
            with self._lock:
                for k in range(1, level + 1):
                    if self._levels[k] is None:
                        self._levels[k] = halve(self._levels[k - 1])
        return self._levels[level]

    def _coarse_region(self, level: int, x0: int, y0: int, x1: int, y1: int) -> np.ndarray:
        """A region of a coarser level of a lazy TIFF: level 0 read in bands, each halved ``level`` times."""
        f = 1 << level
        out = np.empty((y1 - y0, x1 - x0, self._regions.layout.colour_count), dtype=np.uint8)
        rows = max(1, _REGION_BAND // ((x1 - x0) * f * f))
        for r0 in range(y0, y1, rows):
            r1 = min(y1, r0 + rows)
            block = self._regions.read(x0 * f, r0 * f, x1 * f, r1 * f)
            for _ in range(level):
                block = halve(block)
            out[r0 - y0 : r1 - y0] = block
        return out

    def close(self) -> None:
        self._levels = [None] * self.level_count
        if self._regions is not None:
            self._regions.close()

    def __repr__(self) -> str:
        return f"PlainImageSlide({str(self.path)!r}, levels={self.level_dimensions})"


_noted: set[tuple[str, str]] = set()
_noted_lock = threading.Lock()


def _note(path: Path, message: str) -> str:
    """``path: message``, logged as a warning the first time for this file in this process."""
    text = f"{path}: {message}"
    key = (str(path.resolve()), message)
    with _noted_lock:
        first = key not in _noted
        _noted.add(key)
    if first:
        log.warning("%s", text)
    return text


def _notes(path: Path, layout: _Layout, colour: np.ndarray | None) -> tuple[str, ...]:
    notes = []
    if layout.channels == "grey":
        notes.append("greyscale image: its grey values are used for R, G and B (ScoreNet expects colour H&E)")
    if colour is not None and colour.dtype.kind == "f" and layout.value_range == (0.0, 1.0):
        finite = colour[np.isfinite(colour)]
        if finite.size and (finite.min() < 0 or finite.max() > 1):
            notes.append(
                f"floating-point values span {finite.min():.4g}..{finite.max():.4g}; those outside 0..1 are "
                "clipped (open it with percentiles=(0, 100) to stretch them instead)"
            )
    return tuple(_note(path, n) for n in notes)


def _properties(decoder: str, dtype: np.dtype, layout: _Layout) -> dict[str, str]:
    lo, hi = layout.value_range
    return {
        "scorenet.decoder": decoder,
        "scorenet.sample-type": str(dtype),
        "scorenet.channels": layout.describe(),
        "scorenet.value-range": f"{lo:g} {hi:g}",
    }


def _check_percentiles(percentiles: tuple[float, float] | None) -> None:
    if percentiles is None:
        return
    try:
        low, high = (float(p) for p in percentiles)
    except (TypeError, ValueError):
        raise ScoreNetInputError(f"percentiles must be two numbers (low, high): {percentiles!r}") from None
    if not 0 <= low < high <= 100:
        raise ScoreNetInputError(f"percentiles must satisfy 0 <= low < high <= 100, got {percentiles!r}")


def _in_memory(
    path: Path, samples: np.ndarray, layout: _Layout, decoder: str, percentiles: tuple[float, float] | None
) -> PlainImageSlide:
    colour = layout.colour(samples)
    layout.value_range = intensity_range(colour, percentiles, bits=layout.colour_bits)
    notes = _notes(path, layout, colour)
    del colour
    level0 = layout.display(samples)
    return PlainImageSlide(
        path, level0=level0, properties=_properties(decoder, samples.dtype, layout), notes=notes
    )


def _open_tiff(path: Path, percentiles: tuple[float, float] | None) -> PlainImageSlide:
    import tifffile

    try:
        tif = tifffile.TiffFile(path)
    except (tifffile.TiffFileError, *_DECODE_ERRORS) as err:
        raise ScoreNetInputError(f"not a readable TIFF ({err})", path) from None
    try:
        page = tif.pages.first  # level 0 of a pyramid, the first image of a stack
    except IndexError:
        tif.close()
        raise ScoreNetInputError("the TIFF holds no image", path) from None
    if page.shaped[1] > 1:
        tif.close()
        raise ScoreNetInputError("a volumetric TIFF (depth > 1): not an image ScoreNet reads", path)
    layout = _tiff_layout(page)
    width, height = page.imagewidth, page.imagelength
    if width * height > LAZY_TIFF_PIXELS:
        try:
            return _open_lazy_tiff(path, tif, page, layout, percentiles)
        except BaseException:
            tif.close()
            raise
    try:
        samples = _page_samples(page, page.asarray()) if layout is not None else None
    except _DECODE_ERRORS:
        samples = None  # a compression tifffile needs imagecodecs for (LZW, JPEG): Pillow or OpenCV
    finally:
        tif.close()
    if samples is not None:
        return _in_memory(path, samples, layout, "tifffile", percentiles)
    if page.samplesperpixel >= 3 and page.bitspersample > 8:
        _check_size(path, width, height)
        samples, layout = _decode_with_opencv(path, grey=False)
        decoder = "opencv"
    else:
        samples, layout, decoder = _decode_with_pillow(path)
    return _in_memory(path, samples, layout, decoder, percentiles)


def _open_lazy_tiff(
    path: Path, tif, page, layout: _Layout | None, percentiles: tuple[float, float] | None
) -> PlainImageSlide:
    """A TIFF too large to decode whole, read region by region; refused when tifffile cannot do that."""
    try:
        if layout is None:
            raise ValueError(f"{page.photometric.name} colour with {page.samplesperpixel} samples per pixel")
        regions = _TiffRegions(path, tif, page, layout)
        if percentiles is None:
            colour_type = layout.colormap.dtype if layout.colormap is not None else page.dtype
            layout.value_range = sample_range(colour_type, layout.colour_bits)
        else:
            sample = np.concatenate(regions.sample_blocks())
            layout.value_range = intensity_range(sample, percentiles, bits=layout.colour_bits)
    except _DECODE_ERRORS as err:
        raise ScoreNetInputError(
            f"cannot read this large TIFF ({page.imagewidth} x {page.imagelength} pixels) region by region "
            f"({err}); it is not decoded whole",
            path,
        ) from None
    properties = _properties("tifffile, region by region", page.dtype, layout)
    return PlainImageSlide(path, regions=regions, properties=properties, notes=_notes(path, layout, None))


def open_plain_image(path: Path, percentiles: tuple[float, float] | None = None) -> PlainImageSlide:
    """Open a PNG, JPEG or TIFF as a :class:`PlainImageSlide` (see :func:`scorenet.slide.open_slide`)."""
    _check_percentiles(percentiles)
    if path.suffix.lower() in (".tif", ".tiff"):
        return _open_tiff(path, percentiles)
    samples, layout, decoder = _decode_with_pillow(path)
    return _in_memory(path, samples, layout, decoder, percentiles)
