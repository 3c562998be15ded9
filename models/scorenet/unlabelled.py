"""Unlabelled slides and images for self-supervised pre-training: source discovery and random crops.

:class:`TissueCrops` draws fixed-size crops at a fixed resolution from tissue. Each crop is drawn
from (seed, epoch, index) alone, so an epoch is reproducible whatever the number of DataLoader
workers. Sources are opened lazily, once per process and at most ``max_open`` at a time: OpenSlide
handles cannot be pickled or shared across a fork, and a collection can hold more slides than a
process may keep files open. This module imports no Qt or napari.
"""

from __future__ import annotations

import logging
import math
import numbers
import os
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from os import PathLike
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from .errors import ScoreNetInputError
from .slide import SUPPORTED_SUFFIXES, Slide, _resize, open_slide, read_roi
from .tissue import TissueMask, TissueParams, slide_tissue_mask

log = logging.getLogger(__name__)


def find_sources(paths: Sequence[str | PathLike[str]]) -> list[Path]:
    """Slide and image files named by ``paths``: files as given, folders searched recursively.

    Hidden files and folders (names starting with ``.``) and files of other types inside folders are
    ignored; a DICOM slide (a folder of ``.dcm`` files) counts once. Duplicates are dropped, the order
    is kept (files of a folder sorted by path). Raises :class:`ScoreNetInputError` naming the path for
    a missing path, a folder without slides or images, and a file of an unsupported type.
    """
    found: list[Path] = []
    for entry in paths:
        path = Path(entry).expanduser()
        if not path.exists():
            raise ScoreNetInputError("no such file or folder", path)
        if path.is_dir():
            files = _files_in(path)
            if not files:
                raise ScoreNetInputError(
                    f"no slide or image files in this folder (looked for {', '.join(SUPPORTED_SUFFIXES)})",
                    path,
                )
            found.extend(files)
        elif path.suffix.lower() in SUPPORTED_SUFFIXES:
            found.append(path)
        else:
            raise ScoreNetInputError(
                f"unsupported file type {path.suffix or '(no extension)'!r}; "
                f"supported: {', '.join(SUPPORTED_SUFFIXES)}",
                path,
            )
    seen: set[Path] = set()
    unique = []
    for path in found:
        key = path.resolve()
        if key not in seen:
            seen.add(key)
            unique.append(path)
    return unique


def _files_in(folder: Path) -> list[Path]:
    files = []
    for root, dirs, names in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        visible = sorted(n for n in names if not n.startswith(".") and _suffix(n) in SUPPORTED_SUFFIXES)
        dicom = [n for n in visible if _suffix(n) == ".dcm"]
        # OpenSlide opens a DICOM slide from any one of its files; the others are the same slide
        files.extend(Path(root, n) for n in visible if _suffix(n) != ".dcm" or n == dicom[0])
    return files


def _suffix(name: str) -> str:
    return Path(name).suffix.lower()


@dataclass(frozen=True)
class CropBox:
    """Where a crop comes from: source index, level-0 rectangle and its tissue share on the mask."""

    source: int
    x: int
    y: int
    w: int
    h: int
    tissue: float


@dataclass(frozen=True, eq=False)
class _Source:
    path: Path
    mask: TissueMask
    crop_w: int  # level-0 pixels
    crop_h: int
    cum_rows: np.ndarray  # tissue pixels of the mask up to and including each row

    @property
    def size(self) -> tuple[int, int]:
        return self.mask.level0_size


