"""Labelled image folders for finetuning and evaluation.

Layouts (class names are the sub-folder names, sorted):

- ``ROOT/<class>/*.png|jpg|jpeg|tif|tiff``: one ImageFolder; a seeded, stratified validation split is
  drawn from it (``val_fraction``);
- ``ROOT/{train,val[,test]}/<class>/*``: ready-made splits, each an ImageFolder with the same classes;
- a CSV file ``path,label,split`` (split in train/val/test; paths relative to the CSV's folder or ROOT).

Images of any size are resized, each on its own, to the nearest whole number of the model's P_h regions
(``regions.grid_size``, the same grid the model would use) and batched only with images of the same
grid (:class:`GridBatchSampler`). Nothing is distorted beyond the rounding to whole regions that the
model does anyway, and no batch carries padding that the scorer would mistake for tissue.
"""

from __future__ import annotations

import csv
import logging
import math
import os
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset, Sampler

from .errors import ScoreNetInputError
from .regions import grid_size

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff")
SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class Sample:
    """One labelled image and its size in pixels."""

    path: Path
    label: int
    height: int
    width: int


@dataclass
class DataSplits:
    """Class names (sorted) and the samples of each split (``test`` may be empty)."""

    class_names: list[str]
    train: list[Sample]
    val: list[Sample]
    test: list[Sample] = field(default_factory=list)

    def split(self, name: str) -> list[Sample]:
        if name not in SPLITS:
            raise ScoreNetInputError(f"unknown split {name!r}; choose one of {', '.join(SPLITS)}")
        return getattr(self, name)


def image_size(path: Path) -> tuple[int, int]:
    """(height, width) from the image header; a clear error naming the file when it cannot be read."""
    try:
        with Image.open(path) as im:
            width, height = im.size
    except (UnidentifiedImageError, OSError, ValueError) as err:
        raise ScoreNetInputError(f"unreadable image ({err.__class__.__name__}: {err})", path) from err
    if width < 1 or height < 1:
        raise ScoreNetInputError(f"empty image ({width} x {height})", path)
    return height, width


def _sample(path: Path, label: int) -> Sample:
    if path.suffix.lower() not in IMAGE_EXTENSIONS:
        raise ScoreNetInputError(
            f"unsupported file type {path.suffix or '(none)'!r}; use {', '.join(IMAGE_EXTENSIONS)}",
            path,
        )
    return Sample(path, label, *image_size(path))


def _visible(path: Path) -> bool:
    return not path.name.startswith(".")


def class_folders(root: Path) -> list[str]:
    """Sorted class sub-folder names of an ImageFolder ``root``."""
    if not root.is_dir():
        raise ScoreNetInputError("data folder not found", root)
    entries = [p for p in root.iterdir() if _visible(p)]
    names = sorted(p.name for p in entries if p.is_dir())
    loose = sorted(p.name for p in entries if not p.is_dir())
    if loose:
        log.warning("%s: %d files outside class folders ignored (%s)", root, len(loose), ", ".join(loose[:5]))
    if not names:
        raise ScoreNetInputError("no class sub-folders (expected ROOT/<class>/<image>)", root)
    return names


def scan_image_folder(root: str | os.PathLike[str], class_names: Sequence[str] | None = None) -> list[Sample]:
    """Every image under ``root/<class>/``; unknown files, unreadable images and empty classes raise.

    ``class_names`` fixes the label order (e.g. the training split's classes for a val/test split).
    Hidden files (dot files) are ignored and counted in the log.
    """
    root = Path(root)
    found = class_folders(root)
    names = list(class_names) if class_names is not None else found
    if sorted(found) != sorted(names):
        raise ScoreNetInputError(f"classes {found} differ from the expected classes {list(names)}", root)
    samples, hidden = [], 0
    for label, name in enumerate(names):
        files = sorted(p for p in (root / name).iterdir() if p.is_file())
        hidden += sum(not _visible(p) for p in files)
        class_samples = [_sample(p, label) for p in files if _visible(p)]
        if not class_samples:
            raise ScoreNetInputError(f"class folder {name!r} holds no images", root / name)
        samples.extend(class_samples)
    counts = Counter(s.label for s in samples)
    log.info(
        "%s: %d images in %d classes (%s); %d hidden files ignored",
        root,
        len(samples),
        len(names),
        ", ".join(f"{n} {counts[i]}" for i, n in enumerate(names)),
        hidden,
    )
    return samples


