"""OME-TIFF slides: every pyramid level and the OME metadata read by tifffile.

OpenSlide reads an OME-TIFF as a generic TIFF: it sees the top-level pages only, so a pyramid stored in
SubIFDs (as bfconvert, tifffile and QuPath write OME-TIFF) is one level, and it ignores the OME pixel
size. Here the levels are tifffile's ``series[0].levels`` (the SubIFDs), or, when the OME-XML describes
one level only, the reduced-resolution pages that follow it (libvips' layout); each is read by
``tiff_backend``, exactly as stored. The metadata comes from the OME-XML and is exposed through an
OpenSlide-like handle (:class:`OmeTiffHandle`), so ``slide.Slide`` works unchanged: vendor ``ome-tiff``,
``openslide.mpp-x/-y`` from ``PhysicalSizeX/Y`` in µm, ``openslide.objective-power`` from the image's
``Objective NominalMagnification``, level downsamples as OpenSlide computes them, associated images from
the other OME images named label, macro or thumbnail.

Only one 8-bit RGB plane is a slide: several planes (channels, z, time) are refused; a single plane of
another kind (grey, 16-bit, float) is left to the plain-image path, as before.
"""

from __future__ import annotations

import logging
import math
import threading
import xml.etree.ElementTree as ElementTree
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import MappingProxyType

import numpy as np
import openslide
from PIL import Image

from .errors import ScoreNetInputError
from .slide import Slide
from .tiff_backend import (
    _DECODE_ERRORS,
    TiffBackendUnavailable,
    TiffPixels,
    _Level,
    check_decodable,
    check_rgb_page,
    quiet_tifffile,
)

log = logging.getLogger(__name__)

VENDOR = "ome-tiff"
# OME UnitsLength symbols -> µm; PhysicalSizeX's default unit is µm
_MICRONS_PER_UNIT = {
    "m": 1e6,
    "dm": 1e5,
    "cm": 1e4,
    "mm": 1e3,
    "\u00b5m": 1.0,  # MICRO SIGN, as the OME schema spells it
    "\u03bcm": 1.0,  # GREEK SMALL LETTER MU, as some writers spell it
    "um": 1.0,
    "nm": 1e-3,
    "pm": 1e-6,
    "\u00c5": 1e-4,  # LATIN CAPITAL LETTER A WITH RING ABOVE
    "\u212b": 1e-4,  # ANGSTROM SIGN
    "in": 25400.0,
}
_ASSOCIATED = ("label", "macro", "thumbnail")
_PLANE_AXES = {"C": "channels", "Z": "z-planes", "T": "time points"}
# string tags OpenSlide also copies into tiff.* properties
_TIFF_TAGS = tuple("ImageDescription Make Model Software DateTime Artist HostComputer Copyright".split())


class _AssociatedSeries(Mapping):
    """Label, macro and thumbnail images (other OME images), decoded as PIL images when asked for."""

    def __init__(self, series: dict, lock: threading.Lock) -> None:
        self._series, self._lock = series, lock

    def __getitem__(self, name: str) -> Image.Image:
        with self._lock:  # the level reads share the file handle
            return Image.fromarray(self._series[name].asarray(maxworkers=1))

    def __iter__(self) -> Iterator[str]:
        return iter(self._series)

    def __len__(self) -> int:
        return len(self._series)


class OmeTiffHandle(openslide.AbstractSlide):
    """The OpenSlide interface over an OME-TIFF's levels and OME-XML; ``Slide`` takes it as its handle."""

    def __init__(self, pixels: TiffPixels, properties: dict[str, str], associated: Mapping) -> None:
        super().__init__()
        self._pixels = pixels
        self._properties = MappingProxyType(properties)
        self._associated = associated

    @classmethod
    def detect_format(cls, filename: str | Path) -> str | None:
        import tifffile

        try:
            with quiet_tifffile(), tifffile.TiffFile(filename) as tif:
                return VENDOR if tif.is_ome else None
        except (tifffile.TiffFileError, *_DECODE_ERRORS):
            return None

    def close(self) -> None:
        """Nothing to do: the file is the pixels' (``Slide.close`` closes both)."""

    @property
    def level_count(self) -> int:
        return len(self._pixels.levels)

    @property
    def level_dimensions(self) -> tuple[tuple[int, int], ...]:
        return tuple((level.width, level.height) for level in self._pixels.levels)

    @property
    def level_downsamples(self) -> tuple[float, ...]:
        return self._pixels.downsamples

    @property
    def properties(self) -> Mapping[str, str]:
        return self._properties

    @property
    def associated_images(self) -> Mapping[str, Image.Image]:
        return self._associated

    def get_best_level_for_downsample(self, downsample: float) -> int:
        """As OpenSlide: the last level whose downsample is not above ``downsample``."""
        finer = [i for i, d in enumerate(self.level_downsamples) if d <= downsample]
        return max(finer, default=0)

    def read_region(self, location: tuple[int, int], level: int, size: tuple[int, int]) -> Image.Image:
        """RGBA, as OpenSlide returns it (``Slide`` reads the pixels directly instead)."""
        return Image.fromarray(self._pixels.read_region(location, level, size)).convert("RGBA")


