"""TIFF-family slides (svs, generic pyramidal TIFF, ndpi, ...) read tile by tile by tifffile + imagecodecs.

OpenSlide's ``read_region`` takes level-0 coordinates; at a level whose downsample is not an integer
(2.0005 for a 4443 x 3567 slide over 2221 x 1783) ``round(x * ds) / ds`` is not a whole pixel of the
level and OpenSlide resamples at the fractional offset, so coarse levels come back blurred and shifted.
Here each level is its stored TIFF page: a read decodes the stored tiles it overlaps (each once) and
returns their pixels unchanged.

The metadata (levels, downsamples, microns per pixel, objective power, vendor, associated images and
``properties``) still comes from the OpenSlide handle, so it is the same whichever backend reads the
pixels: ``slide.Slide`` holds a :class:`TiffPixels` and reads through it. A slide is read here only
when every OpenSlide level is a stored page of the same size whose codec tifffile can decode; vendor
formats other than Aperio and generic TIFF (and Aperio's YCbCr JPEG 2000) must also give OpenSlide's
pixels on the first tile of every level, where OpenSlide reads exactly. Otherwise
:func:`open_tiff_pixels` says why and the caller uses OpenSlide.

OME-TIFF is the exception: OpenSlide sees only its first page, so ``ome_tiff`` takes the levels (SubIFDs)
and the metadata from tifffile and the OME-XML, and reads the pixels with the same :class:`TiffPixels`.
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
import zlib
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import openslide

from .errors import ScoreNetInputError
from .slide import rgba_to_rgb

log = logging.getLogger(__name__)

# vendors whose colour handling matches OpenSlide's on real files (tests/test_tiff_backend.py)
_TRUSTED_VENDORS = ("aperio", "generic-tiff")
# Aperio JPEG 2000 without MCT: the codestream holds YCbCr (openslide.org/formats/aperio)
_APERIO_JP2K_YCBCR = 33003
# what decoding a corrupt segment raises (imagecodecs' codec errors are RuntimeError subclasses)
_DECODE_ERRORS = (OSError, ValueError, RuntimeError, EOFError, IndexError, zlib.error)


class TiffBackendUnavailable(Exception):
    """tifffile cannot read this slide exactly; ``codec`` names the missing or unsupported codec, if any."""

    def __init__(self, reason: str, codec: str | None = None) -> None:
        super().__init__(reason)
        self.codec = codec


def compression_name(code: int) -> str:
    """``JPEG (7)``: the TIFF compression's name and tag value, for messages."""
    import tifffile

    try:
        return f"{tifffile.COMPRESSION(code).name} ({int(code)})"
    except ValueError:
        return f"unknown compression {int(code)}"


def decoder_problem(code: int) -> str | None:
    """Why tifffile cannot decode this compression (imagecodecs or its codec missing), None when it can."""
    import tifffile

    try:
        tifffile.TIFF.DECOMPRESSORS[int(code)]
    except KeyError as err:
        return str(err).strip("'\"")
    return None


# decoded tiles kept across reads and handles (OpenSlide keeps 32 MiB): re-scoring or panning over the
# same tissue decodes nothing again; 256 x 256 RGB tiles are 192 KiB, so this holds about 340 of them
TILE_CACHE_BYTES = 64 * 1024 * 1024


class TileCache:
    """Decoded tiles by (file identity, page offset, tile), least recently used dropped first."""

    def __init__(self, max_bytes: int = TILE_CACHE_BYTES) -> None:
        self.max_bytes = max_bytes
        self._tiles: OrderedDict[tuple, np.ndarray] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key: tuple) -> np.ndarray | None:
        with self._lock:
            tile = self._tiles.get(key)
            if tile is not None:
                self._tiles.move_to_end(key)
            return tile

    def put(self, key: tuple, tile: np.ndarray) -> None:
        if tile.nbytes > self.max_bytes:
            return
        tile.flags.writeable = False  # shared between readers
        with self._lock:
            if key in self._tiles:
                return
            self._tiles[key] = tile
            self._bytes += tile.nbytes
            while self._bytes > self.max_bytes:
                _, dropped = self._tiles.popitem(last=False)
                self._bytes -= dropped.nbytes

    def clear(self) -> None:
        with self._lock:
            self._tiles.clear()
            self._bytes = 0


TILE_CACHE = TileCache()