def read_split_csv(
    csv_path: str | os.PathLike[str], root: str | os.PathLike[str] | None = None
) -> DataSplits:
    """Samples from a ``path,label,split`` CSV; relative paths: from the CSV's folder, then ROOT."""
    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise ScoreNetInputError("split CSV not found", csv_path)
    with open(csv_path, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    if not rows or not {"path", "label", "split"} <= set(rows[0]):
        raise ScoreNetInputError(
            "split CSV needs a header row 'path,label,split' and at least one row", csv_path
        )
    class_names = sorted({r["label"].strip() for r in rows})
    bases = [csv_path.parent] + ([Path(root)] if root is not None else [])
    by_split: dict[str, list[Sample]] = {s: [] for s in SPLITS}
    for line, row in enumerate(rows, start=2):
        split = row["split"].strip().lower()
        if split not in SPLITS:
            raise ScoreNetInputError(
                f"line {line}: split {row['split']!r} is not one of {', '.join(SPLITS)}", csv_path
            )
        rel = Path(row["path"].strip())
        candidates = [rel] if rel.is_absolute() else [b / rel for b in bases]
        path = next((c for c in candidates if c.is_file()), None)
        if path is None:
            raise ScoreNetInputError(f"line {line}: image {str(rel)!r} not found", csv_path)
        by_split[split].append(_sample(path, class_names.index(row["label"].strip())))
    splits = DataSplits(class_names, by_split["train"], by_split["val"], by_split["test"])
    _check_classes(splits, csv_path)
    return splits


def _check_classes(splits: DataSplits, where: Path) -> None:
    if not splits.train:
        raise ScoreNetInputError("no training images", where)
    present = {s.label for s in splits.train}
    missing = [n for i, n in enumerate(splits.class_names) if i not in present]
    if missing:
        raise ScoreNetInputError(f"no training images for class(es) {', '.join(missing)}", where)


def stratified_split(
    samples: Sequence[Sample], fraction: float, seed: int
) -> tuple[list[Sample], list[Sample]]:
    """(kept, taken): ``fraction`` of each class taken at random (seeded), at least one per class when
    ``fraction > 0``, never the whole class."""
    if not 0.0 <= fraction < 1.0:
        raise ScoreNetInputError(f"split fraction must lie in [0, 1), got {fraction}")
    by_label: dict[int, list[Sample]] = defaultdict(list)
    for s in samples:
        by_label[s.label].append(s)
    rng = np.random.default_rng(seed)
    kept, taken = [], []
    for label in sorted(by_label):
        group = by_label[label]
        order = rng.permutation(len(group))
        n_take = 0 if fraction == 0 else min(len(group) - 1, max(1, round(fraction * len(group))))
        taken.extend(group[i] for i in sorted(order[:n_take]))
        kept.extend(group[i] for i in sorted(order[n_take:]))
    return kept, taken


def subsample(samples: Sequence[Sample], fraction: float, seed: int) -> list[Sample]:
    """A seeded, stratified ``fraction`` (0, 1] of ``samples`` (at least one image per class).

    For one seed the subsets are nested (10 % within 20 % within 50 %): each class's permutation does
    not depend on the fraction, only how much of it is kept.
    """
    if not 0.0 < fraction <= 1.0:
        raise ScoreNetInputError(f"data fraction must lie in (0, 1], got {fraction}")
    if fraction == 1.0:
        return list(samples)
    return stratified_split(samples, 1.0 - fraction, seed)[0]


def load_splits(
    data: str | os.PathLike[str],
    *,
    split_csv: str | os.PathLike[str] | None = None,
    val_fraction: float = 0.2,
    seed: int = 0,
    min_classes: int = 1,
) -> DataSplits:
    """The train/val/test samples of ``data`` in any of the three layouts (see the module docstring).

    ``min_classes`` (2 for training: a classifier needs two classes to tell apart) refuses data with
    fewer classes; evaluation keeps 1, since a folder may hold only some of a checkpoint's classes.
    """
    splits = _read_splits(data, split_csv, val_fraction, seed)
    count = len(splits.class_names)
    if count < min_classes:
        found = f"{count} {'class' if count == 1 else 'classes'} ({', '.join(map(repr, splits.class_names))})"
        raise ScoreNetInputError(
            f"only {found}; a classifier needs at least {min_classes}, one sub-folder (or CSV label) each",
            split_csv if split_csv is not None else data,
        )
    return splits


def _read_splits(
    data: str | os.PathLike[str],
    split_csv: str | os.PathLike[str] | None,
    val_fraction: float,
    seed: int,
) -> DataSplits:
    """The splits of whichever layout ``data`` (or ``split_csv``) has."""
    root = Path(data)
    if split_csv is not None:
        return read_split_csv(split_csv, root)
    if root.is_file() and root.suffix.lower() == ".csv":
        return read_split_csv(root)
    if (root / "train").is_dir() and (root / "val").is_dir():
        class_names = class_folders(root / "train")
        train = scan_image_folder(root / "train", class_names)
        val = scan_image_folder(root / "val", class_names)
        test = scan_image_folder(root / "test", class_names) if (root / "test").is_dir() else []
        return DataSplits(class_names, train, val, test)
    class_names = class_folders(root)
    samples = scan_image_folder(root, class_names)
    train, val = stratified_split(samples, val_fraction, seed)
    splits = DataSplits(class_names, train, val)
    _check_classes(splits, root)
    return splits


def load_rgb(path: Path) -> np.ndarray:
    """(H, W, 3) uint8 RGB; decoding errors name the file."""
    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"))
    except (UnidentifiedImageError, OSError, ValueError) as err:
        raise ScoreNetInputError(f"unreadable image ({err.__class__.__name__}: {err})", path) from err


class GridImageDataset(Dataset):
    """``(image (3, gh*P_h, gw*P_h) uint8, label)``; each image resized to its own region grid.

    ``augment`` adds seeded flips (horizontal, vertical) that keep the grid; the draw depends only on
    (seed, epoch, index), so runs and resumed runs see the same images.
    """

    def __init__(
        self,
        samples: Sequence[Sample],
        region_size: int,
        min_regions: int,
        augment: bool = False,
        seed: int = 0,
    ) -> None:
        self.samples = list(samples)
        self.region_size = region_size
        self.grids = [grid_size(s.height, s.width, region_size, min_regions) for s in self.samples]
        self.augment = augment
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        sample = self.samples[index]
        gh, gw = self.grids[index]
        size = (gw * self.region_size, gh * self.region_size)
        pixels = load_rgb(sample.path)
        if (pixels.shape[1], pixels.shape[0]) != size:
            pixels = np.asarray(Image.fromarray(pixels).resize(size, Image.Resampling.BILINEAR))
        if self.augment:
            flip_h, flip_v = np.random.default_rng([self.seed, self.epoch, index]).random(2) < 0.5
            pixels = pixels[:, ::-1] if flip_h else pixels
            pixels = pixels[::-1] if flip_v else pixels
        image = torch.from_numpy(np.array(pixels)).permute(2, 0, 1).contiguous()  # writable copy
        return image, sample.label


class GridBatchSampler(Sampler[list[int]]):
    """Batches of indices that share one region grid (so they stack without padding or distortion).

    Shuffled (seed + epoch) when ``shuffle``; under DDP each of ``world_size`` ranks takes every
    ``world_size``-th batch, the list padded by repeating batches so every rank runs the same number
    of steps (as ``DistributedSampler`` does with samples).
    """

    def __init__(
        self,
        grids: Sequence[tuple[int, int]],
        batch_size: int,
        *,
        shuffle: bool = False,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        if batch_size < 1:
            raise ScoreNetInputError(f"batch size must be >= 1, got {batch_size}")
        self.grids = list(grids)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _all_batches(self) -> list[list[int]]:
        buckets: dict[tuple[int, int], list[int]] = defaultdict(list)
        for index, grid in enumerate(self.grids):
            buckets[grid].append(index)
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        batches = []
        for grid in sorted(buckets):
            indices = buckets[grid]
            if self.shuffle:
                indices = [indices[i] for i in torch.randperm(len(indices), generator=generator)]
            batches.extend(indices[i : i + self.batch_size] for i in range(0, len(indices), self.batch_size))
        if self.shuffle:
            batches = [batches[i] for i in torch.randperm(len(batches), generator=generator)]
        if self.world_size > 1:
            per_rank = math.ceil(len(batches) / self.world_size)
            batches = (batches * self.world_size)[: per_rank * self.world_size]
        return batches

    def __iter__(self) -> Iterator[list[int]]:
        yield from self._all_batches()[self.rank :: self.world_size]

    def __len__(self) -> int:
        buckets = Counter(self.grids)
        total = sum(math.ceil(n / self.batch_size) for n in buckets.values())
        return math.ceil(total / self.world_size)