def open_ome_tiff(path: Path, *, backend: str = "auto") -> Slide | None:
    """The OME-TIFF at ``path`` as a multi-level slide read by tifffile, or None when it is not for here.

    None: the file has no OME-XML; its image is a single plane that is not 8-bit RGB (the plain-image
    path reads it); ``backend="openslide"``; or, with ``backend="auto"``, tifffile cannot read it (a
    missing codec is warned about), and OpenSlide reads its first page as before. Raises
    ScoreNetInputError for an image of several planes, and with ``backend="tifffile"`` when tifffile
    cannot read it.
    """
    import tifffile

    with quiet_tifffile():
        try:
            tif = tifffile.TiffFile(path)
        except (tifffile.TiffFileError, *_DECODE_ERRORS):
            return None  # not a TIFF tifffile parses: the caller's checks report it
        try:
            slide = _ome_slide(path, tif, backend)
        except TiffBackendUnavailable as why:
            tif.close()
            if backend == "tifffile":
                raise ScoreNetInputError(f"tifffile cannot read this OME-TIFF: {why}", path) from None
            (log.warning if why.codec else log.debug)(
                "%s: tifffile cannot read this OME-TIFF (%s); OpenSlide reads its first page only", path, why
            )
            return None
        except BaseException:
            tif.close()
            raise
    if slide is None:
        tif.close()
    return slide


def _ome_slide(path: Path, tif, backend: str) -> Slide | None:
    if not tif.is_ome:
        return None
    series = tif.series[0]
    shape = zip(series.axes, series.shape, strict=True)
    planes = {axis: n for axis, n in shape if axis not in "YXS" and n > 1}
    if planes:
        held = " x ".join(f"{n} {_PLANE_AXES.get(axis, f'{axis}-planes')}" for axis, n in planes.items())
        raise ScoreNetInputError(
            f"the OME-TIFF holds {held} of {series.dtype} (axes {series.axes}); ScoreNet reads one 8-bit RGB "
            "(brightfield) image: export a single RGB plane",
            path,
        )
    if backend == "openslide":
        return None
    pages = _level_pages(tif, series)
    try:
        check_rgb_page(pages[0])
    except TiffBackendUnavailable:
        return None  # grey, 16-bit, float, planar: a plain image
    for page in pages[1:]:
        check_rgb_page(page)
    lock = threading.Lock()
    levels = [_Level(path, tif, page, lock) for page in pages]
    check_decodable(levels, levels[-1:])
    width, height = pages[0].imagewidth, pages[0].imagelength
    # as OpenSlide computes them (equal on the same level sizes, tests): the mean of the two axes' ratios
    downsamples = tuple((width / level.width + height / level.height) / 2 for level in levels)
    pixels = TiffPixels(path, tif, levels, downsamples)
    properties = _properties(tif, pixels)
    associated = _AssociatedSeries(_associated_series(tif, pages), lock)
    return Slide(path, OmeTiffHandle(pixels, properties, associated), pixels)


def _level_pages(tif, series) -> list:
    """The stored page of each pyramid level, finest first."""
    import tifffile

    pages = [level.keyframe for level in series.levels]
    if any(page.parent is not tif for page in pages):
        raise TiffBackendUnavailable("its image is stored across several files")
    if len(pages) == 1 and isinstance(pages[0].index, int):
        # reduced-resolution pages after the image, which the OME-XML does not describe (libvips' layout)
        width, height = pages[0].imagewidth, pages[0].imagelength
        for index in range(pages[0].index + 1, len(tif.pages)):
            page, last = tif.pages.get(index, aspage=True), pages[-1]  # a TiffPage, not a TiffFrame
            same_shape = abs(page.imagelength - height * page.imagewidth / width) <= 1  # not a label
            if not (
                isinstance(page, tifffile.TiffPage)
                and page.is_reduced
                and same_shape
                and page.imagewidth < last.imagewidth
                and (page.dtype, page.samplesperpixel) == (last.dtype, last.samplesperpixel)
            ):
                break
            pages.append(page)
    return pages


