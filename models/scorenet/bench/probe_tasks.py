"""Probe tasks for frozen features that colour alone does not solve, and a colour-only baseline.

Carcinoma and stroma tiles differ in mean colour so much that random features (and mean colour) tell
them apart at 0.99, which says nothing about what a pre-trained encoder learned. Two tasks here:

- **Nucleus density** (:func:`density_task`): 128 x 128 windows of ``tiles/hgsc_nest.jpg`` (1500 x
  1500, a tumour nest with lymphocytes and stroma) on a stride, labelled by the share of nucleus pixels
  in its nucleus-type mask (``tiles/hgsc_nest_type_mask.npz``, any type counts). Denser windows are
  also more purple, so the plain labelling (``"tertile"``: densest against sparsest third) is solved
  by colour (0.89 to 0.99 on the held-out half). The default ``"matched"`` labelling compares
  windows of the same stain intensity: the windows of a half are sorted by mean hematoxylin optical
  density (skimage's ``rgb2hed``), cut into bins of ``bin_size`` consecutive windows, and within each
  bin the densest third is ``nucleus_dense`` and the sparsest third ``nucleus_sparse`` (the middle is
  dropped). Both classes then have the same hematoxylin distribution, and the labels differ in how
  the stain is laid out (many nuclei against diffuse staining), which takes texture to see. Colour
  then scores 0.52 to 0.61 (stride 32, right half held out; chance 0.5).
- **Planted carcinoma** (:func:`planted_task_dir`): the learning benchmark's task folder
  (``scorenet.bench.planted``, same counts and image seed), probed on whole images. Colour does solve
  much of it (0.87 logistic, 0.92 1-NN; chance 0.33): its two carcinoma classes come from two tiles
  stained differently, and colour never confuses them; its errors are carcinoma taken for stroma. A
  probe there has to beat the colour baseline, not chance.

Train and test never share pixels: the density task trains on one half of the image and tests on the
other (``held_out="right"``: train on windows inside the left half, test on windows inside the right
half; windows across the middle line are dropped). Each half is labelled on its own, so both are
balanced. The planted task has separate train and test images.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ..errors import ScoreNetInputError
from ..paths import data_dir

DENSITY_CLASSES = ("nucleus_sparse", "nucleus_dense")  # index = label
LABELLINGS = ("matched", "tertile")
HELD_OUT = ("right", "bottom")


@dataclass
class DensityTask:
    """Windows of the tumour-nest tile, their labels and which half they belong to."""

    images: np.ndarray  # (N, size, size, 3) uint8
    labels: np.ndarray  # (N,) int64, index into DENSITY_CLASSES
    train: np.ndarray  # (N,) bool: True in the training half, False in the held-out half
    boxes: np.ndarray  # (N, 4) int64 (x0, y0, x1, y1) in tile pixels
    nucleus_share: np.ndarray  # (N,) share of nucleus pixels in the window
    hematoxylin: np.ndarray  # (N,) mean hematoxylin optical density (rgb2hed channel 0)
    groups: np.ndarray  # (N,) the window's stain bin within its half ("matched"; one group for "tertile")
    labelling: str
    held_out: str

    def split(self, train: bool) -> tuple[np.ndarray, np.ndarray]:
        """(images, labels) of the training half (``train``) or of the held-out half."""
        keep = self.train == train
        return self.images[keep], self.labels[keep]


def window_boxes(height: int, width: int, size: int, stride: int) -> np.ndarray:
    """Every ``size`` x ``size`` window inside ``height`` x ``width`` on a ``stride`` grid, as
    (N, 4) ``(x0, y0, x1, y1)`` in row-major order."""
    ys = np.arange(0, height - size + 1, stride)
    xs = np.arange(0, width - size + 1, stride)
    y0, x0 = (a.ravel() for a in np.meshgrid(ys, xs, indexing="ij"))
    return np.stack([x0, y0, x0 + size, y0 + size], axis=1).astype(np.int64)


def box_means(values: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Mean of the (H, W) ``values`` over each box, from one integral image."""
    integral = np.pad(values.astype(np.float64).cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    x0, y0, x1, y1 = boxes.T
    total = integral[y1, x1] - integral[y0, x1] - integral[y1, x0] + integral[y0, x0]
    return total / ((x1 - x0) * (y1 - y0))


# skimage's separate_stains: -log(max(v, 1e-6)) / -log(1e-6) for each uint8 value v / 255
_LOG_TABLE = np.log(np.maximum(np.arange(256) / 255.0, 1e-6)) / np.log(1e-6)


def hed(image: np.ndarray) -> np.ndarray:
    """skimage's ``rgb2hed`` of an (H, W, 3) uint8 image: hematoxylin, eosin and DAB optical densities.

    The same values, about five times faster: the logarithm comes from a 256-entry table instead of
    being taken at every pixel.
    """
    from skimage.color import hed_from_rgb

    stains = _LOG_TABLE[image] @ hed_from_rgb
    return np.maximum(stains, 0, out=stains)


def _read_nest(root: Path) -> tuple[np.ndarray, np.ndarray]:
    tiles = root / "tiles"
    image_path, mask_path = tiles / "hgsc_nest.jpg", tiles / "hgsc_nest_type_mask.npz"
    for path in (image_path, mask_path):
        if not path.is_file():
            raise ScoreNetInputError("density task source not found (set SCORENET_DATA)", path)
    with Image.open(image_path) as im:
        image = np.asarray(im.convert("RGB"))
    with np.load(mask_path, allow_pickle=False) as npz:
        mask = npz["nuc_raster"]
    if mask.shape != image.shape[:2]:
        raise ScoreNetInputError(f"mask {mask.shape} does not match image {image.shape[:2]}", mask_path)
    return image, mask


def _label_matched(share: np.ndarray, stain: np.ndarray, bin_size: int) -> tuple[np.ndarray, ...]:
    """(keep, labels, groups): densest against sparsest third of each bin of equal stain intensity.

    A bin where the two thirds tie in nucleus share (e.g. glass) is dropped, so every dense window of a
    bin has strictly more nucleus pixels than every sparse one.
    """
    keep = np.zeros(len(share), dtype=bool)
    labels = np.zeros(len(share), dtype=np.int64)
    groups = np.full(len(share), -1, dtype=np.int64)
    order = np.argsort(stain, kind="stable")
    third = bin_size // 3
    for group, start in enumerate(range(0, len(order) - bin_size + 1, bin_size)):
        members = order[start : start + bin_size]
        members = members[np.argsort(share[members], kind="stable")]
        sparse, dense = members[:third], members[-third:]
        if share[dense].min() <= share[sparse].max():
            continue
        keep[sparse] = keep[dense] = True
        labels[dense] = 1
        groups[members] = group
    return keep, labels, groups


def _label_tertile(share: np.ndarray) -> tuple[np.ndarray, ...]:
    """(keep, labels, groups): windows in the densest third against those in the sparsest third."""
    order = np.argsort(share, kind="stable")
    third = len(share) // 3
    keep = np.zeros(len(share), dtype=bool)
    keep[order[:third]] = keep[order[len(share) - third :]] = True
    labels = np.zeros(len(share), dtype=np.int64)
    labels[order[len(share) - third :]] = 1
    return keep, labels, np.zeros(len(share), dtype=np.int64)


def density_task(
    root: str | os.PathLike[str] | None = None,
    *,
    size: int = 128,
    stride: int = 32,
    labelling: str = "matched",
    bin_size: int = 6,
    held_out: str = "right",
) -> DensityTask:
    """Nucleus-dense against nucleus-sparse windows of ``tiles/hgsc_nest.jpg`` (module docstring).

    ``held_out`` is the half kept for testing (``"right"`` or ``"bottom"``); ``labelling`` is
    ``"matched"`` (same stain intensity in both classes) or ``"tertile"`` (solved by colour).
    """
    if labelling not in LABELLINGS:
        raise ScoreNetInputError(f"unknown labelling {labelling!r}; choose one of {', '.join(LABELLINGS)}")
    if held_out not in HELD_OUT:
        raise ScoreNetInputError(f"unknown held-out half {held_out!r}; choose one of {', '.join(HELD_OUT)}")
    if bin_size < 3:
        raise ScoreNetInputError(f"bin_size must be >= 3 (a third of it is each class), got {bin_size}")
    image, mask = _read_nest(Path(root) if root is not None else data_dir())
    height, width = mask.shape
    boxes = window_boxes(height, width, size, stride)
    share = box_means(mask > 0, boxes)
    stain = box_means(hed(image)[..., 0], boxes)
    # halves: a window belongs to one only when it lies wholly inside it, so no pixel is in both
    axis, middle = (0, width // 2) if held_out == "right" else (1, height // 2)
    low_half, high_half = boxes[:, axis + 2] <= middle, boxes[:, axis] >= middle
    keep = np.zeros(len(boxes), dtype=bool)
    labels = np.zeros(len(boxes), dtype=np.int64)
    groups = np.zeros(len(boxes), dtype=np.int64)
    for half in (low_half, high_half):
        index = np.flatnonzero(half)
        if labelling == "matched":
            found = _label_matched(share[index], stain[index], bin_size)
        else:
            found = _label_tertile(share[index])
        keep[index], labels[index], groups[index] = found
    windows = np.flatnonzero(keep)
    crops = np.stack([image[y0:y1, x0:x1] for x0, y0, x1, y1 in boxes[windows]])
    return DensityTask(
        images=crops,
        labels=labels[windows],
        train=low_half[windows],
        boxes=boxes[windows],
        nucleus_share=share[windows],
        hematoxylin=stain[windows],
        groups=groups[windows],
        labelling=labelling,
        held_out=held_out,
    )


def colour_features(images: Iterable[np.ndarray], with_hed: bool = True) -> np.ndarray:
    """Per-channel mean and std of RGB in [0, 1] and, with ``with_hed``, of the hematoxylin, eosin
    and DAB optical densities (:func:`hed`): (N, 6) or (N, 12) for (H, W, 3) uint8 images."""
    rows = []
    for image in images:
        channels = [image.reshape(-1, 3) / 255.0]
        if with_hed:
            channels.append(hed(image).reshape(-1, 3))
        rows.append(np.concatenate([s for c in channels for s in (c.mean(0), c.std(0))]))
    return np.stack(rows)


def colour_baseline(
    train_images: Iterable[np.ndarray],
    train_labels: np.ndarray,
    test_images: Iterable[np.ndarray],
    test_labels: np.ndarray,
    with_hed: bool = True,
) -> dict[str, dict[str, float]]:
    """What colour alone scores on a task: :func:`scorenet.evaluate.heldout_probes` (logistic
    regression and 1-NN) on :func:`colour_features`, fitted on train, scored on test."""
    from ..evaluate import heldout_probes

    return heldout_probes(
        colour_features(train_images, with_hed),
        train_labels,
        colour_features(test_images, with_hed),
        test_labels,
    )


def planted_task_dir(
    work_dir: str | os.PathLike[str] | None = None,
    counts: dict[str, int] | None = None,
    task_seed: int = 0,
    task: str = "kind",
) -> Path:
    """The learning benchmark's planted task folder, written first when missing.

    Same defaults, folder name and image seed as ``scorenet.bench.learning.run_suite``, so a probe here
    sees the very images the learning benchmark trains and tests on.
    """
    from . import planted
    from .learning import LearningOptions

    options = LearningOptions()
    work = Path(work_dir) if work_dir is not None else options.work_dir
    counts = dict(counts or options.counts)
    name = "-".join(f"{split}{n}" for split, n in counts.items())
    task_dir = work / f"planted-{task}-{name}-seed{task_seed}"
    if not (task_dir / "planted.json").is_file():
        planted.write_image_folder(task_dir, counts, seed=task_seed, config=planted.PlantedConfig(task=task))
    return task_dir


def read_images(paths: Sequence[str | os.PathLike[str]]) -> Iterable[np.ndarray]:
    """RGB uint8 arrays of ``paths``, read one at a time (whole planted splits do not fit comfortably)."""
    from ..data import load_rgb

    for path in paths:
        yield load_rgb(Path(path))


def describe(task: DensityTask) -> dict[str, Any]:
    """Counts, balance and the nucleus-share gap of each half, JSON-able."""
    halves = {}
    for name, train in (("train", True), ("test", False)):
        keep = task.train == train
        share, labels = task.nucleus_share[keep], task.labels[keep]
        halves[name] = {
            "windows": int(keep.sum()),
            "dense_fraction": float(labels.mean()),
            "nucleus_share_dense": float(share[labels == 1].mean()),
            "nucleus_share_sparse": float(share[labels == 0].mean()),
            "hematoxylin_dense": float(task.hematoxylin[keep][labels == 1].mean()),
            "hematoxylin_sparse": float(task.hematoxylin[keep][labels == 0].mean()),
        }
    return {
        "labelling": task.labelling,
        "held_out": task.held_out,
        "classes": list(DENSITY_CLASSES),
        **halves,
    }