class _Level:
    """One stored level: a TIFF page's tiles (or strips), read under a lock and decoded outside it."""

    def __init__(self, path: Path, tif, page, lock: threading.Lock) -> None:
        self.path, self._tif, self.page, self._lock = path, tif, page, lock
        self.width, self.height = page.imagewidth, page.imagelength
        if page.is_tiled:
            self.cell = (page.tilewidth, page.tilelength)
        else:
            self.cell = (self.width, min(page.rowsperstrip or self.height, self.height))
        self.grid = (math.ceil(self.height / self.cell[1]), math.ceil(self.width / self.cell[0]))
        self.tile_size = self.cell if page.is_tiled else (0, 0)
        self.ycbcr = int(page.compression) == _APERIO_JP2K_YCBCR
        stat = path.stat()
        # a file rewritten at the same path gets other keys: (inode, mtime, size) change
        self._key = (str(path), stat.st_ino, stat.st_mtime_ns, stat.st_size, page.offset, self.ycbcr)

    def segment(self, row: int, col: int) -> np.ndarray | None:
        """Decoded tile ``(row, col)``, (rows, cols, 3) uint8 RGB cropped to the level; None if absent."""
        page = self.page
        index = row * self.grid[1] + col
        count = page.databytecounts[index]
        if not count:
            return None  # a tile the file leaves out: OpenSlide shows it transparent, so white here
        with self._lock:
            handle = self._tif.filehandle
            handle.seek(page.dataoffsets[index])
            data = handle.read(count)
        if len(data) < count:
            raise ValueError(f"tile {index} is cut short ({len(data)} of {count} bytes)")
        segment, _, _ = page.decode(data, index, jpegtables=page.jpegtables)
        if segment is None:
            return None
        cols, rows = self.cell
        tile = segment[0, : min(rows, self.height - row * rows), : min(cols, self.width - col * cols)]
        if self.ycbcr:
            tile = ycbcr_to_rgb(tile[..., :3])
        elif tile.shape[-1] == 4:
            tile = rgba_to_rgb(tile)  # an alpha sample: composited on white, as OpenSlide's pixels are
        return tile[..., :3]

    def cached_segment(self, row: int, col: int) -> np.ndarray | None:
        """:meth:`segment` through the shared :data:`TILE_CACHE` (absent tiles are not cached)."""
        key = (*self._key, row, col)
        tile = TILE_CACHE.get(key)
        if tile is None:
            tile = self.segment(row, col)
            if tile is not None:
                TILE_CACHE.put(key, tile)
        return tile

    def read(self, x: int, y: int, w: int, h: int) -> np.ndarray:
        """(h, w, 3) uint8 pixels of the level whose top-left is ``(x, y)``; outside the level is white."""
        out = np.full((h, w, 3), 255, dtype=np.uint8)
        x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + w, self.width), min(y + h, self.height)
        if x0 >= x1 or y0 >= y1:
            return out
        cols, rows = self.cell
        for row in range(y0 // rows, (y1 - 1) // rows + 1):
            for col in range(x0 // cols, (x1 - 1) // cols + 1):
                tile = self.cached_segment(row, col)
                if tile is None:
                    continue
                top, left = row * rows, col * cols
                ya, yb = max(y0, top), min(y1, top + tile.shape[0])
                xa, xb = max(x0, left), min(x1, left + tile.shape[1])
                out[ya - y : yb - y, xa - x : xb - x] = tile[ya - top : yb - top, xa - left : xb - left]
        return out

    def first_tile(self) -> tuple[int, int]:
        """``(row, col)`` of the first tile the file stores (the probe for a missing codec)."""
        index = next((i for i, n in enumerate(self.page.databytecounts) if n), 0)
        return divmod(index, self.grid[1])


def ycbcr_to_rgb(ycbcr: np.ndarray) -> np.ndarray:
    """Full-range (JPEG/JFIF) YCbCr to RGB, rounded and clipped, as OpenSlide converts Aperio 33003 tiles."""
    y, cb, cr = (ycbcr[..., k].astype(np.float32) for k in range(3))
    cb -= 128
    cr -= 128
    rgb = np.stack([y + 1.402 * cr, y - 0.344136 * cb - 0.714136 * cr, y + 1.772 * cb], axis=-1)
    return np.clip(np.floor(rgb + 0.5), 0, 255).astype(np.uint8)


class TiffPixels:
    """The stored pixels of every level of a TIFF-family slide; ``Slide`` reads through it.

    ``read_region`` keeps OpenSlide's signature: the level-0 ``location`` maps to the level pixel
    ``round(location / downsample)``, which is exact for the locations ``round(x * downsample)`` that
    ``pyramid`` and ``read_region_parallel`` pass (for downsamples >= 1). ``read_level`` takes level
    coordinates. Thread-safe: the file is read under a lock, tiles decode outside it.
    """

    name = "tifffile"

    def __init__(self, path: Path, tif, levels: list[_Level], downsamples: tuple[float, ...]) -> None:
        self.path = path
        self._tif = tif
        self.levels = levels
        self.downsamples = downsamples
        self.tile_sizes = tuple(level.tile_size for level in levels)

    def level_origin(self, location: tuple[int, int], level: int) -> tuple[int, int]:
        """The pixel of ``level`` nearest to the level-0 ``location``."""
        downsample = self.downsamples[level]
        return round(location[0] / downsample), round(location[1] / downsample)

    def read_region(self, location: tuple[int, int], level: int, size: tuple[int, int]) -> np.ndarray:
        """Pixels of ``size`` (w, h) at ``level`` whose top-left is ``location`` in level 0, as RGB."""
        x, y = self.level_origin(location, level)
        return self.read_level(level, x, y, int(size[0]), int(size[1]))

    def read_level(self, level: int, x: int, y: int, w: int, h: int) -> np.ndarray:
        """(h, w, 3) uint8 stored pixels of ``level`` from its pixel ``(x, y)``; outside it is white."""
        try:
            return self.levels[level].read(int(x), int(y), int(w), int(h))
        except _DECODE_ERRORS as err:
            raise ScoreNetInputError(
                f"cannot read pixels of level {level}, the file may be truncated or corrupt ({err})",
                self.path,
            ) from None

    def close(self) -> None:
        self._tif.close()


def _level_pages(tif, dimensions: tuple[tuple[int, int], ...]) -> list:
    """The stored page of each OpenSlide level (same size, 8-bit RGB), in the file's order."""
    import tifffile

    pages = [page for page in tif.pages if isinstance(page, tifffile.TiffPage)]
    chosen = []
    for width, height in dimensions:
        match = next(
            (
                p
                for p in pages
                if (p.imagewidth, p.imagelength) == (width, height) and p not in chosen and p.shaped[1] == 1
            ),
            None,
        )
        if match is None:
            raise TiffBackendUnavailable(f"no stored page is the {width} x {height} level OpenSlide reports")
        check_rgb_page(match)
        chosen.append(match)
    return chosen


def check_rgb_page(page) -> None:
    """Raise TiffBackendUnavailable unless ``page`` holds interleaved 8-bit RGB(A), as ``_Level`` reads."""
    import tifffile

    rgb = (tifffile.PHOTOMETRIC.RGB, tifffile.PHOTOMETRIC.YCBCR)
    if page.dtype != np.uint8 or page.samplesperpixel not in (3, 4) or page.photometric not in rgb:
        raise TiffBackendUnavailable(f"the {page.imagewidth} x {page.imagelength} level is not 8-bit RGB")
    if page.planarconfig == 2:
        raise TiffBackendUnavailable("colour stored in separate planes")


def check_decodable(levels: list[_Level], probe: list[_Level]) -> None:
    """Raise TiffBackendUnavailable, naming the codec, unless tifffile decodes every level's codec.

    The ``probe`` levels decode their first stored tile: an imagecodecs build without a codec fails there.
    """
    for level in levels:
        problem = decoder_problem(level.page.compression)
        if problem is not None:
            raise TiffBackendUnavailable(problem, compression_name(level.page.compression))
    for level in probe:
        try:
            level.segment(*level.first_tile())
        except (NotImplementedError, *_DECODE_ERRORS) as err:
            raise TiffBackendUnavailable(
                f"tifffile cannot decode it ({err})", compression_name(level.page.compression)
            ) from None


@contextlib.contextmanager
def quiet_tifffile() -> Iterator[None]:
    """tifffile's log silenced: its warnings would repeat what we report."""
    quiet = logging.getLogger("tifffile")
    saved, quiet.level = quiet.level, logging.CRITICAL
    try:
        yield
    finally:
        quiet.level = saved


def _trusted(vendor: str, levels: list[_Level]) -> bool:
    return vendor in _TRUSTED_VENDORS and not any(level.ycbcr for level in levels)


def _agrees_with_openslide(pixels: TiffPixels, handle: openslide.OpenSlide) -> bool:
    """The first tile of every level equals OpenSlide's read at the level's origin, where it is exact."""
    for level, reader in enumerate(pixels.levels):
        w, h = min(reader.cell[0], reader.width, 512), min(reader.cell[1], reader.height, 512)
        ours = reader.read(0, 0, w, h)
        theirs = rgba_to_rgb(np.asarray(handle.read_region((0, 0), level, (w, h))))
        if not np.array_equal(ours, theirs):
            return False
    return True


def open_tiff_pixels(path: Path, handle: openslide.AbstractSlide) -> TiffPixels:
    """The stored pixels of the slide ``handle`` (OpenSlide) describes; raises TiffBackendUnavailable.

    Cost: the TIFF directories and one tile of each level (the coarsest alone for Aperio and generic TIFF).
    """
    import tifffile

    if not isinstance(handle, openslide.OpenSlide):
        raise TiffBackendUnavailable("not an OpenSlide slide")
    with quiet_tifffile():
        try:
            tif = tifffile.TiffFile(path)
        except (tifffile.TiffFileError, *_DECODE_ERRORS) as err:
            raise TiffBackendUnavailable(f"tifffile cannot parse the file ({err})") from None
        try:
            lock = threading.Lock()
            pages = _level_pages(tif, tuple(handle.level_dimensions))
            levels = [_Level(path, tif, page, lock) for page in pages]
            vendor = handle.properties.get(openslide.PROPERTY_NAME_VENDOR) or "unknown"
            trusted = _trusted(vendor, levels)
            check_decodable(levels, levels if not trusted else levels[-1:])
            pixels = TiffPixels(path, tif, levels, tuple(float(d) for d in handle.level_downsamples))
            if not trusted and not _agrees_with_openslide(pixels, handle):
                raise TiffBackendUnavailable(f"{vendor} pixels differ from OpenSlide's at level origins")
            return pixels
        except BaseException:
            tif.close()
            raise