def _associated_series(tif, level_pages: list) -> dict:
    """Other OME images named label, macro or thumbnail (``label image`` too) that hold 8-bit pixels."""
    found: dict = {}
    for series in tif.series[1:]:
        name = (series.name or "").strip().lower().removesuffix(" image")
        shape_ok = len(series.shape) == 2 or (len(series.shape) == 3 and series.shape[-1] in (3, 4))
        if (
            name in _ASSOCIATED
            and name not in found
            and series.dtype == np.uint8
            and shape_ok
            and series.keyframe.parent is tif
            and series.keyframe not in level_pages
        ):
            found[name] = series
    return found


def _properties(tif, pixels: TiffPixels) -> dict[str, str]:
    """OpenSlide-style properties: vendor, levels, mpp and objective power from the OME-XML, tiff.* tags."""
    props = {openslide.PROPERTY_NAME_VENDOR: VENDOR, "openslide.level-count": str(len(pixels.levels))}
    for i, (level, downsample) in enumerate(zip(pixels.levels, pixels.downsamples, strict=True)):
        props[f"openslide.level[{i}].width"] = str(level.width)
        props[f"openslide.level[{i}].height"] = str(level.height)
        props[f"openslide.level[{i}].downsample"] = repr(downsample)
        if level.tile_size != (0, 0):
            props[f"openslide.level[{i}].tile-width"] = str(level.tile_size[0])
            props[f"openslide.level[{i}].tile-height"] = str(level.tile_size[1])
    page = pixels.levels[0].page
    for name in _TIFF_TAGS:
        tag = page.tags.get(name)
        if tag is not None and isinstance(tag.value, str):
            props[f"tiff.{name}"] = tag.value
    if "tiff.ImageDescription" in props:
        props[openslide.PROPERTY_NAME_COMMENT] = props["tiff.ImageDescription"]
    mpp_x, mpp_y, objective = _ome_physical(tif.ome_metadata or "")
    if mpp_x is not None:
        props[openslide.PROPERTY_NAME_MPP_X] = repr(mpp_x)
    if mpp_y is not None:
        props[openslide.PROPERTY_NAME_MPP_Y] = repr(mpp_y)
    if objective is not None:
        props[openslide.PROPERTY_NAME_OBJECTIVE_POWER] = objective
    return props


def _ome_physical(xml: str) -> tuple[float | None, float | None, str | None]:
    """(µm per pixel in x, in y, objective magnification) of the first OME image; None where absent."""
    try:
        root = ElementTree.fromstring(xml)
    except ElementTree.ParseError as err:
        log.debug("unreadable OME-XML (%s)", err)
        return None, None, None
    image = next(_elements(root, "Image"), None)
    pixels = next(_elements(image, "Pixels"), None) if image is not None else None
    if pixels is None:
        return None, None, None
    mpp = [_microns(pixels.get(f"PhysicalSize{a}"), pixels.get(f"PhysicalSize{a}Unit", "µm")) for a in "XY"]
    objectives = {o.get("ID"): o for o in _elements(root, "Objective")}
    settings = next(_elements(image, "ObjectiveSettings"), None)
    objective = objectives.get(settings.get("ID")) if settings is not None else None
    if objective is None and len(objectives) == 1:  # one objective, not referenced: still the one used
        (objective,) = objectives.values()
    power = objective.get("NominalMagnification") if objective is not None else None
    return mpp[0], mpp[1], power if _positive(power) is not None else None


def _elements(parent: ElementTree.Element, name: str) -> Iterator[ElementTree.Element]:
    """Descendants named ``name`` in any OME schema namespace."""
    return (e for e in parent.iter() if e.tag.rsplit("}", 1)[-1] == name)


def _microns(value: str | None, unit: str) -> float | None:
    size, factor = _positive(value), _MICRONS_PER_UNIT.get(unit.strip())
    if size is None or factor is None:
        if size is not None:
            log.debug("OME pixel size in unit %r ignored", unit)
        return None
    return size * factor


def _positive(value: str | None) -> float | None:
    try:
        number = float(value) if value is not None else None
    except ValueError:
        return None
    return number if number is not None and math.isfinite(number) and number > 0 else None