class TissueCrops(Dataset):
    """Random crops of tissue from unlabelled slides and images, as uint8 tensors (3, H, W).

    Each item draws a source with probability proportional to its tissue area, then a crop whose
    tissue share on the mask is at least ``min_tissue`` (centres drawn on tissue pixels of the mask,
    up to ``max_tries`` tries, else the try with most tissue), and reads it at ``mpp`` microns per
    pixel (``None``: the native resolution, level 0). Crops lie entirely inside the slide.
    """

    def __init__(
        self,
        sources: Sequence[str | PathLike[str]],
        *,
        size: tuple[int, int],
        mpp: float | None,
        samples_per_epoch: int,
        seed: int = 0,
        tissue: TissueParams = TissueParams(),  # noqa: B008 (frozen, immutable)
        min_tissue: float = 0.5,
        max_tries: int = 16,
        max_open: int = 32,
        masks: Mapping[Path, TissueMask] | None = None,
    ) -> None:
        """``masks``: tissue masks already computed with the same ``tissue`` parameters, by source
        path (another dataset's :attr:`masks`), so that datasets over the same sources at other crop
        sizes or resolutions neither recompute nor hold them twice."""
        height, width = size
        if not all(isinstance(v, numbers.Integral) and v > 0 for v in (height, width)):
            raise ScoreNetInputError(f"crop size must be two positive integers (height, width), got {size}")
        if mpp is not None and not (math.isfinite(mpp) and mpp > 0):
            raise ScoreNetInputError(f"microns per pixel must be positive, got {mpp}")
        if not (isinstance(samples_per_epoch, numbers.Integral) and samples_per_epoch > 0):
            raise ScoreNetInputError(f"samples per epoch must be a positive integer, got {samples_per_epoch}")
        if not (isinstance(seed, numbers.Integral) and seed >= 0):
            raise ScoreNetInputError(f"seed must be an integer >= 0, got {seed}")
        if not 0.0 <= min_tissue <= 1.0:
            raise ScoreNetInputError(f"min_tissue must be in [0, 1], got {min_tissue}")
        if max_tries < 1 or max_open < 1:
            raise ScoreNetInputError(f"max_tries and max_open must be >= 1, got {max_tries}, {max_open}")
        if not sources:
            raise ScoreNetInputError("no pre-training sources given")
        self.size = (int(height), int(width))
        self.mpp = mpp
        self.samples_per_epoch = int(samples_per_epoch)
        self.seed = int(seed)
        self.tissue = tissue
        self.min_tissue = float(min_tissue)
        self.max_tries = max_tries
        self.max_open = max_open
        self.epoch = 0
        known = dict(masks or {})
        self._sources = [s for s in (self._prepare(Path(p), known) for p in sources) if s is not None]
        if not self._sources:
            raise ScoreNetInputError(
                f"none of the {len(sources)} sources has enough tissue for one {width} x {height} crop "
                f"with at least {self.min_tissue:.0%} tissue (see the warnings above)"
            )
        areas = np.array([s.mask.tissue_area for s in self._sources])
        self._probabilities = areas / areas.sum()
        self._handles: OrderedDict[int, Slide] = OrderedDict()
        self._pid = os.getpid()
        log.info(
            "pre-training sources: %d used of %d, tissue area %.3g level-0 pixels",
            len(self._sources),
            len(sources),
            areas.sum(),
        )

    @property
    def sources(self) -> list[Path]:
        """The sources crops are drawn from (those with enough tissue), in the given order."""
        return [s.path for s in self._sources]

    @property
    def masks(self) -> dict[Path, TissueMask]:
        """The tissue mask of each source used."""
        return {s.path: s.mask for s in self._sources}

    def _prepare(self, path: Path, masks: Mapping[Path, TissueMask]) -> _Source | None:
        """Tissue mask and level-0 crop size of one source, or None (with a warning) to skip it."""
        height, width = self.size
        with open_slide(path) as slide:
            scale = 1.0
            if self.mpp is not None:
                if slide.mpp is None:
                    raise ScoreNetInputError(
                        "records no microns per pixel; pass mpp=None to read at native resolution", path
                    )
                scale = slide.mpp / self.mpp
                if scale > 1:
                    log.warning(
                        "%s: scanned at %.3g um/px, coarser than the requested %.3g; its crops are upsampled",
                        path,
                        slide.mpp,
                        self.mpp,
                    )
            mask = masks.get(path) or slide_tissue_mask(slide, self.tissue)
        crop_w, crop_h = max(1, round(width / scale)), max(1, round(height / scale))
        slide_w, slide_h = mask.level0_size
        if crop_w > slide_w or crop_h > slide_h:
            log.warning(
                "%s: skipped, %d x %d pixels is smaller than one crop (%d x %d level-0 pixels)",
                path,
                slide_w,
                slide_h,
                crop_w,
                crop_h,
            )
            return None
        if mask.tissue_area <= 0 or mask.tissue_area < self.min_tissue * crop_w * crop_h:
            log.warning(
                "%s: skipped, its tissue (%.3g level-0 pixels) is less than %.0f%% of one crop",
                path,
                mask.tissue_area,
                100 * self.min_tissue,
            )
            return None
        cum_rows = np.cumsum(np.count_nonzero(mask.mask, axis=1))
        return _Source(path, mask, crop_w, crop_h, cum_rows)

    def set_epoch(self, epoch: int) -> None:
        """Draw the crops of this epoch (the same epoch and seed always give the same crops).

        DataLoader workers copy the dataset when they start, so call this before iterating, and use
        ``persistent_workers=False`` (the default) for the new epoch to reach the workers.
        """
        if not (isinstance(epoch, int) and epoch >= 0):
            raise ValueError(f"epoch must be an integer >= 0, got {epoch!r}")
        self.epoch = epoch

    def __len__(self) -> int:
        return self.samples_per_epoch

    def locate(self, index: int) -> CropBox:
        """The source and level-0 rectangle of crop ``index`` in the current epoch, without reading it."""
        if not -len(self) <= index < len(self):
            raise IndexError(f"crop index {index} out of range for {len(self)} samples per epoch")
        rng = np.random.default_rng([self.seed, self.epoch, index % len(self)])
        k = int(rng.choice(len(self._sources), p=self._probabilities))
        source = self._sources[k]
        mask = source.mask
        dx, dy = mask.downsample
        slide_w, slide_h = source.size
        best: CropBox | None = None
        for _ in range(self.max_tries):
            n = int(rng.integers(source.cum_rows[-1]))
            row = int(np.searchsorted(source.cum_rows, n, side="right"))
            before = int(source.cum_rows[row - 1]) if row else 0
            col = int(np.flatnonzero(mask.mask[row])[n - before])
            # a uniform point inside the chosen mask pixel, the crop centred on it and kept inside
            cx, cy = (col + rng.random()) * dx, (row + rng.random()) * dy
            x = min(max(round(cx - source.crop_w / 2), 0), slide_w - source.crop_w)
            y = min(max(round(cy - source.crop_h / 2), 0), slide_h - source.crop_h)
            share = mask.fraction(x, y, source.crop_w, source.crop_h)
            if best is None or share > best.tissue:
                best = CropBox(k, x, y, source.crop_w, source.crop_h, share)
            if share >= self.min_tissue:
                break
        assert best is not None
        return best

    def __getitem__(self, index: int) -> torch.Tensor:
        box = self.locate(index)
        roi = read_roi(self._slide(box.source), box.x, box.y, box.w, box.h, mpp=self.mpp)
        image = roi.image
        height, width = self.size
        if image.shape[:2] != (height, width):
            # only when upsampling: round(w / scale) * scale can miss the size by a pixel
            image = _resize(image, width, height)
        return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))

    def _slide(self, k: int) -> Slide:
        if self._pid != os.getpid():
            # a forked worker: the parent's handles are not ours to use or close
            self._handles = OrderedDict()
            self._pid = os.getpid()
        slide = self._handles.get(k)
        if slide is None:
            slide = self._handles[k] = open_slide(self._sources[k].path)
            if len(self._handles) > self.max_open:
                self._handles.popitem(last=False)[1].close()
        self._handles.move_to_end(k)
        return slide

    def close(self) -> None:
        """Close the slides this process opened (they reopen on the next read)."""
        if self._pid == os.getpid():
            for slide in self._handles.values():
                slide.close()
        self._handles = OrderedDict()

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_handles"] = OrderedDict()  # OpenSlide handles cannot be pickled
        return state
